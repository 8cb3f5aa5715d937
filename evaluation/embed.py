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
    """Map-style dataset: item i is `preprocess(images[i])`, a float tensor [3, H, W] (or, with a `_Uint8Split`,
    the uint8 RGB tensor before ToTensor + Normalize)."""

    def __init__(self, images: ImageList, preprocess: Callable):
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(self.images[i])


class _Uint8Split:
    """open_clip's eval transform, `Compose([..PIL ops.., MaybeToTensor|ToTensor, Normalize])`, cut in two: the PIL
    ops (resize, crop, RGB) run per image and hand over a uint8 [3, H, W] tensor; `finish` does ToTensor's
    `/255` and Normalize's `(x - mean) / std` on the whole batch in the main process. Same float32 operations in the
    same order, so the result is bit-identical to the per-image transform, while workers ship 4x fewer bytes and
    the batch arithmetic is vectorised (written here because torchvision has no batched ToTensor)."""

    def __init__(self, prefix: Callable, mean: Sequence[float], std: Sequence[float]):
        self.prefix = prefix
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image) -> torch.Tensor:
        pic = self.prefix(image)
        if not (hasattr(pic, "mode") and pic.mode == "RGB"):  # only plain 8-bit RGB takes the uint8 road
            raise TypeError(f"expected an RGB PIL image after the PIL ops, got {type(pic).__name__}")
        return torch.from_numpy(np.array(pic, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()

    def finish(self, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
        x = batch.to(device, non_blocking=True).to(torch.float32).div(255)
        return x.sub_(self.mean.to(device)).div_(self.std.to(device))

    @classmethod
    def of(cls, preprocess: Callable) -> _Uint8Split | None:
        """The split form of `preprocess`, or None when it is not such a Compose (then it runs unchanged)."""
        from torchvision import transforms as T

        steps = getattr(preprocess, "transforms", None)
        if not isinstance(preprocess, T.Compose) or not steps or len(steps) < 2:
            return None
        to_tensor, norm = steps[-2], steps[-1]
        if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor") or not isinstance(norm, T.Normalize):
            return None
        if norm.inplace or any(isinstance(t, (T.ToTensor, T.Normalize)) for t in steps[:-2]):
            return None
        mode_ok = all(type(t).__name__ in _PIL_STEPS for t in steps[:-2])
        return cls(T.Compose(list(steps[:-2])), norm.mean, norm.std) if mode_ok else None


# PIL-in, PIL-out transforms the uint8 road accepts before ToTensor (open_clip's eval transforms use these).
_PIL_STEPS = {"Resize", "CenterCrop", "MaybeConvertMode", "ResizeKeepRatio", "CenterCropOrPad"}


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
    split = _Uint8Split.of(preprocess)
    loader = torch.utils.data.DataLoader(
        _Preprocessed(images, split or preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=False,
    )
    out = []
    net = _unwrap(model)
    with inference(net, amp) as device:
        for batch in loader:
            x = split.finish(batch, device) if split else batch.to(device, non_blocking=True)
            feats = net.encode_image(x)
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
