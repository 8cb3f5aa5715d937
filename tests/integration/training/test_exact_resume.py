"""Exact resume (`data.exact_order`): a 2-worker CPU run whose worker is SIGKILLed between checkpoints and that
resumes from its last checkpoint trains, on each rank, on exactly the sample keys, in the same order, as an
uninterrupted run, with online balancing on; and ends with the same weights (fp32 tolerance)."""

import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import torch

from tests.fixtures.training import board_step, session_train_workers, tiny_train_config, write_synthetic_build
from training.data import rank_epoch_dataset, read_manifest
from training.metrics import read_sample_log
from training.trainer import run_training

STEPS, EVERY = 18, 6
FS = pafs.LocalFileSystem()


def exact_config(build: Path, runs: Path, name: str):
    keys = {"data.exact_order": True, "data.online_balance": True, "log.sample_keys": True, "log.tensorboard": False}
    keys |= {"checkpoint.every_steps": EVERY, "checkpoint.num_to_keep": "null", "export.enabled": False}
    return tiny_train_config(str(build), str(runs), name, steps=STEPS, **keys)


@pytest.fixture(scope="module")
def runs(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    build = write_synthetic_build(root / "build", n=384, shard_size=48)  # 8 shards: 4 per rank, ~11 steps/epoch
    reference = run_training(exact_config(build, root / "runs", "reference"))

    cfg = exact_config(build, root / "runs", "killed")
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=run_training(cfg)), daemon=True)
    thread.start()
    deadline = time.time() + 300
    snapshot = root / "runs" / "killed" / "checkpoint_manager_snapshot.json"
    while (board_step(cfg.name) <= EVERY or not snapshot.exists()) and thread.is_alive() and time.time() < deadline:
        time.sleep(0.1)
    killed_at = board_step(cfg.name)
    os.kill(session_train_workers()[-1], signal.SIGKILL)  # between checkpoints: after step EVERY, before 2 * EVERY
    thread.join(timeout=400)
    assert "summary" in outcome, "the run did not finish after the worker was killed"
    return {"root": root, "build": build, "reference": reference, "killed": outcome["summary"], "killed_at": killed_at}


def sample_logs(run: Path) -> dict[tuple[int, int], dict[int, list[int]]]:
    """{(rank, start step): {step: uid64s}} of a run's sample logs."""
    out = {}
    for path in sorted((run / "samples").glob("rank-*.tsv")):
        rank, start = path.stem.removeprefix("rank-").split(".from-")
        out[int(rank), int(start)] = read_sample_log(path.read_text())
    return out


def test_resumed_ranks_train_on_the_uninterrupted_runs_samples_in_order(runs):
    killed, resumed = runs["killed"], runs["killed"].resumed_from_step
    assert killed.steps == STEPS and resumed % EVERY == 0 and EVERY <= resumed < STEPS
    assert runs["killed_at"] > resumed  # the kill came after the checkpoint it resumes from: steps were redone
    ref, got = sample_logs(runs["root"] / "runs" / "reference"), sample_logs(runs["root"] / "runs" / "killed")
    assert set(ref) == {(0, 0), (1, 0)} and {(0, resumed), (1, resumed)} <= set(got)
    for rank in (0, 1):
        after = {s: keys for s, keys in ref[rank, 0].items() if s > resumed}
        assert got[rank, resumed] == after  # every step from the checkpoint on: same keys, same order
        assert all(len(keys) == 16 for keys in after.values())
    # Not vacuous: the two ranks see different samples, and the run crossed an epoch boundary (reshuffled, rebalanced).
    assert set(ref[0, 0][1]).isdisjoint(ref[1, 0][1])
    assert runs["reference"].epochs >= 2


def test_resumed_run_ends_with_the_uninterrupted_runs_weights(runs):
    def weights(name: str) -> dict[str, torch.Tensor]:
        path = runs["root"] / "runs" / name / f"checkpoint_{STEPS:09d}" / "state.pt"
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

    ref, got = weights("reference"), weights("killed")
    assert ref.keys() == got.keys()
    for name, tensor in ref.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("balance", [False, True])
def test_rank_epoch_dataset_is_a_pure_function_of_seed_epoch_rank(runs, balance):
    shards = read_manifest(FS, str(runs["build"]))
    kw = {"model_name": "clipforge-debug", "image_size": 32, "crop_scale": (0.9, 1.0), "seed": 0}
    kw |= {"balance": balance, "shuffle": True, "decode_cpus": 0.5, "batch_size": 16, "world": 2}

    def keys(rank: int, epoch: int) -> list[int]:
        ds = rank_epoch_dataset(FS, shards, rank=rank, epoch=epoch, **kw)
        return [int(u) for b in ds.iter_batches(batch_size=None) for u in b["uid64"]]

    first = keys(0, 0)
    assert keys(0, 0) == first  # a second execution: the same order
    both = first + keys(1, 0)
    assert len(set(both)) == len(both)  # ranks read disjoint shards
    assert (len(both) < 384) == balance  # balancing drops some red samples
    assert keys(0, 1) != first  # the next epoch: another shard order (and another balanced subset)
