"""Embedding: model forward passes that turn images and prompts into L2-normalised float32 numpy arrays.

The only torch code of evaluation; metrics never see the model. Batched, under `torch.inference_mode()`, on the
model's device (CPU or CUDA), optionally under autocast. A model in training mode is switched to eval for the pass
and switched back afterwards, so training can call this mid-run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from evaluation.datasets import ImageList
from evaluation.templates import format_prompts


class _Preprocessed(torch.utils.data.Dataset):
    """Map-style dataset: item i is `preprocess(images[i])`, a float tensor [3, H, W]."""

    def __init__(self, images: ImageList, preprocess: Callable):
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(self.images[i])


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless module)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextlib.contextmanager
def inference(model: torch.nn.Module, amp: bool) -> Iterator[torch.device]:
    """inference_mode + eval mode (restored on exit) + autocast when `amp` (fp16 on CUDA, bf16 on CPU)."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
            yield device
    finally:
        model.train(was_training)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DDP wraps the open_clip model in .module


def auto_workers(n_images: int, batch_size: int) -> int:
    """DataLoader workers for `n_images`: one per usable core beyond the first, at most 4, and none for a single
    batch (starting workers would cost more than it saves)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if n_images <= batch_size else max(0, min(4, cores - 1))


def embed_images(
    model: torch.nn.Module,
    preprocess: Callable,
    images: ImageList,
    batch_size: int = 256,
    num_workers: int | None = 0,
    amp: bool = False,
) -> np.ndarray:
    """Normalised image embeddings, float32 [len(images), D], in `images` order.

    `num_workers` > 0 decodes and preprocesses in DataLoader worker processes, overlapping the forward pass;
    None picks `auto_workers`.
    """
    if num_workers is None:
        num_workers = auto_workers(len(images), batch_size)
    loader = torch.utils.data.DataLoader(
        _Preprocessed(images, preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=False,
    )
    out = []
    net = _unwrap(model)
    with inference(net, amp) as device:
        for batch in loader:
            feats = net.encode_image(batch.to(device, non_blocking=True))
            out.append(F.normalize(feats.float(), dim=-1).cpu())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


def embed_texts(
    model: torch.nn.Module, tokenizer: Callable, texts: Sequence[str], batch_size: int = 256, amp: bool = False
) -> np.ndarray:
    """Normalised text embeddings, float32 [len(texts), D], in `texts` order."""
    out = []
    net = _unwrap(model)
    with inference(net, amp) as device:
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[start : start + batch_size])).to(device)
            out.append(F.normalize(net.encode_text(tokens).float(), dim=-1).cpu())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


def embed_prompts(
    model: torch.nn.Module,
    tokenizer: Callable,
    classnames: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
    amp: bool = False,
) -> np.ndarray:
    """Normalised embedding of every (class, template) prompt, float32 [C, T, D]; feed to `class_embeddings`."""
    prompts = [p for name in classnames for p in format_prompts(templates, name)]
    flat = embed_texts(model, tokenizer, prompts, batch_size, amp)
    return flat.reshape(len(classnames), len(templates), -1)
