"""Contrastive losses: open_clip's `ClipLoss` / `SigLipLoss`, constructed the way multi-worker training needs.

open_clip owns the maths; this module only picks the flags. `local_loss=True` + `gather_with_grad=True` is the
combination that scales (O(n * N) logits per worker) and is numerically the global loss: each worker's loss is
the mean over its own rows, DDP averages gradients over workers, so the update equals that of one process on
the concatenated global batch (tests/integration/training/test_distributed_loss.py checks it).
"""

from __future__ import annotations

from typing import Any

import torch
from open_clip import ClipLoss
from open_clip.loss import SigLipLoss


def build_loss(kind: str, rank: int, world_size: int) -> torch.nn.Module:
    """ClipLoss(local_loss, gather_with_grad) for `clip`, SigLipLoss (bidirectional exchange) for `siglip`."""
    if kind == "clip":
        return ClipLoss(local_loss=True, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world_size)
    if kind == "siglip":
        return SigLipLoss(cache_labels=True, rank=rank, world_size=world_size)
    raise ValueError(f"unknown loss.kind {kind!r}; expected 'clip' or 'siglip'")


def contrastive_loss(loss_fn: torch.nn.Module, out: dict[str, Any]) -> torch.Tensor:
    """The scalar loss for a model output dict (`image_features`, `text_features`, `logit_scale`[, `logit_bias`])."""
    args = (out["image_features"], out["text_features"], out["logit_scale"])
    if isinstance(loss_fn, SigLipLoss):
        return loss_fn(*args, out["logit_bias"])
    return loss_fn(*args)
