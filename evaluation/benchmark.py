"""A benchmark's in-memory types (`ImageList`, `Split`, `Benchmark`) and the RNG-free split rule. No loading, no model.

Images stay encoded (bytes, file paths or small uint8 arrays) until an `ImageList` item is read, so a split is cheap
to hold and to send to DataLoader workers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
CLASSIFICATION, RETRIEVAL = "classification", "retrieval"


@dataclass
class ImageList:
    """A picklable sequence of images kept encoded; `[i]` decodes item i to an RGB PIL image.

    Items are encoded bytes, a file path (str) or a uint8 array ([H, W] grey or [H, W, 3] RGB).
    """

    items: list[Any]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Image.Image:
        item = self.items[i]
        if isinstance(item, np.ndarray):
            return Image.fromarray(item).convert("RGB")
        with Image.open(io.BytesIO(item) if isinstance(item, bytes) else item) as im:
            return im.convert("RGB")

    def take(self, idx: np.ndarray) -> ImageList:
        """The images at positions `idx`, in that order."""
        return ImageList([self.items[int(i)] for i in idx])


@dataclass
class Split:
    """One split: images with an int64 label each (classification) or one or more captions each (retrieval)."""

    images: ImageList
    labels: np.ndarray | None = None
    captions: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: np.ndarray) -> Split:
        """The samples at positions `idx`, in that order."""
        labels = None if self.labels is None else self.labels[idx]
        captions = None if self.captions is None else [self.captions[int(i)] for i in idx]
        return Split(self.images.take(idx), labels, captions)


@dataclass
class Benchmark:
    """A named evaluation set: a test split, an optional train split (for the linear probe) and its prompts."""

    name: str
    kind: str
    """'classification' or 'retrieval'."""
    test: Split
    train: Split | None = None
    classnames: list[str] | None = None
    templates: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def limit(self, max_samples: int | None) -> Benchmark:
        """At most `max_samples` test samples, evenly spaced over the split (so every class keeps its share)."""
        if max_samples is None or len(self.test) <= max_samples:
            return self
        idx = np.unique(np.linspace(0, len(self.test) - 1, max_samples).round().astype(np.int64))
        return replace(self, test=self.test.take(idx))


def fixed_split(labels: np.ndarray, every: int = 5, take: int = 2) -> np.ndarray:
    """Boolean mask, stratified and RNG-free: within each class, the samples ranked r (in dataset order) with
    `r % every < take` are True. `take=2, every=5` marks 40 % of every class."""
    labels = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        mask[idx] = (np.arange(len(idx)) % every) < take
    return mask


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (classnames.txt, templates files)."""
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
