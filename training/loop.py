"""The per-worker training loop: build_model -> restore_or_init -> per epoch (train_step, maybe_report) -> finish.

Runs inside a Ray Train worker. Only a plain dict crosses the Ray boundary (`{"config": TrainConfig as JSON,
"board": name, "export_uri": str | None}`); the loop rebuilds the typed config. Every rank runs the same number
of steps with the same local batch size — the contrastive all-gather needs it — so the end of an epoch is
agreed collectively (`all_ranks_have_batch`), never decided by one rank's iterator alone.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from training import board as run_board
from training.checkpoint import export_model, load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.data import iter_epoch, rank_epoch_dataset, read_manifest
from training.metrics import MetricWindow, RunLog, SampleLog
from training.periodic_eval import RunEvaluator, eval_due
from training.step import Progress, Worker, build_worker, train_step, window_metrics


@dataclass(frozen=True)
class RunIO:
    """Where this run's files go (Ray Train's run directory on its filesystem) and its board's name."""

    fs: Any
    run_root: str
    board: str
    control_group: Any  # gloo group for the per-step "have a batch" vote (None: the default group)
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None  # rank 0's in-run eval; None elsewhere/off
    epoch_data: Callable[[int], Any] | None = None  # data.exact_order: this rank's dataset for an epoch
    samples: SampleLog | None = None  # log.sample_keys: this rank's trained sample keys


def train_loop_per_worker(raw: dict[str, Any]) -> dict[str, Any] | None:
    """Ray Train entry point. Returns the run summary on rank 0 (fit()'s `Result.return_value`)."""
    cfg = TrainConfig.model_validate(raw["config"])
    w, io = build_model(cfg, raw["board"])
    progress = restore_or_init(w)
    resumed_from = progress.step
    log = open_run_log(io, cfg, progress) if w.rank == 0 else None
    if cfg.log.sample_keys:
        io = replace(io, samples=SampleLog(io.fs, io.run_root, w.rank, resumed_from))
    shard = None if cfg.data.exact_order else ray.train.get_dataset_shard("train")
    window = MetricWindow()
    while progress.step < cfg.steps:
        if run_epoch(w, io, shard, progress, window, log) == 0:
            raise RuntimeError(
                f"epoch {progress.epoch} gave no full step of {cfg.optim.accum_freq} x {cfg.local_batch_size} "
                f"samples per worker: the data (after online balancing) is smaller than data.batch_size="
                f"{cfg.data.batch_size} x optim.accum_freq={cfg.optim.accum_freq}"
            )
        if progress.step < cfg.steps:  # the data ran out before the step budget: next epoch
            progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
    return finish(w, io, progress, log, resumed_from, raw.get("export_uri"))


def build_model(cfg: TrainConfig, board: str) -> tuple[Worker, RunIO]:
    """This rank's model (DDP-wrapped by Ray when world > 1), loss, optimizer, and where the run's files go."""
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    wrap = ray.train.torch.prepare_model if world > 1 else None
    w = build_worker(cfg, ray.train.torch.get_device(), rank, world, wrap=wrap)
    control = dist.new_group(backend="gloo") if world > 1 and dist.get_backend() != "gloo" else None
    storage = ctx.get_storage()  # DeveloperAPI (Ray is pinned): the run directory on RunConfig's filesystem
    io = RunIO(storage.storage_filesystem, storage.experiment_fs_path, board, control)
    if rank == 0 and cfg.eval.every_steps is not None:
        io = replace(io, evaluate=RunEvaluator(cfg, w.built, w.device))  # benchmarks load once, before step 1
    if cfg.data.exact_order:
        io = replace(io, epoch_data=exact_order_data(w))
    return w, io


def exact_order_data(w: Worker) -> Callable[[int], Any]:
    """`data.exact_order`: epoch -> this rank's own dataset for it (training.data.rank_epoch_dataset)."""
    from pipeline.core.storage import filesystem

    cfg = w.cfg
    fs, path = filesystem(cfg.data.manifest, cfg.s3)
    shards = read_manifest(fs, path)
    d = cfg.data
    return lambda epoch: rank_epoch_dataset(
        fs,
        shards,
        rank=w.rank,
        world=w.world,
        epoch=epoch,
        model_name=cfg.model.name,
        image_size=w.built.image_size,
        crop_scale=d.crop_scale,
        seed=cfg.seed,
        balance=d.online_balance,
        shuffle=d.shuffle,
        decode_cpus=d.decode_cpus,
        batch_size=cfg.local_batch_size,
    )


def restore_or_init(w: Worker) -> Progress:
    """Resume from Ray Train's latest checkpoint (after a worker failure, or a re-run with the same name), else
    start at step 0 with the seed's weights (identical on every rank)."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return Progress()
    with checkpoint.as_directory() as directory:
        return Progress(**load_checkpoint(directory, w.model, w.optimizer))


def open_run_log(io: RunIO, cfg: TrainConfig, progress: Progress) -> RunLog:
    log = RunLog(io.fs, io.run_root, tensorboard=cfg.log.tensorboard)
    log.resume_at(progress.step)
    return log


def run_epoch(w: Worker, io: RunIO, shard: Any, progress: Progress, window: MetricWindow, log: RunLog | None) -> int:
    """Train on this epoch's batches until the data or the step budget runs out; returns the optimizer steps the
    epoch's data held (skipped ones included).

    Every step takes `optim.accum_freq` batches; a shorter remainder at the end of an epoch is dropped. Resuming
    mid-epoch skips the `batch_in_epoch` batches the restored state already trained on.
    """
    if w.rank == 0:
        run_board.set_epoch(io.board, progress.epoch)  # before this epoch's pipeline starts (see training.board)
    source = io.epoch_data(progress.epoch) if io.epoch_data is not None else shard
    batches = iter_epoch(source, w.cfg.local_batch_size, w.cfg.data.prefetch_batches)
    accum = w.cfg.optim.accum_freq
    to_skip, consumed, pending, waited = progress.batch_in_epoch, 0, [], 0.0
    while progress.step < w.cfg.steps:
        started = time.perf_counter()
        batch = next(batches, None)
        waited += time.perf_counter() - started
        if not all_ranks_have_batch(w, io, batch is not None):
            break
        consumed += 1
        if consumed <= to_skip:
            if consumed == to_skip:
                window.reset()  # skipping is not training: keep it out of the first window's rates
            waited = 0.0
            continue
        pending.append(batch)
        if len(pending) < accum:
            continue
        loss = train_step(w, pending, progress)
        if io.samples is not None:
            io.samples.add(progress.step, progress.epoch, [u for b in pending for u in b["uid64"].tolist()])
        window.add(loss, waited)
        pending, waited = [], 0.0
        maybe_report(w, io, progress, window, log)
    return consumed // accum


def all_ranks_have_batch(w: Worker, io: RunIO, have: bool) -> bool:
    """Collective vote (MIN over ranks): the epoch goes on only while every rank has a full batch."""
    if w.world == 1:
        return have
    flag = torch.tensor([int(have)], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=io.control_group)
    return bool(flag.item())


def maybe_report(w: Worker, io: RunIO, progress: Progress, window: MetricWindow, log: RunLog | None) -> None:
    """Every `log.every_steps`: window metrics to CSV/TensorBoard/board. Every `eval.every_steps` and at the last
    step (when on): rank 0 evaluates (`eval/...` metrics, kept in `progress.eval`) while the others wait at their
    next collective. Every `checkpoint.every_steps` and at the last step: a checkpoint through `ray.train.report`
    (all ranks call it; only rank 0 passes files)."""
    cfg, step = w.cfg, progress.step
    last, evaluate = step == cfg.steps, eval_due(cfg, step)
    metrics: dict[str, Any] = {"step": step, "epoch": progress.epoch, "samples_seen": progress.samples_seen}
    if step % cfg.log.every_steps == 0 or last or evaluate:
        metrics.update(window_metrics(w, progress, window))
        if evaluate and io.evaluate is not None:
            t0 = time.perf_counter()
            progress.eval = io.evaluate(w.model)
            metrics.update(progress.eval)
            metrics["time/eval_s"] = round(time.perf_counter() - t0, 3)  # what this evaluation cost the run
        if log is not None:
            log.write(metrics)
            run_board.publish(io.board, {**metrics, "steps": cfg.steps})
        window.reset()  # after the eval: its time is not training time
    if step % cfg.checkpoint.every_steps == 0 or last:
        report_checkpoint(w, io, progress, metrics, log)


def report_checkpoint(w: Worker, io: RunIO, progress: Progress, metrics: dict[str, Any], log: RunLog | None) -> None:
    name = f"checkpoint_{progress.step:09d}"
    if io.samples is not None:
        io.samples.flush()
    if w.rank != 0:
        ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=name)
        return
    if log is not None:
        log.push()  # logs reach storage no later than the checkpoint they belong to
    with tempfile.TemporaryDirectory(prefix="clipforge-ckpt-") as tmp:
        save_checkpoint(tmp, w.model, w.optimizer, asdict(progress))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp), checkpoint_dir_name=name)


def finish(
    w: Worker, io: RunIO, progress: Progress, log: RunLog | None, resumed_from: int, export_uri: str | None
) -> dict | None:
    """Rank 0: export the model, close the log, write RUN/summary.json; return the summary (None elsewhere)."""
    if w.rank != 0:
        return None
    export = None
    if w.cfg.export.enabled:
        fs, export = _export_target(io, export_uri)
        export_model(fs, export, w.model, w.built.model_cfg)
    if log is not None:
        log.close()
    summary = {
        "name": w.cfg.name,
        "run_dir": io.run_root,
        "steps": progress.step,
        "epochs": progress.epoch + (1 if progress.batch_in_epoch else 0),
        "samples_seen": progress.samples_seen,
        "final_loss": None if math.isnan(progress.last_loss) else progress.last_loss,
        "resumed_from_step": resumed_from,
        "export": export,
        "world_size": w.world,
        "eval": dict(progress.eval),
    }
    with io.fs.open_output_stream(f"{io.run_root}/summary.json") as f:
        f.write(json.dumps(summary, indent=1).encode())
    return summary


def _export_target(io: RunIO, export_uri: str | None) -> tuple[Any, str]:
    if export_uri is None:
        return io.fs, f"{io.run_root}/export"
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(export_uri)
