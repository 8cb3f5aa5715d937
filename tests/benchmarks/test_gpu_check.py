"""benchmarks/gpu_check.sh cannot rot on a machine without a GPU: its `--dry-run` parses every command it would run
(each benchmark's `--parse-only`), and a command line that does not parse fails it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def dry_run(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"],
        env={**os.environ, "CB_PYTHON": "/nonexistent", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_parses_every_command():
    proc = dry_run()
    assert proc.returncode == 0, proc.stderr
    parsed = [json.loads(line.split(" -> ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("ok: ")]
    train = [p for p in parsed if "with_data" in p]
    assert [(p["model"], p["gpu"], p["with_data"]) for p in train] == [
        ("ViT-B-32", True, True),
        ("ViT-B-16", True, True),
    ]
    evals = [p for p in parsed if "ours_only" in p]
    assert len(evals) == 1 and evals[0]["device"] == "cuda" and evals[0]["ours_only"] is True


def test_dry_run_fails_on_a_command_that_does_not_parse():
    proc = dry_run(EXTRA_ARGS="--no-such-flag")
    assert proc.returncode == 1
    assert "DOES NOT PARSE: benchmarks/bench_train.py --gpu" in proc.stderr
    assert "unrecognized arguments: --no-such-flag" in proc.stderr
