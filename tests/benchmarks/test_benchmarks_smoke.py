"""Benchmarks cannot rot: every script in benchmarks/ runs its `--smoke` mode (a tiny run, seconds, no internet, no
GPU, no peer installed) end to end, exits 0 and prints its result line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# script -> a piece of the output its smoke run must print (its result line or table)
EXPECTED = {
    "balance_ablation.py": "### Balance ablation",
    "bench_balance.py": "| count + balance, 2,000 rows",
    "bench_build.py": "### Build end to end",
    "bench_embed.py": "| embed stage, steady state",
    "bench_dedup.py": "| measurement | peer | clipforge | ratio | command |",
    "bench_download.py": "round 1 fused:",
    "bench_eval.py": "smoke: clipforge zero-shot on 200 digits",
    "bench_extract.py": "### WAT extraction",
    "bench_localweb.py": "| localweb: image GETs on loopback",
    "bench_semdedup.py": "| clipforge semantic_duplicates (normalise",
    "bench_ray_overhead.py": "### Fixed cost of one Ray Data execution",
    "bench_text.py": "- (b) normalise + filters + LID + match, end to end",
    "bench_train.py": "### Training throughput",
    "probe_image_stacks.py": "round 1  ours",
}
# Per script: the Ray-based ones (a whole build, Ray Train) pay Ray's per-step start-up: minutes on a busy 2-core box.
TIMEOUT_S = 600


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")) == sorted(EXPECTED)


@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_smoke_mode_runs_end_to_end(script):
    env = {**os.environ, "RAY_ADDRESS": "", "CUDA_VISIBLE_DEVICES": ""}  # a local Ray, CPU only
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{script} --smoke exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert EXPECTED[script] in proc.stdout, proc.stdout[-3000:]


def test_levers_smoke_measures_every_lever():
    """`bench_train.py --levers` (train_step with accum_freq, patch_dropout, checkpointing, compile), debug model."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "benchmarks/bench_train.py", "--levers", "--smoke"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("| baseline", "| optim.", "| model."))]
    assert len(rows) == 5 and rows[0].startswith("| baseline |") and "| 1.00x |" in rows[0], proc.stdout
