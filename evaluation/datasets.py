"""Benchmark registry: turns a spec (`digits`, `synthetic:PATH`, `imagefolder:PATH`, `wds:PATH`, `captions:PATH`)
into a `Benchmark` of in-memory splits. Loading only — no model, no metrics.

Images stay encoded (bytes, file paths or small uint8 arrays) until an `ImageList` item is read, so a split is cheap
to hold and to send to DataLoader workers. Every loader orders samples deterministically. A spec that names an
unknown benchmark, or data that lacks what a task needs (class names, captions), is an `EvaluationError`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from evaluation.errors import EvaluationError
from evaluation.templates import IMAGENET_TEMPLATES, templates_for

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


def load_digits_benchmark() -> Benchmark:
    """scikit-learn's 1,797 real 8x8 handwritten digits (grey 0..16 scaled to 0..255), MNIST's prompt and class
    names '0'..'9'. Test: 40 % of each class by `fixed_split`; train: the other 60 %."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = d.target.astype(np.int64)
    test = fixed_split(labels)
    images = ImageList(list(pixels))
    split = Split(images, labels)
    return Benchmark(
        name="digits",
        kind=CLASSIFICATION,
        test=split.take(np.flatnonzero(test)),
        train=split.take(np.flatnonzero(~test)),
        classnames=[str(i) for i in range(10)],
        templates=templates_for("digits"),
    )


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (classnames.txt, templates files)."""
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]


def _synthetic_paths(path: Path) -> tuple[Path, Path]:
    for parquet in (path, path / "synthetic.parquet", path / "eval" / "synthetic.parquet"):
        if parquet.is_file():
            return parquet, parquet.parent / "classnames.txt"
    raise EvaluationError(
        f"synthetic benchmark: no parquet at {str(path)!r} (give the synthetic web's eval dir, its "
        "synthetic.parquet, or the web dir that holds eval/synthetic.parquet)."
    )


def load_synthetic(path: str) -> Benchmark:
    """The synthetic web's held-out split: parquet columns image (bytes), label (int), class_name, image_id, with
    classnames.txt beside it (else class names come from the label/class_name pairs). Ordered by image_id."""
    import pyarrow.parquet as pq

    parquet, names_file = _synthetic_paths(Path(path))
    table = pq.read_table(parquet)
    missing = {"image", "label", "class_name", "image_id"} - set(table.column_names)
    if missing:
        raise EvaluationError(f"synthetic benchmark {str(parquet)!r} lacks column(s) {sorted(missing)}.")
    table = table.sort_by("image_id")
    labels = np.asarray(table.column("label").to_numpy(), dtype=np.int64)
    pairs = dict(zip(labels.tolist(), table.column("class_name").to_pylist(), strict=True))
    classnames = read_lines(names_file) if names_file.is_file() else [pairs.get(i) for i in range(max(pairs) + 1)]
    bad = [i for i, name in pairs.items() if i < 0 or i >= len(classnames) or classnames[i] != name]
    if bad or None in classnames:
        raise EvaluationError(
            f"synthetic benchmark {str(parquet)!r}: labels and class names disagree (label {bad[:3] or 'gaps'})."
        )
    images = ImageList(table.column("image").to_pylist())
    return Benchmark("synthetic", CLASSIFICATION, Split(images, labels), None, classnames, templates_for("synthetic"))


def _folder_split(root: Path, classes: list[str]) -> Split:
    items, labels = [], []
    for i, c in enumerate(classes):
        files = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        items += [str(p) for p in files]
        labels += [i] * len(files)
    return Split(ImageList(items), np.asarray(labels, dtype=np.int64))


def load_imagefolder(path: str) -> Benchmark:
    """One folder per class (sorted names, '_' read as a space), like torchvision's ImageFolder. With `train/`
    and `test/` subfolders those are the splits, else the whole folder is the test split. Optional
    `classnames.txt` (one name per class folder, in sorted order) and `zeroshot_classification_templates.txt`."""
    root = Path(path)
    if not root.is_dir():
        raise EvaluationError(f"imagefolder benchmark: {str(root)!r} is not a directory.")
    test_root = root / "test" if (root / "test").is_dir() else root
    classes = sorted(p.name for p in test_root.iterdir() if p.is_dir())
    if not classes:
        raise EvaluationError(f"imagefolder benchmark {str(root)!r}: no class folders in {str(test_root)!r}.")
    names = [c.replace("_", " ") for c in classes]
    if (root / "classnames.txt").is_file():
        names = read_lines(root / "classnames.txt")
        if len(names) != len(classes):
            raise EvaluationError(
                f"{str(root / 'classnames.txt')!r} has {len(names)} names for {len(classes)} folders."
            )
    tfile = root / "zeroshot_classification_templates.txt"
    templates = tuple(read_lines(tfile)) if tfile.is_file() else IMAGENET_TEMPLATES
    train = _folder_split(root / "train", classes) if test_root != root and (root / "train").is_dir() else None
    test = _folder_split(test_root, classes)
    if len(test) == 0:
        raise EvaluationError(f"imagefolder benchmark {str(root)!r}: no images ({'/'.join(IMAGE_EXTENSIONS)}).")
    return Benchmark(f"imagefolder:{root.name}", CLASSIFICATION, test, train, names, templates)


def load_captions(path: str) -> Benchmark:
    """Retrieval set from parquet (a file, or a directory of them): `image` (bytes) and `caption` (str) or
    `captions` (list of str) per row; rows without any caption are an error."""
    import pyarrow.parquet as pq

    root = Path(path)
    files = sorted(root.glob("*.parquet")) if root.is_dir() else [root]
    if not files or not files[0].is_file():
        raise EvaluationError(f"captions benchmark: no parquet file at {str(root)!r}.")
    images, captions = [], []
    for f in files:
        t = pq.read_table(f)
        col = "captions" if "captions" in t.column_names else "caption"
        if "image" not in t.column_names or col not in t.column_names:
            raise EvaluationError(f"captions benchmark {str(f)!r} needs columns image and caption (or captions).")
        images += t.column("image").to_pylist()
        captions += [[c] if isinstance(c, str) else list(c or []) for c in t.column(col).to_pylist()]
    empty = [i for i, c in enumerate(captions) if not c]
    if empty:
        raise EvaluationError(
            f"captions benchmark {str(root)!r}: {len(empty)} image(s) without a caption (row {empty[0]})."
        )
    return Benchmark(f"captions:{root.stem}", RETRIEVAL, Split(ImageList(images), captions=captions))


def _load_wds(path: str) -> Benchmark:
    from evaluation.wds import load_wds

    return load_wds(path)


LOADERS: dict[str, Callable[[], Benchmark]] = {"digits": load_digits_benchmark}
"""Benchmarks without a path."""
PATH_LOADERS: dict[str, Callable[[str], Benchmark]] = {
    "synthetic": load_synthetic,
    "imagefolder": load_imagefolder,
    "wds": _load_wds,
    "captions": load_captions,
}
"""Benchmarks written `KIND:PATH`."""


def parse_benchmark_spec(spec: str) -> tuple[str, str | None]:
    """`digits` -> ('digits', None); `wds:/data/x` -> ('wds', '/data/x'). Unknown kinds are `EvaluationError`s."""
    kind, sep, path = spec.partition(":")
    if kind in LOADERS and not sep:
        return kind, None
    if kind in PATH_LOADERS and path:
        return kind, path
    known = ", ".join(list(LOADERS) + [f"{k}:PATH" for k in PATH_LOADERS])
    if kind in PATH_LOADERS:
        raise EvaluationError(f"benchmark {spec!r} needs a path: {kind}:PATH.")
    raise EvaluationError(f"unknown benchmark {spec!r}; known: {known}.")


def load_benchmark(spec: str, max_samples: int | None = None) -> Benchmark:
    """Load the benchmark `spec` names, its test split capped at `max_samples` (evenly spaced)."""
    kind, path = parse_benchmark_spec(spec)
    bench = LOADERS[kind]() if path is None else PATH_LOADERS[kind](path)
    return bench.limit(max_samples)
