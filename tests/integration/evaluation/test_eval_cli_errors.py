"""Bad input to `clipforge eval` is one paragraph on stderr and exit status 2, never a traceback."""

import subprocess
import sys

import pytest

from evaluation.datasets import load_digits_benchmark
from evaluation.wds import export_wds
from pipeline.cli import main


def _fails(argv, capsys, *needles):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_missing_checkpoint_dir(tmp_path, capsys):
    _fails(["eval", "--checkpoint", str(tmp_path / "nope")], capsys, "nope", "does not exist")
    _fails(["eval", "--model", f"local-dir:{tmp_path / 'nope'}", "-o", str(tmp_path)], capsys, "does not exist")


def test_local_dir_without_weights(tmp_path, capsys):
    (tmp_path / "open_clip_config.json").write_text('{"model_cfg": {}, "preprocess_cfg": {}}')
    _fails(["eval", "--checkpoint", str(tmp_path), "-o", str(tmp_path / "o")], capsys, "no weights file")


def test_config_with_unknown_benchmark(tmp_path, capsys):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("benchmarks: [digits, imagenet1k]\n")
    _fails(["eval", str(cfg)], capsys, "eval.yaml", "benchmarks", "unknown benchmark 'imagenet1k'")


def test_wds_folder_without_classnames(tmp_path, capsys):
    root = export_wds(load_digits_benchmark().limit(20), tmp_path / "wds")
    (root / "classnames.txt").unlink()
    argv = ["eval", "--benchmarks", f"wds:{root}", "-o", str(tmp_path / "o")]
    _fails(argv, capsys, "classnames.txt", str(root))
    assert not (tmp_path / "o" / "results.json").exists()


def test_console_entry_exits_2(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "eval", "--checkpoint", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
