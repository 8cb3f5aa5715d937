"""AdamW with CLIP's weight-decay split and a warmup + cosine learning-rate schedule (a pure function of step).

Because the schedule is a function of the step alone, restoring the step restores the scheduler exactly; there
is no scheduler state to checkpoint.
"""

from __future__ import annotations

import math

import torch

from training.config import OptimConfig
from training.model import param_groups


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW(betas, eps) with weight decay on >= 2-D weights only; fused kernels on CUDA."""
    fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused
    )


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """LR for optimizer step `step` (0-based): linear warmup lr*(step+1)/warmup, then cosine to 0 at total_steps.

    Same formula as open_clip_train.scheduler.cosine_lr.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_steps = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress)) * cfg.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
