"""`clipforge demo` end to end: a synthetic web on loopback, a local Ray, every row at its expected outcome."""

import json
import subprocess
import sys
from pathlib import Path


def run_demo(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.cli", "demo", "--workdir", str(workdir), "--size", "300", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def check(workdir: Path, out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((workdir / "demo_summary.json").read_text())
    assert summary["candidates"] == 300 and summary["downloaded_rows"] == 300
    assert summary["mismatches"] == 0
    # the web planted faults, and the demo saw them as the answers file says
    assert summary["outcomes"]["ok -> ok"] > 200
    assert sum(n for k, n in summary["outcomes"].items() if not k.endswith("-> ok")) > 0
    assert "every row reached its expected outcome" in out.stdout
    return summary


def test_demo_local(tmp_path):
    summary = check(tmp_path, run_demo(tmp_path))
    assert list((tmp_path / "fetch").glob("*.parquet"))
    assert summary["results"].startswith("/")


def test_demo_s3(tmp_path):
    summary = check(tmp_path, run_demo(tmp_path, "--s3"))
    assert summary["results"].startswith("s3://clipforge-demo/")
