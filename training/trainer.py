"""Driver side of `clipforge train`: resolve storage, build the dataset, run a `TorchTrainer`, return a summary.

Expects Ray to be initialised already (`pipeline.core.ray_setup.init_ray`). Resume is by name: the run directory is
storage_path/name, and Ray Train V2 restores the latest checkpoint of a run with the same (storage_path, name);
`preflight` refuses to resume a run trained on another build or config (training/identity.py).
`fit()` raises when retries are exhausted; that becomes a `TrainingFailed` naming the run directory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.config import dump_config
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import Uri, filesystem, pyarrow_uri, ray_train_storage, write_bytes
from training.board import board_name, create_board
from training.config import TrainConfig
from training.data import build_dataset, read_manifest
from training.identity import check_resume, write_identity
from training.loop import train_loop_per_worker
from training.model import resolve_model_config


class TrainingFailed(ClipforgeError):
    """The training run failed after its allowed restarts; the message names the run directory."""


@dataclass(frozen=True)
class TrainSummary:
    """What `clipforge train` prints at the end."""

    name: str
    run_dir: str
    steps: int
    epochs: int
    samples_seen: int
    final_loss: float | None
    resumed_from_step: int
    export: str | None
    world_size: int
    wall_s: float
    eval: dict[str, float] = field(default_factory=dict)
    """The last in-run evaluation (eval.every_steps), empty when off."""


def scaling_config(cfg: TrainConfig):
    import ray.train

    w = cfg.workers
    resources = {"CPU": w.cpus_per_worker, **({"GPU": 1} if w.use_gpu else {})}
    return ray.train.ScalingConfig(
        num_workers=w.num_workers,
        use_gpu=w.use_gpu,
        resources_per_worker=resources,
        accelerator_type=w.accelerator_type,
    )


def run_config(cfg: TrainConfig):
    import ray.train

    return ray.train.RunConfig(
        name=cfg.name,
        **ray_train_storage(cfg.storage_path, cfg.s3),
        failure_config=ray.train.FailureConfig(max_failures=cfg.failure.max_failures),
        checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.checkpoint.num_to_keep),
    )


def preflight(cfg: TrainConfig) -> dict[str, Any]:
    """Fail fast, before Ray starts: the model name must resolve, the build manifest must be complete, and a run
    with the same name must have trained on the same build and config (else resuming it is refused). Returns the
    run's resume identity (training/identity.py)."""
    resolve_model_config(cfg.model.name, cfg.loss.kind)
    read_manifest(*filesystem(cfg.data.manifest, cfg.s3))
    return check_resume(cfg)


def training_dataset(cfg: TrainConfig, board: str | None):
    """The lazy Ray dataset of ready model inputs for `cfg` (manifest read now; shards read per epoch)."""
    fs, path = filesystem(cfg.data.manifest, cfg.s3)
    shards = read_manifest(fs, path)
    model_cfg = resolve_model_config(cfg.model.name, cfg.loss.kind)
    size = model_cfg["vision_cfg"].get("image_size", 224)
    return build_dataset(
        fs,
        shards,
        model_name=cfg.model.name,
        image_size=int(size if isinstance(size, int) else size[0]),
        crop_scale=cfg.data.crop_scale,
        seed=cfg.seed,
        balance=cfg.data.online_balance,
        shuffle=cfg.data.shuffle,
        board=board,
        decode_cpus=cfg.data.decode_cpus,
        batch_size=cfg.local_batch_size,
    )


def save_resolved_config(cfg: TrainConfig, identity: dict[str, Any]) -> str:
    """Write RUN/config.yaml (the resolved config of this invocation) and RUN/identity.json, each atomically;
    returns RUN's URI."""
    run_dir = Uri.parse(cfg.storage_path).join(cfg.name)
    write_bytes(run_dir.join("config.yaml"), dump_config(cfg).encode(), cfg.s3)
    write_identity(cfg, identity)
    return str(run_dir)


def run_training(cfg: TrainConfig, on_progress: Callable[[dict[str, Any]], None] | None = None) -> TrainSummary:
    """Train (or resume) run `cfg.name` to `cfg.steps` steps; `on_progress` gets rank 0's metrics as they come."""
    import ray.train
    from ray.train.torch import TorchTrainer

    started = time.time()
    identity = preflight(cfg)  # unknown model, missing data, another run's name: fail here, not in every worker
    run_dir = save_resolved_config(cfg, identity)
    board = create_board(cfg.name)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": cfg.model_dump(mode="json"),
            "board": board_name(cfg.name),
            "export_uri": pyarrow_uri(cfg.export.path, cfg.s3) if cfg.export.path else None,
        },
        scaling_config=scaling_config(cfg),
        run_config=run_config(cfg),
        # data.exact_order: every rank builds its own dataset per epoch (training.data.rank_epoch_dataset)
        datasets=None if cfg.data.exact_order else {"train": training_dataset(cfg, board_name(cfg.name))},
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]) if not cfg.data.exact_order else None,
    )
    watcher = _ProgressWatcher(board, on_progress) if on_progress else None
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        raise TrainingFailed(f"training run {cfg.name!r} failed (run directory {run_dir}): {_first_line(e)}") from e
    finally:
        if watcher:
            watcher.stop()
        ray.kill(board)
    summary = dict(result.return_value or {})
    # The worker names paths inside its filesystem ("bucket/key"); tell the user the URIs.
    summary["run_dir"] = run_dir
    if summary.get("export"):
        summary["export"] = str(Uri.parse(cfg.export.path) if cfg.export.path else Uri.parse(run_dir).join("export"))
    return TrainSummary(**{**summary, "wall_s": time.time() - started})


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


class _ProgressWatcher:
    """Polls the board in a thread and calls `on_progress` once per new step."""

    def __init__(self, board, on_progress: Callable[[dict[str, Any]], None], every_s: float = 1.0):
        self.board, self.on_progress, self.every_s = board, on_progress, every_s
        self.stopped = threading.Event()
        self.last = None
        self.thread = threading.Thread(target=self._run, name="clipforge-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:

        while not self.stopped.wait(self.every_s):
            if not self._poll():
                return

    def _poll(self) -> bool:
        import ray

        try:
            metrics = ray.get(self.board.latest.remote(), timeout=5)
        except Exception:  # the board went away with the run: nothing more to show
            return False
        if metrics and metrics.get("step") != self.last:
            self.last = metrics.get("step")
            self.on_progress(metrics)
        return True

    def stop(self) -> None:
        """Stop polling; report the final metrics if the thread had not seen them yet."""
        self.stopped.set()
        self.thread.join(timeout=5)
        self._poll()
