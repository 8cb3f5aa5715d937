"""EvalConfig and the `clipforge eval` flag handling: strict keys, known benchmarks, flags over the file."""

import pytest

from evaluation.command import checkpoint_settings, load_eval_config
from evaluation.config import EvalConfig
from evaluation.errors import EvaluationError
from pipeline.core.config import ConfigError, load_config


def test_defaults():
    cfg = EvalConfig()
    assert cfg.model == "clipforge-tiny" and cfg.benchmarks == ["digits"] and cfg.recall_k == [1, 5, 10]
    assert cfg.tasks == ["zeroshot_classification", "zeroshot_retrieval", "linear_probe"] and not cfg.ray.enabled


def test_unknown_key_and_unknown_benchmark_name_the_key(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text("benchmarks: [digits, cifar10]\n")
    with pytest.raises(ConfigError, match=r"benchmarks.*unknown benchmark 'cifar10'"):
        load_config(EvalConfig, path)
    path.write_text("benchmark: [digits]\n")
    with pytest.raises(ConfigError, match="unknown key 'benchmark'"):
        load_config(EvalConfig, path)
    with pytest.raises(ConfigError, match="tasks"):
        load_config(EvalConfig, None, ["tasks=[captioning]"])
    with pytest.raises(ConfigError, match="recall_k"):
        load_config(EvalConfig, None, ["recall_k=[0]"])


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "configs"
    for path in sorted(root.glob("eval*.yaml")):
        load_config(EvalConfig, path)
    assert list(root.glob("eval*.yaml"))


def test_checkpoint_flag_dir_file_missing(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"")
    assert checkpoint_settings(str(tmp_path)) == {"model": f"local-dir:{tmp_path}", "checkpoint": None}
    assert checkpoint_settings(str(tmp_path / "w.safetensors")) == {"checkpoint": str(tmp_path / "w.safetensors")}
    with pytest.raises(EvaluationError, match="does not exist"):
        checkpoint_settings(str(tmp_path / "missing"))


def test_flags_win_over_file_and_set(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text("benchmarks: [digits]\nbatch_size: 8\noutput_dir: a\n")
    cfg = load_eval_config(
        path, ["batch_size=16", "output_dir=b"], benchmarks="digits, wds:/data/x", output=tmp_path / "c", num_gpus=1
    )
    assert cfg.benchmarks == ["digits", "wds:/data/x"] and cfg.batch_size == 16
    assert cfg.output_dir == str(tmp_path / "c") and cfg.ray.enabled and cfg.ray.num_gpus == 1
    with pytest.raises(ConfigError, match="command-line flags"):
        load_eval_config(None, None, benchmarks="nope")
