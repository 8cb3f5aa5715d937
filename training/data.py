"""Ray Data ingestion of a build's shards for training: manifest -> shards -> decode/augment/tokenize -> batches.

Driver side: `read_manifest` and `build_dataset` describe a lazy `ray.data.Dataset` whose rows are ready model
inputs (`image` uint8 HxWx3, `text` int32 token ids, `uid64`). Worker side: `iter_epoch` yields fixed-size
batches from a `streaming_split` shard. It does not know about models beyond their tokenizer and image size, and
never touches torch.distributed.
"""

from __future__ import annotations

import functools
import io
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.hashing import uid_to_u64
from pipeline.core.errors import ClipforgeError
from pipeline.core.tar import iter_samples
from training.balance import augment_seed, epoch_order, online_keep, shard_order

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class ShardRef:
    """One shard of a build: tar and sidecar paths inside the run's filesystem, and its sample count."""

    tar: str
    sidecar: str | None
    n: int


def read_manifest(fs: Any, run_path: str) -> list[ShardRef]:
    """The shards of a complete build at `run_path` (a run directory or its manifest.json) on pyarrow `fs`.

    A missing manifest, a status other than "complete" or an empty shard list is a `ClipforgeError` naming the
    path: training on a half-written build would silently see part of the data.
    """
    manifest = run_path if run_path.endswith(".json") else posixpath.join(run_path, "manifest.json")
    root = posixpath.dirname(manifest)
    try:
        with fs.open_input_stream(manifest) as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        raise ClipforgeError(
            f"no build manifest at {manifest!r} (data.manifest): run `clipforge build` first"
        ) from None
    if doc.get("status") != "complete":
        raise ClipforgeError(
            f"build at {root!r} is not complete (status={doc.get('status')!r}); finish the build first"
        )
    shards = []
    for s in doc.get("shards", []):
        tar = posixpath.join(root, s["path"])
        sidecar = tar[: -len(".tar")] + ".parquet" if tar.endswith(".tar") else None
        shards.append(ShardRef(tar=tar, sidecar=sidecar, n=int(s.get("n", 0))))
    if not shards:
        raise ClipforgeError(f"build manifest {manifest!r} lists no shards")
    return shards


def _tar_samples(fs: Any, path: str) -> dict[str, dict[str, bytes]]:
    """{key: {ext: bytes}} for a WebDataset tar, read as a stream (works on S3 without seeking)."""
    with fs.open_input_stream(path) as raw:
        return {s.pop("__key__"): s for s in iter_samples(raw)}


def _sidecar(fs: Any, path: str | None) -> dict[str, tuple[str, float]]:
    """{key: (uid, keep_prob)} from a shard's parquet sidecar; {} when there is none."""
    if path is None or fs.get_file_info(path).type.name == "NotFound":
        return {}
    cols = [c for c in ("uid", "key", "keep_prob") if c in pq.read_schema(path, filesystem=fs).names]
    table = pq.read_table(path, filesystem=fs, columns=cols).to_pydict()
    probs = table.get("keep_prob", [None] * len(table["key"]))
    return {
        k: (u, np.nan if p is None else float(p)) for k, u, p in zip(table["key"], table["uid"], probs, strict=True)
    }


def shard_rows(fs: Any, ref: dict[str, Any]) -> dict[str, list]:
    """Rows of one shard: uid, caption, image bytes, keep_prob. Samples without an image or caption are skipped.

    uid and keep_prob come from the sidecar; without one, from the sample's .json (uid) or its key.
    """
    meta = _sidecar(fs, ref.get("sidecar"))
    rows: dict[str, list] = {"uid": [], "caption": [], "image": [], "keep_prob": []}
    for key, parts in sorted(_tar_samples(fs, ref["tar"]).items()):
        image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
        if image is None or "txt" not in parts:
            continue
        uid, prob = meta.get(key, (None, np.nan))
        if uid is None and "json" in parts:
            uid = json.loads(parts["json"]).get("uid")
        rows["uid"].append(uid or key)
        rows["caption"].append(parts["txt"].decode("utf-8", errors="replace"))
        rows["image"].append(image)
        rows["keep_prob"].append(prob)
    return rows


def resolve_epoch(epoch: int | None, board: str | None) -> int:
    """The epoch a read task works for: given (`data.exact_order`: each rank builds each epoch's dataset), else
    the run's `Board`'s (rank 0 publishes it before each epoch's pipeline starts), else 0."""
    if epoch is not None:
        return epoch
    if board is None:
        return 0
    from training.board import current_epoch

    return current_epoch(board)


def read_shards(
    batch: dict[str, np.ndarray], *, fs: Any, seed: int, balance: bool, shuffle: bool, epoch: int
) -> pa.Table:
    """Shard references in, one Arrow table of samples out, filtered and ordered for `epoch`: the kept set and the
    order are pure functions of (seed, epoch, uid) — see `training.balance`."""
    tables = []
    for tar, sidecar in zip(batch["tar"], batch["sidecar"], strict=True):
        rows = shard_rows(fs, {"tar": str(tar), "sidecar": str(sidecar) or None})
        uid64 = uid_to_u64(rows["uid"])
        idx = np.arange(len(uid64))
        if balance:
            idx = idx[online_keep(uid64, np.asarray(rows["keep_prob"], dtype=np.float64), seed, epoch)]
        if shuffle:
            idx = idx[epoch_order(uid64[idx], seed, epoch)]
        columns = {
            "uid64": pa.array(uid64[idx].view(np.int64)),
            "caption": pa.array([rows["caption"][i] for i in idx], pa.string()),
            "image": pa.array([rows["image"][i] for i in idx], pa.binary()),
        }
        tables.append(pa.table(columns))
    return pa.concat_tables(tables)


def random_resized_crop_box(
    width: int, height: int, scale: tuple[float, float], rng: np.random.Generator, ratio=(3 / 4, 4 / 3)
) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of torchvision's RandomResizedCrop: area fraction in `scale`, log-uniform
    aspect in `ratio`, 10 tries, then a centre crop clamped to `ratio`."""
    area = width * height
    log_ratio = np.log(ratio)
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = float(np.exp(rng.uniform(*log_ratio)))
        w, h = round((target * aspect) ** 0.5), round((target / aspect) ** 0.5)
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


@functools.lru_cache(maxsize=4)
def _tokenizer(model_name: str):
    from training.model import get_tokenizer

    return get_tokenizer(model_name)


def decode_image(data: bytes, size: int, scale: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Encoded image -> RandomResizedCrop(size, scale, bicubic) -> uint8 [size, size, 3] (open_clip's train
    transform minus normalisation, which runs on the training device)."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that is still >= size
    img = img.convert("RGB")
    box = random_resized_crop_box(img.width, img.height, scale, rng)
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC, box=box), dtype=np.uint8)


def decode_augment_tokenize(
    batch: pa.Table,
    *,
    model_name: str,
    image_size: int,
    crop_scale: tuple[float, float],
    seed: int = 0,
    epoch: int = 0,
) -> dict[str, np.ndarray]:
    """Ray Data UDF: image bytes + captions in; `image` uint8 [B, S, S, 3], `text` int32 [B, ctx], `uid64` out.

    Runs in tasks, not an actor pool: Ray Data tears actor pools down with every epoch's execution, while pooled
    task processes keep the tokenizer cached. Batches cross the object store as uint8 — 4x fewer bytes than
    float32.
    """
    uids = batch.column("uid64").to_numpy()
    images = [
        decode_image(b, image_size, crop_scale, np.random.default_rng(augment_seed(seed, epoch, u)))
        for b, u in zip(batch.column("image").to_pylist(), uids.view(np.uint64).tolist(), strict=True)
    ]
    tokens = _tokenizer(model_name)(batch.column("caption").to_pylist()).numpy().astype(np.int32)
    return {"image": np.stack(images), "text": tokens, "uid64": uids}


def shard_batches(
    batch: dict[str, np.ndarray],
    *,
    fs: Any,
    seed: int,
    balance: bool,
    shuffle: bool,
    board: str | None,
    model_name: str,
    image_size: int,
    crop_scale: tuple[float, float],
    rows_per_block: int,
    epoch: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data UDF (generator): shard references in; blocks of `rows_per_block` ready model inputs out.

    Reading and decoding are one task on purpose. Ray recycles idle pooled worker processes beyond its soft limit
    between epochs, and a decode process costs an open_clip import (~10 CPU-seconds here) when it is new; one
    operator keeps the number of data processes at (data CPUs / decode_cpus), so they stay warm. It also keeps raw
    image bytes out of the object store.
    """
    epoch = resolve_epoch(epoch, board)
    table = read_shards(batch, fs=fs, seed=seed, balance=balance, shuffle=shuffle, epoch=epoch)
    aug = {"model_name": model_name, "image_size": image_size, "crop_scale": crop_scale, "seed": seed, "epoch": epoch}
    for start in range(0, table.num_rows, rows_per_block):
        yield decode_augment_tokenize(table.slice(start, rows_per_block), **aug)


def build_dataset(
    fs: Any,
    shards: list[ShardRef],
    *,
    model_name: str,
    image_size: int,
    crop_scale: tuple[float, float],
    seed: int,
    balance: bool,
    shuffle: bool,
    board: str | None,
    decode_cpus: float,
    batch_size: int,
):
    """The lazy training dataset: one read+decode task per shard (`shard_batches`); re-executed every epoch."""
    import ray

    items = [{"tar": s.tar, "sidecar": s.sidecar or ""} for s in shards]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    if shuffle:
        ds = ds.randomize_block_order()
    kwargs = {"fs": fs, "seed": seed, "balance": balance, "shuffle": shuffle, "board": board}
    kwargs |= {"model_name": model_name, "image_size": image_size, "crop_scale": tuple(crop_scale)}
    return _decoded(ds, kwargs, batch_size, decode_cpus)


def _decoded(ds, kwargs: dict[str, Any], batch_size: int, decode_cpus: float):
    """One task per shard item: decode, augment and tokenize its samples into blocks of `batch_size` rows."""
    return ds.map_batches(
        shard_batches,
        fn_kwargs={**kwargs, "rows_per_block": batch_size},
        batch_size=1,
        batch_format="numpy",
        num_cpus=decode_cpus,
    )


def rank_epoch_dataset(
    fs: Any,
    shards: list[ShardRef],
    *,
    rank: int,
    world: int,
    epoch: int,
    model_name: str,
    image_size: int,
    crop_scale: tuple[float, float],
    seed: int,
    balance: bool,
    shuffle: bool,
    decode_cpus: float,
    batch_size: int,
):
    """`data.exact_order`: rank `rank`'s dataset for `epoch`, built by the rank itself. Its shards are positions
    rank, rank + world, ... of the epoch's seeded shard order, read in that order (`preserve_order`), so the
    sequence of samples a rank trains on is a pure function of (seed, epoch, rank, world, build): a resumed run
    re-reads exactly what an uninterrupted one reads. No streaming_split, no board."""
    import ray

    order = shard_order(len(shards), seed, epoch) if shuffle else np.arange(len(shards))
    mine = [shards[i] for i in order[rank::world]]
    items = [{"tar": s.tar, "sidecar": s.sidecar or ""} for s in mine]
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # blocks in task-submission order, not completion order
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    kwargs = {"fs": fs, "seed": seed, "balance": balance, "shuffle": shuffle, "board": None, "epoch": epoch}
    kwargs |= {"model_name": model_name, "image_size": image_size, "crop_scale": tuple(crop_scale)}
    return _decoded(ds, kwargs, batch_size, decode_cpus)


def iter_epoch(shard: Any, batch_size: int, prefetch_batches: int) -> Iterator[dict[str, Any]]:
    """This worker's batches for one epoch: exactly `batch_size` rows each (drop_last, no local shuffle buffer).

    A short batch mid-stream would desynchronise the ranks' all-gathers (ray-project/ray#66085), so one is an
    error, not a silent skip.
    """
    for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True, prefetch_batches=prefetch_batches):
        n = len(batch["text"])
        if n != batch_size:
            raise RuntimeError(f"data iterator yielded a batch of {n} rows, expected {batch_size} (ray#66085)")
        yield batch
