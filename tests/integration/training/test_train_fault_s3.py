"""Fault tolerance and resume on S3: a worker killed mid-run is replaced and training resumes from the last
checkpoint on the local S3 server; a driver re-run with the same name resumes instead of restarting.

Data, checkpoints, logs and the export all live in the local S3 server (moto on loopback).
"""

import json
import os
import signal
import threading
import time

import pyarrow.fs as pafs
import pytest

from pipeline.core.storage.s3 import filesystem
from tests.fixtures.training import board_step, session_train_workers, tiny_train_config, write_synthetic_build
from training.metrics import read_metrics_csv
from training.trainer import run_training

STEPS, RERUN_STEPS, KILL_AFTER = 32, 36, 12


def checkpoint_registered(fs, run_path: str) -> bool:
    """Whether Ray Train's checkpoint manager snapshot in the run directory names a latest checkpoint."""
    try:
        state = json.loads(read_text(fs, f"{run_path}/checkpoint_manager_snapshot.json"))
    except (OSError, ValueError):
        return False
    return state.get("latest_checkpoint_result") is not None


def read_text(fs, path: str) -> str:
    with fs.open_input_stream(path) as f:
        return f.read().decode()


@pytest.fixture(scope="module")
def s3_runs(ray_local, local_s3, tmp_path_factory):
    bucket_uri = local_s3.create_bucket("cf-train-fault")
    fs, bucket = filesystem(bucket_uri)
    build = write_synthetic_build(tmp_path_factory.mktemp("build"), n=384, shard_size=96)
    pafs.copy_files(str(build), f"{bucket}/build", pafs.LocalFileSystem(), fs)
    cfg = tiny_train_config(
        f"{bucket_uri}/build", f"{bucket_uri}/runs", "fault", steps=STEPS, **{"checkpoint.every_steps": 10}
    )

    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=run_training(cfg)), daemon=True)
    thread.start()
    deadline = time.time() + 300
    # Kill only once step KILL_AFTER is past AND Ray Train's controller has registered a checkpoint (its snapshot
    # file on storage names one): a checkpoint still being registered when the worker dies is rightly not restored
    # from, and on a loaded machine registration can lag the training step by seconds.
    while (
        (board_step(cfg.name) < KILL_AFTER or not checkpoint_registered(fs, f"{bucket}/runs/fault"))
        and thread.is_alive()
        and time.time() < deadline
    ):
        time.sleep(0.2)
    victims = session_train_workers()
    killed_at = board_step(cfg.name)
    os.kill(victims[-1], signal.SIGKILL)
    thread.join(timeout=400)
    assert "summary" in outcome, "the run did not finish after the worker was killed"

    # The re-run also changes the world size: the checkpoint does not depend on it (global batch stays 32).
    rerun_cfg = tiny_train_config(
        f"{bucket_uri}/build",
        f"{bucket_uri}/runs",
        "fault",
        steps=RERUN_STEPS,
        **{"checkpoint.every_steps": 10, "workers.num_workers": 1, "workers.cpus_per_worker": 1},
    )
    rerun = run_training(rerun_cfg)
    return {
        "fs": fs,
        "run": f"{bucket}/runs/fault",
        "first": outcome["summary"],
        "rerun": rerun,
        "victims": victims,
        "killed_at": killed_at,
    }


def test_a_killed_worker_is_replaced_and_training_resumes_from_the_last_checkpoint(s3_runs):
    first = s3_runs["first"]
    assert len(s3_runs["victims"]) == 2 and s3_runs["killed_at"] >= KILL_AFTER
    assert first.steps == STEPS and first.samples_seen == STEPS * 32
    # Restored from a checkpoint taken before the kill, not from scratch and not from the future.
    assert first.resumed_from_step % 10 == 0 and 10 <= first.resumed_from_step <= s3_runs["killed_at"]


def test_metrics_have_every_step_once_across_the_restart(s3_runs):
    rows = read_metrics_csv(read_text(s3_runs["fs"], f"{s3_runs['run']}/metrics.csv"))
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(4, RERUN_STEPS + 1, 4))
    resumed = s3_runs["first"].resumed_from_step
    after = next(float(r["loss/contrastive"]) for r in rows if int(r["step"]) > resumed)
    assert after < float(rows[0]["loss/contrastive"]) - 0.3  # continued training, not a fresh init


def test_driver_rerun_with_the_same_name_resumes(s3_runs):
    rerun = s3_runs["rerun"]
    assert rerun.resumed_from_step == STEPS
    assert (rerun.steps, rerun.samples_seen, rerun.world_size) == (RERUN_STEPS, RERUN_STEPS * 32, 1)


def test_checkpoints_logs_and_export_are_on_s3(s3_runs):
    fs, run = s3_runs["fs"], s3_runs["run"]
    names = {info.base_name for info in fs.get_file_info(pafs.FileSelector(run))}
    checkpoints = sorted(n for n in names if n.startswith("checkpoint_0"))
    assert checkpoints == ["checkpoint_000000032", "checkpoint_000000036"]  # num_to_keep=2: the latest two
    assert {"metrics.csv", "config.yaml", "summary.json", "export", "tb"} <= names
    export = {info.base_name for info in fs.get_file_info(pafs.FileSelector(f"{run}/export"))}
    assert export == {"open_clip_config.json", "open_clip_model.safetensors"}
    assert s3_runs["rerun"].export == f"s3://{run}/export" and s3_runs["rerun"].run_dir == f"s3://{run}"
