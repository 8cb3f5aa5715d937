"""Model factory: open_clip models by name (random init, nothing downloaded) plus the JSON configs we ship.

open_clip owns the architecture; `configs/models/*.json` are registered with `open_clip.add_model_config` by
`evaluation.models.register_model_configs` (one registry for training and evaluation). This module builds a model
the trainer can use and knows its preprocessing, parameter groups and FLOPs. It never touches Ray.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import open_clip
import torch

from evaluation.models import MODELS_DIR, register_model_configs
from pipeline.core.errors import ClipforgeError
from training.config import ModelConfig

__all__ = ["BuiltModel", "build_model", "get_tokenizer", "param_groups", "register_model_configs"]


@dataclass
class BuiltModel:
    """An open_clip model with what training and export need to know about it."""

    model: torch.nn.Module
    model_cfg: dict[str, Any]
    """The exact config the model was built from (goes into open_clip_config.json on export)."""
    preprocess_cfg: dict[str, Any]
    """open_clip preprocessing: size, mean, std, interpolation, resize_mode."""

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg["size"]
        return int(size if isinstance(size, int) else size[0])

    @property
    def context_length(self) -> int:
        return int(self.model_cfg["text_cfg"].get("context_length", 77))


def model_overrides(loss_kind: str) -> dict[str, Any]:
    """Config keys the loss needs on the model: SigLIP starts at scale 10 and bias -10 (open_clip `--siglip`)."""
    if loss_kind == "siglip":
        return {"init_logit_scale": math.log(10), "init_logit_bias": -10.0}
    return {}


def resolve_model_config(name: str, loss_kind: str = "clip") -> dict[str, Any]:
    """The full open_clip config dict for `name` (after registering ours), with loss-driven overrides."""
    register_model_configs()
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        known = ", ".join(n for n in open_clip.list_models() if n.startswith(("clipforge", "ViT-B", "ViT-S")))
        raise ClipforgeError(f"unknown model {name!r} (model.name); e.g. {known}, or add a JSON to {MODELS_DIR}")
    return {**cfg, **model_overrides(loss_kind)}


def build_model(cfg: ModelConfig, loss_kind: str = "clip", seed: int = 0) -> BuiltModel:
    """Random-init open_clip model on CPU in fp32 with `output_dict=True`; weights identical for equal seeds."""
    model_cfg = resolve_model_config(cfg.name, loss_kind)
    kwargs = model_overrides(loss_kind)
    if cfg.patch_dropout:
        vision = model_cfg["vision_cfg"]
        if isinstance(vision.get("layers"), list | tuple) or vision.get("timm_model_name"):
            raise ClipforgeError(
                f"model.patch_dropout={cfg.patch_dropout:g} needs a ViT image tower; {cfg.name!r} is not one"
            )
        kwargs["force_patch_dropout"] = cfg.patch_dropout  # train mode only; the export's config has none
    torch.manual_seed(seed)
    root = logging.getLogger()
    level, root.level = root.level, max(root.level, logging.ERROR)  # "initialized randomly" is the point here
    try:
        model = open_clip.create_model(cfg.name, pretrained=None, output_dict=True, **kwargs)
    finally:
        root.setLevel(level)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    preprocess = dict(model.visual.preprocess_cfg)
    return BuiltModel(model=model, model_cfg=model_cfg, preprocess_cfg=preprocess)


def get_tokenizer(name: str):
    """open_clip's tokenizer for a model name (registers our configs first); returns LongTensor [B, ctx]."""
    register_model_configs()
    return open_clip.get_tokenizer(name)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decay on >= 2-D weights; none on biases, norms, embeddings' 1-D params, logit_scale."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def forward_flops_per_sample(model: torch.nn.Module, image_size: int, context_length: int) -> float:
    """Forward FLOPs for one (image, text) pair, counted by torch's FlopCounterMode on a batch of 2 (on CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    images = torch.zeros(2, 3, image_size, image_size, device=device)
    texts = torch.zeros(2, context_length, dtype=torch.long, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(images, texts)
    return counter.get_total_flops() / 2.0
