"""CLIP_benchmark's webdataset layout: read it as a `Benchmark`, write one from a `Benchmark`. No model, no metrics.

    ROOT/{split}/nshards.txt   ROOT/{split}/0.tar … {n-1}.tar   (key.{webp|png|jpg|jpeg} + key.cls | key.txt)
    ROOT/classnames.txt   ROOT/zeroshot_classification_templates.txt ({c} placeholder)   ROOT/dataset_type.txt

Tars are read and written by `pipeline.core.tar`: samples are grouped as webdataset groups them (consecutive
members whose names share the part before the first dot of the base name), and metadata is zeroed so the same
benchmark always exports to the same bytes. `dataset_type.txt` says `retrieval` for caption sets (captions are the
lines of key.txt); anything else, or no file, is classification.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from evaluation.benchmark import CLASSIFICATION, RETRIEVAL, Benchmark, ImageList, Split, read_lines
from evaluation.errors import EvaluationError
from evaluation.templates import IMAGENET_TEMPLATES
from pipeline.core.tar import iter_samples, write_tar

IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")


def _read_split(root: Path, split: str, kind: str) -> Split:
    nfile = root / split / "nshards.txt"
    try:
        nshards = int(nfile.read_text().strip())
    except (OSError, ValueError):
        raise EvaluationError(f"wds benchmark {str(root)!r}: {str(nfile)!r} is missing or not an integer.") from None
    images, labels, captions = [], [], []
    for i in range(nshards):
        shard = root / split / f"{i}.tar"
        if not shard.is_file():
            raise EvaluationError(f"wds benchmark {str(root)!r}: shard {str(shard)!r} is missing (nshards={nshards}).")
        with shard.open("rb") as f:
            samples = list(iter_samples(f))
        for s in samples:
            image = next((s[k] for k in IMAGE_KEYS if k in s), None)
            target = s.get("txt" if kind == RETRIEVAL else "cls")
            if image is None or target is None:
                raise EvaluationError(f"wds sample {s['__key__']!r} in {str(shard)!r} lacks an image or its label.")
            images.append(image)
            if kind == RETRIEVAL:
                captions.append(target.decode("utf-8").splitlines())
            else:
                labels.append(int(target.decode("utf-8")))
    if kind == RETRIEVAL:
        return Split(ImageList(images), captions=captions)
    return Split(ImageList(images), np.asarray(labels, dtype=np.int64))


def load_wds(path: str, split: str = "test") -> Benchmark:
    """A CLIP_benchmark webdataset folder as a `Benchmark`; `train/` becomes the linear-probe train split.

    Classification needs `classnames.txt`; without `zeroshot_classification_templates.txt` the 80 ImageNet
    prompts are used (CLIP_benchmark's fallback dataset) and the benchmark's notes say so.
    """
    root = Path(path)
    if not root.is_dir():
        raise EvaluationError(f"wds benchmark: {str(root)!r} is not a directory.")
    tfile = root / "dataset_type.txt"
    kind = RETRIEVAL if tfile.is_file() and tfile.read_text().strip().lower() == "retrieval" else CLASSIFICATION
    name = f"wds:{root.name}"
    if kind == RETRIEVAL:
        return Benchmark(name, kind, _read_split(root, split, kind))
    names_file = root / "classnames.txt"
    if not names_file.is_file():
        raise EvaluationError(
            f"wds benchmark {str(root)!r} has no classnames.txt (one class name per line, line i = label i); "
            "zero-shot classification needs it."
        )
    classnames = read_lines(names_file)
    templates_file = root / "zeroshot_classification_templates.txt"
    notes = [] if templates_file.is_file() else ["no zeroshot_classification_templates.txt: 80 ImageNet templates"]
    templates = tuple(read_lines(templates_file)) if templates_file.is_file() else IMAGENET_TEMPLATES
    test = _read_split(root, split, kind)
    if len(test.labels) and (test.labels.min() < 0 or test.labels.max() >= len(classnames)):
        raise EvaluationError(
            f"wds benchmark {str(root)!r}: labels outside 0..{len(classnames) - 1} (classnames.txt)."
        )
    train = _read_split(root, "train", kind) if (root / "train" / "nshards.txt").is_file() else None
    return Benchmark(name, kind, test, train, classnames, templates, notes)


def _encode_png(images: ImageList, i: int) -> bytes:
    buf = io.BytesIO()
    images[i].save(buf, format="PNG")
    return buf.getvalue()


def _members(split: Split, indices: range) -> Iterator[tuple[str, bytes]]:
    for i in indices:
        key = f"s{i:08d}"
        yield f"{key}.png", _encode_png(split.images, i)
        if split.captions is not None:
            yield f"{key}.txt", "\n".join(split.captions[i]).encode("utf-8")
        else:
            yield f"{key}.cls", str(int(split.labels[i])).encode()


def write_wds_split(split: Split, out: Path, shard_size: int = 1000) -> int:
    """Write `split` as `out/nshards.txt` + `out/{i}.tar` (PNG images, lossless); returns the shard count."""
    out.mkdir(parents=True, exist_ok=True)
    nshards = max(1, -(-len(split) // shard_size))
    for s in range(nshards):
        with (out / f"{s}.tar").open("wb") as f:
            write_tar(f, _members(split, range(s * shard_size, min(len(split), (s + 1) * shard_size))))
    (out / "nshards.txt").write_text(f"{nshards}\n")
    return nshards


def export_wds(bench: Benchmark, root: str | Path, shard_size: int = 1000) -> Path:
    """Write `bench` in CLIP_benchmark's layout under `root` (test split, and train when present)."""
    out = Path(root)
    write_wds_split(bench.test, out / "test", shard_size)
    if bench.train is not None:
        write_wds_split(bench.train, out / "train", shard_size)
    if bench.kind == RETRIEVAL:
        (out / "dataset_type.txt").write_text("retrieval\n")
    else:
        (out / "classnames.txt").write_text("".join(f"{c}\n" for c in bench.classnames), encoding="utf-8")
        templates = "".join(f"{t}\n" for t in bench.templates)
        (out / "zeroshot_classification_templates.txt").write_text(templates, encoding="utf-8")
    return out
