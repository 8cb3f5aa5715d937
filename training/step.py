"""One training step and its metrics, in plain torch: what a rank trains with, and how it takes a step.

No Ray here (the loop in `training.loop` adds Ray Train around it), so the GPU paths — bf16 autocast, fused AdamW,
torch.compile, gradient checkpointing, MFU — can be exercised on a bare CUDA machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from training.config import LOGIT_SCALE_MAX, TrainConfig
from training.loss import build_loss, contrastive_loss
from training.metrics import MetricWindow, peak_tflops_for
from training.model import BuiltModel, build_model, forward_flops_per_sample
from training.optim import build_optimizer, lr_at, set_lr


@dataclass
class Progress:
    """Counters a checkpoint restores. `batch_in_epoch` is the data position inside `epoch`."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples_seen: int = 0
    last_loss: float = float("nan")


@dataclass
class Worker:
    """Everything one rank trains with; built once per (re)start by `build_worker`."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    built: BuiltModel
    model: torch.nn.Module  # unwrapped, uncompiled: what checkpoints and exports hold
    train_model: torch.nn.Module  # DDP and/or torch.compile around `model`
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    amp_dtype: torch.dtype | None
    mean: torch.Tensor
    std: torch.Tensor
    flops_per_sample: float
    peak_tflops: float | None


def build_worker(
    cfg: TrainConfig,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> Worker:
    """Model (random init, same seed on every rank) on `device`, `wrap` (e.g. DDP) and torch.compile around it,
    loss for (rank, world), AdamW, precision and MFU settings."""
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(cfg.workers.cpus_per_worker)))
    built = build_model(cfg.model, cfg.loss.kind, seed=cfg.seed)
    flops = forward_flops_per_sample(built.model, built.image_size, built.context_length)
    model = built.model.to(device)
    train_model = wrap(model) if wrap is not None else model
    if cfg.model.torch_compile:
        if cfg.model.grad_checkpointing and world > 1:
            torch._dynamo.config.optimize_ddp = False  # open_clip: DDP graph splits and checkpointing don't mix
        train_model = torch.compile(train_model)
    use_bf16 = cfg.model.precision == "amp_bf16" or (cfg.model.precision == "auto" and device.type == "cuda")
    peak = cfg.workers.peak_tflops
    if peak is None and device.type == "cuda":
        peak = peak_tflops_for(torch.cuda.get_device_name(device))
    pp = built.preprocess_cfg
    return Worker(
        cfg=cfg,
        rank=rank,
        world=world,
        device=device,
        built=built,
        model=model,
        train_model=train_model,
        loss_fn=build_loss(cfg.loss.kind, rank, world),
        optimizer=build_optimizer(model, cfg.optim),
        amp_dtype=torch.bfloat16 if use_bf16 else None,
        mean=torch.tensor(pp["mean"], device=device).view(1, 3, 1, 1),
        std=torch.tensor(pp["std"], device=device).view(1, 3, 1, 1),
        flops_per_sample=flops,
        peak_tflops=peak,
    )


def normalize_images(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W], scaled to [0, 1] then CLIP mean/std normalised."""
    return images.permute(0, 3, 1, 2).float().div_(255.0).sub_(mean).div_(std)


def train_step(w: Worker, batch: dict[str, torch.Tensor], progress: Progress) -> torch.Tensor:
    """One optimizer step on this rank's batch (`image` uint8 NHWC, `text` token ids); returns the local loss.

    The learning rate is set from the step first (warmup + cosine); logit_scale is clamped to ln 100 after.
    """
    set_lr(w.optimizer, lr_at(progress.step, w.cfg.optim, w.cfg.steps))
    images = normalize_images(batch["image"].to(w.device, non_blocking=True), w.mean, w.std)
    texts = batch["text"].to(w.device, non_blocking=True).long()
    autocast = torch.autocast(w.device.type, dtype=w.amp_dtype) if w.amp_dtype else contextlib.nullcontext()
    with autocast:
        loss = contrastive_loss(w.loss_fn, w.train_model(images, texts))
    w.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if w.cfg.optim.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(w.model.parameters(), w.cfg.optim.grad_clip_norm)
    w.optimizer.step()
    with torch.no_grad():
        w.model.logit_scale.clamp_(0, LOGIT_SCALE_MAX)  # CLIP: logits never scaled by more than 100
    progress.step += 1
    progress.batch_in_epoch += 1
    progress.samples_seen += w.cfg.data.batch_size
    return loss


def window_metrics(w: Worker, progress: Progress, window: MetricWindow) -> dict[str, Any]:
    """Window averages; the loss is averaged over ranks (a collective when world > 1: every rank calls this at the
    same step). Sets `progress.last_loss`."""
    loss = (window.loss_sum / max(window.steps, 1)).reshape(1)
    if w.world > 1:
        dist.all_reduce(loss, op=dist.ReduceOp.SUM)
        loss = loss / w.world
    progress.last_loss = float(loss.item())
    out = {
        "loss/contrastive": progress.last_loss,
        "train/lr": w.optimizer.param_groups[0]["lr"],
        "train/logit_scale": float(w.model.logit_scale.exp().item()),
        **window.summary(w.cfg.data.batch_size, w.flops_per_sample, w.world, w.peak_tflops),
    }
    if w.device.type == "cuda":
        out["mem/max_alloc_gib"] = torch.cuda.max_memory_allocated(w.device) / 2**30
    return out
