"""`clipforge demo` end to end, small: synthetic web on loopback → build → train → eval → report, local and on S3.

The full-size demo (4,000 candidates, 400 steps) is what `make demo` runs; its figures are in README. Here the web
and the training are small enough for CI, and the assertions are about the loop being whole and consistent.
"""

import json
import subprocess
import sys
from pathlib import Path

SIZE, STEPS = 600, 12


def run_demo(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.cli", "demo", "--workdir", str(workdir)]
    cmd += ["--size", str(SIZE), "--steps", str(STEPS), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def check(workdir: Path, out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((workdir / "demo_summary.json").read_text())
    c = summary["counts"]
    assert c["input_rows"] == SIZE and c["kept"] + c["rejected"] == SIZE
    assert 0 < c["kept"] < SIZE and summary["shards"] >= 1
    assert summary["train"]["steps"] == STEPS and summary["train"]["samples_seen"] == STEPS * 64
    assert set(summary["zeroshot"]) == {"digits", "synthetic"}
    assert summary["zeroshot"]["synthetic"]["n_classes"] == 74 and summary["zeroshot"]["digits"]["n_classes"] == 10
    for name in ("build", "train", "eval", "report"):
        assert summary["seconds"][name] > 0
    assert "zero-shot synthetic: acc1" in out.stdout and f"report: {summary['report']}" in out.stdout
    return summary


def test_demo_local(tmp_path):
    summary = check(tmp_path, run_demo(tmp_path))
    run = tmp_path / "run"
    assert summary["report"] == str(run / "report.html")
    html = (run / "report.html").read_text()
    assert "Funnel" in html and "Training" in html and "synthetic" in html
    assert (run / "manifest.json").exists() and list((run / "shards").glob("shard-*.tar"))
    assert json.loads((run / "eval" / "results.json").read_text())["results"]
    assert (run / "train" / "demo-tiny" / "export" / "open_clip_config.json").exists()


def test_demo_s3(tmp_path):
    summary = check(tmp_path, run_demo(tmp_path, "--s3"))
    assert summary["run"].startswith("s3://clipforge-demo/") and summary["report"].startswith("s3://clipforge-demo/")
    assert summary["train"]["export"].startswith("s3://clipforge-demo/")
    assert not (tmp_path / "run").exists()  # nothing of the run on local disk: it all went to the S3 server
