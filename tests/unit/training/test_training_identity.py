"""A training run's resume identity: the build (manifest.json sha256) and every key that changes what is trained.

Resuming a name with another build or such a key is refused before Ray starts, naming the keys; execution keys
(workers, logging, checkpoints, steps, where the build is read from) may change.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import ClipforgeError
from tests.fixtures.training import tiny_train_config, write_synthetic_build
from training.identity import (
    EXECUTION_ONLY,
    IDENTITY_FILE,
    RESUME_MARKER,
    check_resume,
    identity_diff,
    read_identity,
    train_identity,
    write_identity,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity")
    return (
        write_synthetic_build(root / "a", n=8, shard_size=8, seed=0),
        write_synthetic_build(root / "b", n=8, shard_size=8, seed=1),
    )


def trained_run(tmp_path, build, **overrides):
    """A run directory as `clipforge train` leaves it after a checkpoint: identity.json + Ray's snapshot."""
    cfg = tiny_train_config(str(build), str(tmp_path / "runs"), "r", **overrides)
    write_identity(cfg, check_resume(cfg))
    (tmp_path / "runs" / "r" / RESUME_MARKER).write_text("{}")
    return cfg


def test_execution_keys_do_not_change_the_identity(builds):
    a = tiny_train_config(str(builds[0]), "/runs", "r")
    b = tiny_train_config(
        str(builds[0]) + "/manifest.json",
        "/elsewhere",
        "r",
        steps=600,
        **{"workers.num_workers": 1, "workers.cpus_per_worker": 2, "log.every_steps": 1, "checkpoint.every_steps": 5,
           "data.decode_cpus": 1, "model.precision": "fp32", "export.enabled": False, "failure.max_failures": 3},
    )  # fmt: skip
    assert identity_diff(train_identity(a, "h"), train_identity(b, "h")) == []
    assert {"workers", "log", "checkpoint", "steps", "data.manifest"} <= set(EXECUTION_ONLY)


def test_what_is_trained_is_the_identity(builds):
    base = train_identity(tiny_train_config(str(builds[0]), "/runs", "r"), "h")
    changed = tiny_train_config(str(builds[0]), "/runs", "r", seed=3, **{"optim.lr": 0.01, "data.batch_size": 16})
    assert identity_diff(base, train_identity(changed, "h")) == [
        "data.batch_size: 32 -> 16",
        "optim.lr: 0.002 -> 0.01",
        "seed: 0 -> 3",
    ]
    assert "model.name" in base["config"] and "loss.kind" in base["config"] and "data.shuffle" in base["config"]
    other_build = identity_diff(base, train_identity(tiny_train_config("/b", "/runs", "r"), "f" * 64))
    assert len(other_build) == 1 and other_build[0].startswith("build: manifest.json sha256 h (")


def test_resuming_on_another_build_is_refused(tmp_path, builds):
    trained_run(tmp_path, builds[0])
    other = tiny_train_config(str(builds[1]), str(tmp_path / "runs"), "r")
    with pytest.raises(ClipforgeError, match=r"run 'r' .* different build or config.*build: manifest.json sha256"):
        check_resume(other)


def test_resuming_with_execution_changes_is_allowed(tmp_path, builds):
    cfg = trained_run(tmp_path, builds[0])
    more = tiny_train_config(str(builds[0]), str(tmp_path / "runs"), "r", steps=80, **{"workers.num_workers": 1})
    assert check_resume(more) == read_identity(tmp_path / "runs" / "r") == check_resume(cfg)


def test_a_run_without_checkpoints_may_start_over(tmp_path, builds):
    cfg = trained_run(tmp_path, builds[0])
    (tmp_path / "runs" / "r" / RESUME_MARKER).unlink()  # died before its first checkpoint: nothing to resume
    other = tiny_train_config(str(builds[1]), str(tmp_path / "runs"), "r")
    assert check_resume(other)["manifest_sha256"] != check_resume(cfg)["manifest_sha256"]


def test_a_run_from_before_identity_json_is_checked_against_its_config_yaml(tmp_path, builds):
    from pipeline.core.config import dump_config

    cfg = trained_run(tmp_path, builds[0])
    run = tmp_path / "runs" / "r"
    (run / IDENTITY_FILE).unlink()
    (run / "config.yaml").write_text(dump_config(cfg))
    assert check_resume(tiny_train_config(str(builds[0]), str(tmp_path / "runs"), "r", steps=90))
    with pytest.raises(ClipforgeError, match="data.manifest: "):
        check_resume(tiny_train_config(str(builds[1]), str(tmp_path / "runs"), "r"))


def test_cli_refuses_before_ray_starts_and_leaves_the_run_as_it_was(tmp_path, builds):
    """What a user types: same name, another build. Exit 2, one paragraph naming the keys, nothing overwritten."""
    from pipeline.core.config import dump_config

    cfg = trained_run(tmp_path, builds[0])
    (tmp_path / "train.yaml").write_text(dump_config(cfg))
    run = tmp_path / "runs" / "r"
    (run / "export").mkdir()
    (run / "export" / "open_clip_model.safetensors").write_bytes(b"weights of step 30")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    cmd = [sys.executable, "-m", "pipeline.cli", "train", str(tmp_path / "train.yaml"),
           "--set", f"data.manifest={builds[1]}", "--set", "optim.lr=0.01", "--set", "steps=60"]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": ""}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: run 'r' (") and "Traceback" not in res.stderr
    assert "build: manifest.json sha256" in res.stderr and "optim.lr: 0.002 -> 0.01" in res.stderr
    assert " steps:" not in res.stderr  # steps is execution-only: extending a run is what resuming is for
    assert "Use a new --set name=" in res.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert (run / "export" / "open_clip_model.safetensors").read_bytes() == b"weights of step 30"
    assert not (run / "tb").exists() and not (run / "metrics.csv").exists()
    shutil.rmtree(run)


def test_warmup_longer_than_the_run_warns_once(tmp_path, capsys):
    from pipeline.cli import main
    from training.config import config_warnings

    assert config_warnings(tiny_train_config("/b", "/runs", "r")) == []
    with pytest.raises(SystemExit) as e:  # the warning comes first; then the missing build stops it, before Ray
        main(["train", "--set", f"data.manifest={tmp_path}/none", "--set", "steps=50"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("warning:") == 1
    assert err.startswith("warning: optim.warmup_steps=100 >= steps=50: the learning rate ramps up for the whole run")
