"""Dedup per-batch steps: the bucket explode/verify functions the dedup barriers (`pipeline.dedup.barriers`) run on
Ray Data; no clustering and no driver work here.

The explode functions emit one row per (bucket key, item) with a `group` column = table × shards + shard of the
key, so a groupby on `group` co-locates every bucket and one call verifies thousands of buckets with numpy.
Group functions (`exact_edges`, `bucket_pairs`) see whole groups and are order-independent: they sort first.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.hashing import splitmix64
from curation.neardup import band_keys, pairs_within, table_radius
from curation.phash import hamming
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options
from pipeline.dedup.artifacts import read_parquet_uri
from pipeline.stages.base import CPU_LIGHT, Resources, live_mask

HASH_COLUMNS = ("uid", "sha256", "phash", "phash_degenerate", "pixels")


class BucketConfig(StrictModel):
    """What the explode and verify functions need: the search radius and the shards per table."""

    k: int = Field(0, ge=0, le=8)
    """Hamming radius verified in a bucket (0 for exact keys)."""
    shards: int = Field(1, ge=1)
    """Groups per table: `group = table × shards + splitmix64(key) % shards`."""


def hash_rows(batch: pa.Table, config: None = None) -> pa.Table:
    """Live rows with a pHash → `HASH_COLUMNS` (pixels = orig_width × orig_height, int64)."""
    keep = live_mask(batch) & pc.is_valid(batch["phash"]).to_numpy(zero_copy_only=False)
    t = batch.filter(pa.array(keep))
    pixels = pc.multiply(t["orig_width"].cast(pa.int64()), t["orig_height"].cast(pa.int64()))
    return pa.table([t["uid"], t["sha256"], t["phash"], t["phash_degenerate"], pixels], names=list(HASH_COLUMNS))


def _shard(values: np.ndarray, shards: int) -> np.ndarray:
    return (splitmix64(values) % np.uint64(shards)).astype(np.int64)


def exact_keys(batch: pa.Table, config: BucketConfig) -> pa.Table:
    """`HASH_COLUMNS` rows → key rows (group, key, uid, pixels, phash): b"s"+sha256 for every row, b"p"+pHash
    (8 bytes, big-endian) for non-degenerate ones — flat images share a pHash without being duplicates."""
    sha = [bytes.fromhex(s) for s in batch["sha256"].to_pylist()]
    phash = batch["phash"].to_numpy(zero_copy_only=False).astype(np.uint64)
    good = ~batch["phash_degenerate"].to_numpy(zero_copy_only=False).astype(bool)
    sha64 = np.array([int.from_bytes(s[:8], "big") for s in sha], dtype=np.uint64)
    keys = [b"s" + s for s in sha] + [b"p" + int(h).to_bytes(8, "big") for h in phash[good]]
    idx = np.concatenate([np.arange(batch.num_rows), np.flatnonzero(good)])
    group = np.concatenate([_shard(sha64, config.shards), config.shards + _shard(phash[good], config.shards)])
    take = pa.array(idx, pa.int64())
    return pa.table(
        {
            "group": pa.array(group, pa.int64()),
            "key": pa.array(keys, pa.binary()),
            "uid": batch["uid"].take(take),
            "pixels": batch["pixels"].take(take),
            "phash": batch["phash"].take(take),
        }
    )


def run_starts(sorted_keys: pa.Array | np.ndarray) -> np.ndarray:
    """For each position of a sorted key array, the position where its run of equal keys starts (int64)."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, np.int64)
    if isinstance(sorted_keys, np.ndarray):
        new = np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1]))
    else:
        same = pc.equal(sorted_keys.slice(1), sorted_keys.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        new = np.concatenate(([True], ~same))
    return np.maximum.accumulate(np.where(new, np.arange(n), 0))


def exact_edges(group: pa.Table, config: BucketConfig | None = None) -> pa.Table:
    """One group of key rows → edges (uid_a, pixels_a, phash_a, uid_b, pixels_b, phash_b): every member of a bucket
    (equal key) linked to the bucket's best row (largest pixels, then smallest uid). n − 1 edges per bucket of n."""
    order = pc.sort_indices(group, sort_keys=[("key", "ascending"), ("pixels", "descending"), ("uid", "ascending")])
    t = group.take(order)
    start = run_starts(pc.cast(t["key"], pa.binary()).combine_chunks())
    member = np.flatnonzero(start != np.arange(t.num_rows))
    a, b = pa.array(member, pa.int64()), pa.array(start[member], pa.int64())
    cols = {}
    for side, idx in (("a", a), ("b", b)):
        for name in ("uid", "pixels", "phash"):
            cols[f"{name}_{side}"] = t[name].take(idx)
    return pa.table(cols)


def band_rows(batch: pa.Table, config: BucketConfig) -> pa.Table:
    """`HASH_COLUMNS` rows → band rows (group, key, phash) of each distinct non-degenerate pHash of the batch, one per
    table of radius `table_radius(k)`: every pair within k shares (table, key) in at least one table."""
    degenerate = batch["phash_degenerate"].to_numpy(zero_copy_only=False).astype(bool)
    hashes = np.unique(batch["phash"].to_numpy(zero_copy_only=False).astype(np.uint64)[~degenerate])
    table_id, key = band_keys(hashes, table_radius(config.k, exclude_degenerate=True))
    group = table_id.astype(np.int64) * config.shards + _shard(key, config.shards)
    item = np.tile(hashes, len(key) // max(len(hashes), 1)) if len(hashes) else hashes
    return pa.table({"group": group, "key": pa.array(key, pa.uint64()), "phash": pa.array(item, pa.uint64())})


PAIR_SCHEMA = pa.schema([("a", pa.uint64()), ("b", pa.uint64()), ("distance", pa.uint8())])


def bucket_pairs(group: pa.Table, config: BucketConfig) -> pa.Table:
    """One group of band rows → verified pairs (a < b, distance ≤ k) of distinct pHashes sharing a bucket; each
    pair once per group (the driver removes repeats across tables)."""
    key = group["key"].to_numpy().astype(np.uint64)
    h = group["phash"].to_numpy().astype(np.uint64)
    order = np.lexsort((h, key))
    key, h = key[order], h[order]
    distinct = np.concatenate(([True], (key[1:] != key[:-1]) | (h[1:] != h[:-1]))) if len(key) else np.ones(0, bool)
    key, h = key[distinct], h[distinct]
    start = run_starts(key)
    size = np.bincount(start, minlength=len(key))
    out_a, out_b = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
    for s in np.flatnonzero(size >= 2).tolist():  # only buckets that can pair: few, in real data
        members = h[s : s + size[s]]
        i, j = pairs_within(members, config.k)
        out_a.append(np.minimum(members[i], members[j]))
        out_b.append(np.maximum(members[i], members[j]))
    a, b = np.concatenate(out_a), np.concatenate(out_b)
    if len(a):
        pair = np.unique(np.stack([a, b], axis=1), axis=0)
        a, b = pair[:, 0], pair[:, 1]
    return pa.table([a, b, hamming(a, b)], schema=PAIR_SCHEMA)


class NodeConfig(StrictModel):
    """Where the near barrier left the pHashes whose rows it needs (RUN/dedup/near_nodes.parquet)."""

    nodes: str
    s3: S3Options | None = None


class NodeRows:
    """`HASH_COLUMNS` rows whose pHash is a node of some verified pair → (phash, uid, pixels); others dropped."""

    name = "near_nodes"
    resources: Resources = CPU_LIGHT

    def __init__(self, config: NodeConfig) -> None:
        self.nodes = read_parquet_uri(config.nodes, config.s3)["phash"].combine_chunks()

    def __call__(self, batch: pa.Table) -> pa.Table:
        t = batch.filter(pc.is_in(batch["phash"], value_set=self.nodes))
        return t.select(["phash", "uid", "pixels"])
