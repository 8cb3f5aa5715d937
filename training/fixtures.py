"""A small learnable build in the shard format (coloured shapes with captions), for tests and benchmarks.

Writes what `clipforge build` writes — `RUN/shards/shard-NNNNNN.{tar,parquet}` and `RUN/manifest.json`
(last) — so the trainer can be exercised without running a build. Deterministic for a given seed: the same
arguments give byte-identical files. Real `clipforge web generate` + build output can replace it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from training.config import TrainConfig

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 220, 30),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
# A MetaCLIP-style metadata list: entry id = index. Colours first, then shapes.
METADATA = [*COLORS, *SHAPES]


def caption_for(color: str, shape: str, size: str) -> str:
    return f"a {size} {color} {shape}"


def render(color: str, shape: str, size: str, rng: np.random.Generator, px: int) -> Image.Image:
    """One image: a shape of `color` on a grey background, position and exact size jittered."""
    bg = int(rng.integers(90, 170))
    img = Image.new("RGB", (px, px), (bg, bg, bg))
    draw = ImageDraw.Draw(img)
    r = px * (0.18 if size == "small" else 0.36) * float(rng.uniform(0.9, 1.1))
    cx, cy = (float(rng.uniform(r, px - r)) for _ in range(2))
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        w = r / 3
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    return img


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _sample(i: int, rng: np.random.Generator, px: int) -> dict:
    color = str(rng.choice(list(COLORS)))
    shape, size = str(rng.choice(SHAPES)), str(rng.choice(SIZES))
    img = render(color, shape, size, rng, px)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    url = f"http://synthetic.invalid/img/{i}.jpg"
    # Head/tail like a MetaCLIP pool: red samples are "head" (kept with p 0.5), the rest are tail (p 1).
    keep_prob = 0.5 if color == "red" else 1.0
    return {
        "uid": hashlib.sha224(url.encode()).hexdigest()[:24],
        "key": f"{i:09d}",
        "url": url,
        "caption": caption_for(color, shape, size),
        "entry_ids": [METADATA.index(color), METADATA.index(shape)],
        "keep_prob": keep_prob,
        "width": px,
        "height": px,
        "jpg": buf.getvalue(),
    }


SIDECAR_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("entry_ids", pa.list_(pa.int32())),
        ("keep_prob", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)


def write_shard(run: Path, index: int, samples: list[dict]) -> dict:
    """Write shard `index` (tar + parquet sidecar) and return its manifest entry."""
    tar_rel = f"shards/shard-{index:06d}.tar"
    with tarfile.open(run / tar_rel, "w", format=tarfile.USTAR_FORMAT) as tar:
        for s in samples:
            meta = {k: s[k] for k in ("uid", "url", "caption", "entry_ids", "keep_prob", "width", "height")}
            _add(tar, f"{s['key']}.jpg", s["jpg"])
            _add(tar, f"{s['key']}.txt", s["caption"].encode())
            _add(tar, f"{s['key']}.json", json.dumps(meta, sort_keys=True).encode())
    cols = {f.name: [s[f.name] for s in samples] for f in SIDECAR_SCHEMA}
    pq.write_table(pa.table(cols, schema=SIDECAR_SCHEMA), run / f"shards/shard-{index:06d}.parquet")
    digest = hashlib.sha256((run / tar_rel).read_bytes()).hexdigest()
    return {"path": tar_rel, "n": len(samples), "sha256": digest}


def write_synthetic_build(run: str | Path, n: int = 512, shard_size: int = 128, px: int = 40, seed: int = 0) -> Path:
    """Write a complete synthetic build of `n` shape images into `run`; returns the run directory.

    Captions are "a {small|large} {colour} {shape}" (64 distinct); each sample's sidecar row carries MetaCLIP
    entry ids (its colour and shape in `METADATA`) and a keep probability (0.5 for red, else 1).
    """
    run = Path(run)
    (run / "shards").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = [_sample(i, rng, px) for i in range(n)]
    shards = [write_shard(run, k, samples[s : s + shard_size]) for k, s in enumerate(range(0, n, shard_size))]
    manifest = {"shards": shards, "status": "complete", "counts": {"samples": n}, "source": "training.fixtures"}
    (run / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return run


def tiny_train_config(manifest: str, storage_path: str, name: str, **overrides: Any) -> TrainConfig:
    """A TrainConfig for the synthetic build on a 2-core machine: clipforge-debug (32 px), global batch 32 on
    2 CPU workers of 0.5 CPU each, lr 2e-3 with 5 warmup steps. `overrides` are dotted keys (`{"steps": 20,
    "workers.num_workers": 1}`)."""
    from pipeline.core.config import apply_overrides

    base = {
        "name": name,
        "storage_path": storage_path,
        "steps": 40,
        "model": {"name": "clipforge-debug"},
        "data": {"manifest": manifest, "batch_size": 32, "decode_cpus": 0.5, "prefetch_batches": 2},
        "optim": {"lr": 2e-3, "warmup_steps": 5},
        "workers": {"num_workers": 2, "cpus_per_worker": 0.5},
        "checkpoint": {"every_steps": 20, "num_to_keep": 2},
        "failure": {"max_failures": 1},
        "log": {"every_steps": 4, "tensorboard": True},
    }
    data = apply_overrides(base, [f"{k}={v}" for k, v in overrides.items()])
    return TrainConfig.model_validate(data)
