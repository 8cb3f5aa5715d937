"""Benchmark registry: turns a spec (`digits`, `synthetic:PATH`, `imagefolder:PATH`, `wds:PATH`, `captions:PATH`)
into a `Benchmark` of in-memory splits. Loading only — no model, no metrics.

Images stay encoded (bytes, file paths or small uint8 arrays) until an `ImageList` item is read, so a split is cheap
to hold and to send to DataLoader workers. Every loader orders samples deterministically. A spec that names an
unknown benchmark, or data that lacks what a task needs (class names, captions), is an `EvaluationError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from evaluation.benchmark import (  # noqa: F401  (re-exported: where a benchmark's types have always been imported from)
    CLASSIFICATION,
    IMAGE_EXTENSIONS,
    RETRIEVAL,
    Benchmark,
    ImageList,
    Split,
    fixed_split,
    read_lines,
)
from evaluation.errors import EvaluationError
from evaluation.templates import IMAGENET_TEMPLATES, templates_for
from evaluation.wds import load_wds


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


LOADERS: dict[str, Callable[[], Benchmark]] = {"digits": load_digits_benchmark}
"""Benchmarks without a path."""
PATH_LOADERS: dict[str, Callable[[str], Benchmark]] = {
    "synthetic": load_synthetic,
    "imagefolder": load_imagefolder,
    "wds": load_wds,
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
