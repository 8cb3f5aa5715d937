"""CLIP_benchmark's webdataset layout: read it as a `Benchmark`, write one from a `Benchmark`. No model, no metrics.

    ROOT/{split}/nshards.txt   ROOT/{split}/0.tar … {n-1}.tar   (key.{webp|png|jpg|jpeg} + key.cls | key.txt)
    ROOT/classnames.txt   ROOT/zeroshot_classification_templates.txt ({c} placeholder)   ROOT/dataset_type.txt

Samples are grouped as webdataset groups them: consecutive tar members whose names share the part before the
first dot of the base name. `dataset_type.txt` says `retrieval` for caption sets (captions are the lines of
key.txt); anything else, or no file, is classification. Tar files are written with zeroed metadata so the same
benchmark always exports to the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from evaluation.benchmark import CLASSIFICATION, RETRIEVAL, Benchmark, ImageList, Split, read_lines
from evaluation.errors import EvaluationError
from evaluation.templates import IMAGENET_TEMPLATES

IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")


def _split_name(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def tar_samples(path: Path) -> Iterator[dict[str, bytes]]:
    """The samples of one tar, in order: {'__key__': key, ext: bytes, ...} (webdataset's grouping rule)."""
    current: dict[str, bytes] = {}
    with tarfile.open(path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = _split_name(member.name)
            if current and current["__key__"] != key:
                yield current
                current = {}
            current["__key__"] = key
            current[ext] = tar.extractfile(member).read()
    if current:
        yield current


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
        for s in tar_samples(shard):
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


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _encode_png(images: ImageList, i: int) -> bytes:
    buf = io.BytesIO()
    images[i].save(buf, format="PNG")
    return buf.getvalue()


def write_wds_split(split: Split, out: Path, shard_size: int = 1000) -> int:
    """Write `split` as `out/nshards.txt` + `out/{i}.tar` (PNG images, lossless); returns the shard count."""
    out.mkdir(parents=True, exist_ok=True)
    nshards = max(1, -(-len(split) // shard_size))
    for s in range(nshards):
        with tarfile.open(out / f"{s}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(s * shard_size, min(len(split), (s + 1) * shard_size)):
                key = f"s{i:08d}"
                _add(tar, f"{key}.png", _encode_png(split.images, i))
                if split.captions is not None:
                    _add(tar, f"{key}.txt", "\n".join(split.captions[i]).encode("utf-8"))
                else:
                    _add(tar, f"{key}.cls", str(int(split.labels[i])).encode())
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
