"""Dedup barriers: whole-dataset exact and near-duplicate clustering and the benchmark pHashes, each writing a small
artifact under RUN/dedup/ and returning its path; they never reject rows (the stages in `pipeline.dedup.reject` and
`pipeline.dedup.eval_dedup` do, from the artifacts).

    exact_dedup(ds, cfg, run)        → RUN/dedup/exact.parquet        same sha256, or same non-degenerate pHash
    near_dedup(ds, cfg, run)         → RUN/dedup/near.parquet         pHash distance 1..k between exact survivors
    eval_hashes(sets, image, run)    → RUN/dedup/eval_hashes.parquet  pHashes of the configured benchmark images

exact/near list only rows to drop (`pipeline.dedup.artifacts.ARTIFACT_SCHEMA`: uid, representative, distance,
cluster_size, sorted by uid); a `.json` summary with the counts sits beside each artifact. The representative of a
cluster is its row with the largest source image (orig_width × orig_height), then the smallest uid: a function of
the rows, not of their order, partitioning or worker count.

How (DESIGN.md §4): live rows are exploded into bucket keys — exact: sha256 and pHash; near: the pHash's
block-permutation keys (`curation.neardup.band_keys`) — and a Ray Data groupby co-locates equal keys. A group is
(table, shard of the key), so one call verifies thousands of buckets with numpy rather than one call per (mostly
singleton) bucket. Buckets yield edges (exact: each member → its bucket's best row; near: pairs verified by
popcount); the edges are collected on the driver, where `union_find_components` picks the representatives.
Driver limit: a near pair is two uint64 (16 B, the pHashes), an exact edge carries its two uids (~120 B).
`DedupConfig.max_pairs` (default 10^8 ≈ 1.6 GB of near pairs) stops a run that would exceed it with an error
instead of an out-of-memory driver; beyond that, components need sharded union-find (not implemented).

Each barrier reads its input once: pass a materialized dataset (or one read back from storage), never one whose
execution would download again.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.images import ImageConfig
from curation.neardup import table_blocks, table_radius, union_find_components
from curation.phash import hamming
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, Uri, filesystem
from pipeline.dedup.artifacts import (
    ARTIFACT_SCHEMA,
    EVAL_HASH_SCHEMA,
    dedup_dir,
    write_summary,
    write_table,
)
from pipeline.dedup.buckets import (
    PAIR_SCHEMA,
    BucketConfig,
    NodeConfig,
    NodeRows,
    band_rows,
    bucket_pairs,
    exact_edges,
    exact_keys,
    hash_rows,
)
from pipeline.dedup.config import DedupConfig, EvalSetConfig
from pipeline.dedup.eval_dedup import EvalHashConfig, hash_eval_images
from pipeline.stages.base import CPU_LIGHT, StageSpec, apply_stage

MAX_PARTITIONS = 200  # Ray's default hash-shuffle parallelism
ROWS_PER_PARTITION = 2_000_000  # exploded rows per shuffle partition: small inputs get few partitions (fewer actors)


class DedupError(ClipforgeError):
    """A dedup barrier cannot finish within its configured limits (the message names the limit)."""


def _collect(ds, schema: pa.Schema) -> pa.Table:
    """All blocks of `ds` as one Arrow table on the driver (`schema`'s empty table when there are none)."""
    import ray

    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    return pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()


def _groupby(ds, fn, config: BucketConfig, n_groups: int, n_rows: int):
    """Group `n_rows` rows on `group` (n_groups values) and run `fn(group_table, config=config)` per group."""
    parts = max(1, min(n_groups, MAX_PARTITIONS, math.ceil(n_rows / ROWS_PER_PARTITION)))
    return ds.groupby("group", num_partitions=parts).map_groups(
        fn, batch_format="pyarrow", fn_kwargs={"config": config}, num_cpus=CPU_LIGHT.num_cpus
    )


def _hash_rows(ds, cfg: DedupConfig) -> tuple[object, int, int]:
    """(materialized `HASH_COLUMNS` of the live rows, row count, shards per table)."""
    rows = apply_stage(ds, StageSpec(hash_rows)).materialize()
    n = rows.count()
    return rows, n, max(1, math.ceil(n / cfg.rows_per_group))


def _check_limit(n_edges: int, cfg: DedupConfig, step: str) -> None:
    if n_edges > cfg.max_pairs:
        raise DedupError(
            f"{step} dedup found {n_edges:,} candidate edges, more than dedup.max_pairs = "
            f"{cfg.max_pairs:,} that the driver may collect; raise it if the driver has the memory "
            "(~16 B per near pair, ~120 B per exact edge), or lower dedup.k"
        )


def clusters_to_artifact(
    a: np.ndarray, b: np.ndarray, uids: np.ndarray, pixels: np.ndarray, phash: np.ndarray
) -> pa.Table:
    """Edges (a, b: int64 node indices) over nodes (uid str, pixels int64, phash uint64) → `ARTIFACT_SCHEMA` rows for
    every node that is not its component's representative (largest pixels, then smallest uid), sorted by uid."""
    n = len(uids)
    rep = union_find_components(n, (a, b), priority=(-np.asarray(pixels, np.int64), np.asarray(uids, dtype=str)))
    size = np.bincount(rep, minlength=n)[rep]
    drop = np.flatnonzero(rep != np.arange(n))
    drop = drop[np.argsort(np.asarray(uids, dtype=str)[drop], kind="stable")]
    return pa.table(
        [
            pa.array(np.asarray(uids, dtype=object)[drop], pa.string()),
            pa.array(np.asarray(uids, dtype=object)[rep[drop]], pa.string()),
            pa.array(hamming(phash[drop], phash[rep[drop]]).astype(np.int8)),
            pa.array(size[drop].astype(np.int32)),
        ],
        schema=ARTIFACT_SCHEMA,
    )


def exact_dedup(ds, cfg: DedupConfig, run_dir: str, s3: S3Options | None = None) -> str:
    """Cluster live rows sharing a sha256 or a non-degenerate pHash; write RUN/dedup/exact.parquet, return its URI."""
    t0 = time.monotonic()
    rows, n, shards = _hash_rows(ds, cfg)
    e = pa.table({})
    if n:  # no live row: no key column to group on (Ray's shuffle fails on a schema-less empty input)
        keys = apply_stage(rows, StageSpec(exact_keys, BucketConfig(shards=shards)))
        edges = _groupby(keys, exact_edges, BucketConfig(shards=shards), 2 * shards, 2 * n).materialize()
        _check_limit(edges.count(), cfg, "exact")
        e = _collect(edges, pa.schema([]))
    if e.num_rows:
        enc = pc.dictionary_encode(pa.concat_arrays([e["uid_a"].combine_chunks(), e["uid_b"].combine_chunks()]))
        index = enc.indices.to_numpy().astype(np.int64)
        _, first = np.unique(index, return_index=True)
        pixels = np.concatenate([e["pixels_a"].to_numpy(), e["pixels_b"].to_numpy()])[first]
        phash = np.concatenate([e["phash_a"].to_numpy(), e["phash_b"].to_numpy()]).astype(np.uint64)[first]
        uids = np.asarray(enc.dictionary.to_pylist(), dtype=object)
        half = e.num_rows
        artifact = clusters_to_artifact(index[:half], index[half:], uids, pixels, phash)
    else:
        artifact = ARTIFACT_SCHEMA.empty_table()
    d = dedup_dir(run_dir)
    uri = write_table(d.join("exact.parquet"), artifact, s3)
    write_summary(d.join("exact.json"), _summary("exact", n, shards, e.num_rows, artifact, t0), s3)
    return uri


def _summary(step: str, n: int, shards: int, edges: int, artifact: pa.Table, t0: float) -> dict:
    return {
        "step": step,
        "rows": n,
        "shards_per_table": shards,
        "edges": edges,
        "dropped": artifact.num_rows,
        "clusters": len(set(artifact["representative"].to_pylist())),
        "seconds": round(time.monotonic() - t0, 3),
    }


def _node_rows(rows, nodes: np.ndarray, d: Uri, s3: S3Options | None) -> tuple[np.ndarray, np.ndarray]:
    """(uid, pixels) of the best row (largest pixels, then smallest uid) of each node pHash in `nodes` (sorted): the
    exact step's survivor for that pHash. The node list goes to the workers as RUN/dedup/near_nodes.parquet."""
    nodes_uri = write_table(d.join("near_nodes.parquet"), pa.table({"phash": pa.array(nodes, pa.uint64())}), s3)
    found = _collect(apply_stage(rows, StageSpec(NodeRows, NodeConfig(nodes=nodes_uri, s3=s3))), pa.schema([]))
    order = pc.sort_indices(found, [("phash", "ascending"), ("pixels", "descending"), ("uid", "ascending")])
    found = found.take(order)
    h = found["phash"].to_numpy().astype(np.uint64)
    first = np.concatenate(([True], h[1:] != h[:-1])) if len(h) else np.zeros(0, bool)
    if not np.array_equal(h[first], nodes):
        raise DedupError(
            "near dedup: the input changed between reads (a node pHash has no row); pass a materialized dataset"
        )
    return np.asarray(found["uid"].to_pylist(), dtype=object)[first], found["pixels"].to_numpy()[first]


def near_dedup(ds, cfg: DedupConfig, run_dir: str, s3: S3Options | None = None) -> str:
    """Cluster distinct non-degenerate pHashes within Hamming `cfg.k`; write RUN/dedup/near.parquet, return its URI.

    Rows are represented by their pHash's exact survivor, so apply the exact artifact too (rows of a pHash that
    the exact step drops are not listed here again).
    """
    t0 = time.monotonic()
    rows, n, shards = _hash_rows(ds, cfg)
    tables = len(table_blocks(table_radius(cfg.k, exclude_degenerate=True)))
    bucket = BucketConfig(k=cfg.k, shards=shards)
    p = PAIR_SCHEMA.empty_table()
    if n:  # as in exact_dedup: nothing to group when no row is live
        bands = apply_stage(rows, StageSpec(band_rows, bucket))
        pairs = _groupby(bands, bucket_pairs, bucket, tables * shards, tables * n).materialize()
        _check_limit(pairs.count(), cfg, "near")
        p = _collect(pairs, PAIR_SCHEMA)
    ab = np.stack([p["a"].to_numpy(), p["b"].to_numpy()], axis=1).astype(np.uint64)
    ab = np.unique(ab, axis=0) if len(ab) else ab  # a pair found in several tables counts once
    nodes = np.unique(ab.reshape(-1))
    d = dedup_dir(run_dir)
    if len(nodes):
        uids, pixels = _node_rows(rows, nodes, d, s3)
        a, b = np.searchsorted(nodes, ab[:, 0]), np.searchsorted(nodes, ab[:, 1])
        artifact = clusters_to_artifact(a, b, uids, pixels, nodes)
    else:
        artifact = ARTIFACT_SCHEMA.empty_table()
    uri = write_table(d.join("near.parquet"), artifact, s3)
    write_summary(d.join("near.json"), {**_summary("near", n, shards, len(ab), artifact, t0), "tables": tables}, s3)
    return uri


def eval_hashes(sets: list[EvalSetConfig], image: ImageConfig, run_dir: str, s3: S3Options | None = None) -> str:
    """pHash every image of the configured benchmark sets once, decoded as the download stage decodes (`image`, with
    its size checks relaxed: a benchmark image is hashed whatever its size); write RUN/dedup/eval_hashes.parquet
    (`EVAL_HASH_SCHEMA`) and return its URI. Images that do not decode are counted in eval_hashes.json."""
    import ray

    t0 = time.monotonic()
    tables, failed = [], {}
    for s in sets:
        fs, path = filesystem(s.path, s3)
        ds = ray.data.read_parquet(path, filesystem=fs).select_columns([s.image_column, s.id_column])
        got = _collect(
            apply_stage(ds, StageSpec(hash_eval_images, EvalHashConfig(source=s, image=image))), EVAL_HASH_SCHEMA
        )
        ok = pc.is_valid(got["phash"])
        failed[s.name] = got.num_rows - pc.sum(ok.cast(pa.int64())).as_py() if got.num_rows else 0
        tables.append(got.filter(ok))
    out = pa.concat_tables(tables) if tables else EVAL_HASH_SCHEMA.empty_table()
    out = out.take(pc.sort_indices(out, [("set", "ascending"), ("image_id", "ascending")]))
    d = dedup_dir(run_dir)
    uri = write_table(d.join("eval_hashes.parquet"), out, s3)
    summary = {
        "step": "eval_hashes",
        "hashed": out.num_rows,
        "undecodable": failed,
        "seconds": round(time.monotonic() - t0, 3),
    }
    write_summary(d.join("eval_hashes.json"), summary, s3)
    return uri
