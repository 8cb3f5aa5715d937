"""One training step and its metrics, in plain torch: what a rank trains with, and how it takes a step.

No Ray here (the loop in `training.loop` adds Ray Train around it), so the GPU paths — bf16 autocast, fused AdamW,
torch.compile, gradient checkpointing, MFU — can be exercised on a bare CUDA machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    eval: dict[str, float] = field(default_factory=dict)
    """The latest in-run evaluation (`eval/<benchmark>/<metric>`); empty before the first."""


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


def train_step(
    w: Worker, batch: dict[str, torch.Tensor] | Sequence[dict[str, torch.Tensor]], progress: Progress
) -> torch.Tensor:
    """One optimizer step on this rank's batch (`image` uint8 NHWC, `text` token ids) or on the `optim.accum_freq`
    micro-batches of one accumulated step; returns the local loss.

    The learning rate is set from the step first (warmup + cosine); logit_scale is clamped to ln 100 after.
    """
    micro = [batch] if isinstance(batch, dict) else list(batch)
    set_lr(w.optimizer, lr_at(progress.step, w.cfg.optim, w.cfg.steps))
    w.optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(w, [_device_inputs(w, b) for b in micro])
    if w.cfg.optim.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(w.model.parameters(), w.cfg.optim.grad_clip_norm)
    w.optimizer.step()
    with torch.no_grad():
        w.model.logit_scale.clamp_(0, LOGIT_SCALE_MAX)  # CLIP: logits never scaled by more than 100
    progress.step += 1
    progress.batch_in_epoch += len(micro)
    progress.samples_seen += w.cfg.data.batch_size * len(micro)
    return loss


def _device_inputs(w: Worker, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    images = normalize_images(batch["image"].to(w.device, non_blocking=True), w.mean, w.std)
    return images, batch["text"].to(w.device, non_blocking=True).long()


def _autocast(w: Worker):
    return torch.autocast(w.device.type, dtype=w.amp_dtype) if w.amp_dtype else contextlib.nullcontext()


FEATURES = ("image_features", "text_features")


def accumulate_gradients(w: Worker, micro: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Backward of the contrastive loss over the concatenation of `micro` (k (images, texts) micro-batches) into
    `.grad` (which the caller zeroes); returns the loss. k = 1 is the plain step.

    k > 1 is open_clip's `--accum-freq` (GradCache-like): k forwards without grad cache every micro-batch's
    features, then each micro-batch is forwarded again with grad and its loss is taken against the whole
    accumulated batch (its own fresh features in place of its cached ones), so every loss sees k x the negatives.
    The k backward passes sum to the gradient of the k-times larger batch: each feature gets its gradient exactly
    once. logit_scale (and bias) enter every one of the k losses, so their gradient is scaled by 1/k (open_clip
    counts it k times); the value is unchanged.
    """
    if len(micro) == 1:
        with _autocast(w):
            loss = contrastive_loss(w.loss_fn, w.train_model(*micro[0]))
        loss.backward()
        return loss
    k = len(micro)
    with torch.no_grad(), _autocast(w):
        cached = [w.train_model(images, texts) for images, texts in micro]
    no_sync = getattr(w.train_model, "no_sync", None)  # DDP: all-reduce the summed gradient once, at the last
    for j, (images, texts) in enumerate(micro):
        sync = no_sync() if no_sync is not None and j < k - 1 else contextlib.nullcontext()
        with sync, _autocast(w):
            out = w.train_model(images, texts)
            inputs = {
                key: torch.cat([c[key] for c in cached[:j]] + [out[key]] + [c[key] for c in cached[j + 1 :]])
                for key in FEATURES
            }
            for key in ("logit_scale", "logit_bias"):
                if out.get(key) is not None:
                    inputs[key] = out[key].detach() + (out[key] - out[key].detach()) / k
            loss = contrastive_loss(w.loss_fn, inputs)
            loss.backward()
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
        **window.summary(w.cfg.data.batch_size * w.cfg.optim.accum_freq, w.flops_per_sample, w.world, w.peak_tflops),
    }
    if w.device.type == "cuda":
        out["mem/max_alloc_gib"] = torch.cuda.max_memory_allocated(w.device) / 2**30
    return out
