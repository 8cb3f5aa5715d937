"""Benchmarks cannot rot: every script in benchmarks/ runs its `--smoke` mode (a tiny run, seconds, no internet, no
GPU, no peer installed) end to end, exits 0 and prints its result line. The smokes run side by side (`smokes`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
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
    "model_curation_quality.py": "### Model-based curation quality",
    "bench_ray_overhead.py": "### Fixed cost of one Ray Data execution",
    "bench_text.py": "- (b) normalise + filters + LID + match, end to end",
    "bench_train.py": "### Training throughput",
    "probe_image_stacks.py": "round 1  ours",
    "worldwide_ablation.py": "### Worldwide vs English-only",
}
# Per script: the Ray-based ones (a whole build, Ray Train) pay Ray's per-step start-up: minutes on a busy 2-core box.
TIMEOUT_S = 600
# The smokes mostly wait (Ray and Ray Train start-up, loopback servers, sleeps between rounds: ~80 s of CPU in ~300 s
# of wall, run one by one), so they run side by side, PARALLEL at a time, the slowest started first; each test then
# only reads its own finished run.
PARALLEL = 4
SLOWEST_FIRST = (
    "model_curation_quality.py",
    "worldwide_ablation.py",
    "bench_train.py",
    "balance_ablation.py",
    "bench_download.py",
    "bench_eval.py",
)
LEVERS = "bench_train.py --levers"


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")) == sorted(EXPECTED)


@dataclass
class Smoke:
    cmd: list[str]
    out: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""


def _commands() -> dict[str, list[str]]:
    order = [*SLOWEST_FIRST, *sorted(set(EXPECTED) - set(SLOWEST_FIRST))]
    cmds = {script: [sys.executable, f"benchmarks/{script}", "--smoke"] for script in order}
    cmds[LEVERS] = [sys.executable, "benchmarks/bench_train.py", "--levers", "--smoke"]
    return cmds


@pytest.fixture(scope="module")
def smokes(tmp_path_factory) -> dict[str, Smoke]:
    """Every smoke run to completion (or killed at TIMEOUT_S), PARALLEL at a time; output in files, not pipes."""
    env = {**os.environ, "RAY_ADDRESS": "", "CUDA_VISIBLE_DEVICES": ""}  # each its own local Ray, CPU only
    tmp = tmp_path_factory.mktemp("smokes")
    runs = {name: Smoke(cmd, tmp / name.replace(" ", "_")) for name, cmd in _commands().items()}
    pending, running = list(runs.values()), []
    while pending or running:
        while pending and len(running) < PARALLEL:
            run = pending.pop(0)
            with open(f"{run.out}.out", "wb") as out, open(f"{run.out}.err", "wb") as err:
                run.proc = subprocess.Popen(run.cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
            run.started = time.monotonic()
            running.append(run)
        time.sleep(0.2)
        for run in list(running):
            if run.proc.poll() is None and time.monotonic() - run.started > TIMEOUT_S:
                run.proc.kill()
            if run.proc.poll() is not None:
                run.returncode = run.proc.returncode
                run.stdout = Path(f"{run.out}.out").read_text(errors="replace")
                run.stderr = Path(f"{run.out}.err").read_text(errors="replace")
                running.remove(run)
    return runs


@pytest.mark.timeout(3 * TIMEOUT_S)
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_smoke_mode_runs_end_to_end(script, smokes):
    run = smokes[script]
    assert run.returncode == 0, f"{script} --smoke exited {run.returncode}:\n{run.stderr[-3000:]}"
    assert EXPECTED[script] in run.stdout, run.stdout[-3000:]


def test_levers_smoke_measures_every_lever(smokes):
    """`bench_train.py --levers` (train_step with accum_freq, patch_dropout, checkpointing, compile), debug model."""
    run = smokes[LEVERS]
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith(("| baseline", "| optim.", "| model."))]
    assert len(rows) == 5 and rows[0].startswith("| baseline |") and "| 1.00x |" in rows[0], run.stdout
