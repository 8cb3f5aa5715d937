"""`clipforge report RUN --train-run T` refuses a training run that trained on another build (identity.json)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.training import tiny_train_config, write_synthetic_build
from training.identity import check_resume, write_identity

REPO = Path(__file__).resolve().parents[3]
METRICS = "step,epoch,samples_seen,loss/contrastive\n4,0,128,3.1\n8,0,256,2.9\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-train")
    a = write_synthetic_build(root / "a", n=8, shard_size=8, seed=0)
    b = write_synthetic_build(root / "b", n=8, shard_size=8, seed=1)
    cfg = tiny_train_config(str(a), str(root / "train"), "on-a")
    write_identity(cfg, check_resume(cfg))
    (root / "train" / "on-a" / "metrics.csv").write_text(METRICS)
    return a, b, root / "train" / "on-a"


def report(build: Path, train_run: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.cli", "report", str(build), "--train-run", str(train_run), "-o", str(out)]
    env = {**os.environ, "RAY_ADDRESS": ""}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def test_a_run_trained_on_another_build_is_refused(runs, tmp_path):
    _, b, train_run = runs
    res = report(b, train_run, tmp_path / "report.html")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"error: training run {train_run} did not train on {b}: it trained on ")
    assert "pass the --train-run that trained on this build" in res.stderr
    assert not (tmp_path / "report.html").exists()


def test_the_run_that_trained_on_the_build_is_reported(runs, tmp_path):
    a, _, train_run = runs
    res = report(a, train_run, tmp_path / "report.html")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"report: {tmp_path / 'report.html'}" and (tmp_path / "report.html").is_file()
