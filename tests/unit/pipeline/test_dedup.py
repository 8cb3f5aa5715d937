"""Dedup per-batch steps and driver pieces without Ray: explode, bucket verification, representative choice, the
reject stages; and the distributed recipe (explode → group → verify → components) equals the one-process search."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curation.neardup import near_duplicate_clusters, table_blocks
from pipeline.dedup import (
    ARTIFACT_SCHEMA,
    EVAL_HASH_SCHEMA,
    DedupConfig,
    DedupRejectConfig,
    DedupRejectStage,
    EvalDedupConfig,
    EvalDedupStage,
    clusters_to_artifact,
)
from pipeline.dedup.buckets import (
    BucketConfig,
    band_rows,
    bucket_pairs,
    exact_edges,
    exact_keys,
    hash_rows,
    run_starts,
)
from pipeline.stages.base import mark_rejected

A = 0xF0F0F0F0F0F0F0F0  # popcount 32
FLAT = 0x8000000000000000  # what every solid colour hashes to: degenerate


def flip(h: int, *bits: int) -> int:
    for b in bits:
        h ^= 1 << b
    return h


def image_batch(uids, phash, sha=None, sizes=None, degenerate=None) -> pa.Table:
    n = len(uids)
    sha = sha or [f"{i:064x}" for i in range(n)]
    sizes = sizes or [(100, 100)] * n
    degenerate = degenerate or [bin(h).count("1") != 32 if h is not None else None for h in phash]
    return pa.table(
        {
            "uid": uids,
            "sha256": sha,
            "phash": pa.array(phash, pa.uint64()),
            "phash_degenerate": degenerate,
            "orig_width": pa.array([w for w, _ in sizes], pa.int32()),
            "orig_height": pa.array([h for _, h in sizes], pa.int32()),
        }
    )


def test_hash_rows_keeps_live_decoded_rows_with_pixels():
    t = image_batch(["a", "b", "c"], [A, None, A], sizes=[(10, 20), (1, 1), (30, 40)])
    t = mark_rejected(t, [None, None, "http_error"], stage="download")
    out = hash_rows(t)
    assert out.column_names == ["uid", "sha256", "phash", "phash_degenerate", "pixels"]
    assert out["uid"].to_pylist() == ["a"] and out["pixels"].to_pylist() == [200]


def test_exact_keys_skip_degenerate_phash_and_edges_point_to_the_largest_then_smallest_uid():
    rows = hash_rows(
        image_batch(
            ["u3", "u1", "u2", "f1", "f2"], [A, A, A, FLAT, FLAT], sizes=[(50, 50), (10, 10), (50, 50), (9, 9), (9, 9)]
        )
    )
    keys = exact_keys(rows, BucketConfig(shards=4))
    assert keys.num_rows == 5 + 3  # every sha256, only the three non-degenerate pHashes
    assert set(keys["group"].to_pylist()) <= set(range(8))
    edges = exact_edges(keys.filter(pa.compute.equal(pa.compute.binary_length(keys["key"]), 9)))
    assert sorted(zip(edges["uid_a"].to_pylist(), edges["uid_b"].to_pylist(), strict=True)) == [
        ("u1", "u2"),
        ("u3", "u2"),
    ]
    shuffled = exact_edges(keys.take(pa.array([7, 3, 0, 5, 1, 6, 2, 4])))
    assert sorted(shuffled["uid_a"].to_pylist()) == ["u1", "u3"]  # flat images share a pHash, not a cluster


def test_run_starts():
    assert run_starts(np.array([1, 1, 2, 3, 3, 3])).tolist() == [0, 0, 2, 3, 3, 3]
    assert run_starts(pa.array([b"a", b"b", b"b"])).tolist() == [0, 1, 1]
    assert run_starts(np.array([], np.uint64)).tolist() == []


def test_band_rows_one_row_per_table_per_distinct_hash():
    rows = hash_rows(image_batch(["a", "b", "c", "d"], [A, A, flip(A, 0, 4), FLAT]))
    bands = band_rows(rows, BucketConfig(k=4, shards=3))
    tables = len(table_blocks(4))
    assert tables == 35 and bands.num_rows == 2 * tables  # A once (two rows), its neighbour; FLAT never
    assert bands.schema.field("key").type == pa.uint64() and bands["group"].to_numpy().max() < tables * 3
    k2 = band_rows(rows, BucketConfig(k=3, shards=1))  # popcount-32 hashes: k = 3 is searched with k = 2's tables
    assert k2.num_rows == 2 * len(table_blocks(2))


def test_bucket_pairs_verify_by_popcount_and_ignore_row_order():
    near, far = flip(A, 0, 9, 17, 40), flip(A, 0, 1, 2, 3, 4, 5)  # distance 4 and 6 (6 bits flipped)
    group = pa.table(
        {"key": pa.array([7, 7, 7, 7, 9], pa.uint64()), "phash": pa.array([A, near, far, A, A], pa.uint64())}
    )
    got = bucket_pairs(group, BucketConfig(k=4))
    assert list(zip(got["a"].to_pylist(), got["b"].to_pylist(), got["distance"].to_pylist(), strict=True)) == [
        (min(A, near), max(A, near), 4)
    ]
    rev = bucket_pairs(group.take(pa.array([4, 3, 2, 1, 0])), BucketConfig(k=4))
    assert rev.equals(got)
    assert bucket_pairs(group.slice(0, 0), BucketConfig(k=4)).num_rows == 0


def test_representative_is_deterministic_under_row_order():
    uids = np.array(["c", "a", "b", "d", "e"], dtype=object)
    pixels = np.array([100, 100, 400, 50, 7])
    phash = np.array([A, flip(A, 1, 2), flip(A, 3, 4), A, flip(A, 5, 6)], dtype=np.uint64)
    a, b = np.array([0, 1, 3]), np.array([1, 2, 0])  # {c, a, b, d} one component, e alone
    art = clusters_to_artifact(a, b, uids, pixels, phash)
    assert art.schema == ARTIFACT_SCHEMA
    assert art.to_pylist() == [
        {"uid": "a", "representative": "b", "distance": 4, "cluster_size": 4},
        {"uid": "c", "representative": "b", "distance": 2, "cluster_size": 4},
        {"uid": "d", "representative": "b", "distance": 2, "cluster_size": 4},
    ]
    perm = np.array([4, 2, 0, 3, 1])
    inv = np.argsort(perm)
    again = clusters_to_artifact(inv[a], inv[b], uids[perm], pixels[perm], phash[perm])
    assert again.equals(art)
    tie = clusters_to_artifact(np.array([0]), np.array([1]), np.array(["z", "y"], object), np.array([5, 5]), phash[:2])
    assert tie["representative"].to_pylist() == ["y"]  # equal size: smallest uid wins


def test_distributed_near_recipe_equals_one_process_search():
    rng = np.random.default_rng(3)
    hashes = set()
    while len(hashes) < 300:
        bits = rng.permutation(64)[:32]
        hashes.add(int(sum(1 << int(b) for b in bits)))
    hashes = sorted(hashes)
    for h in hashes[:60]:  # planted neighbours at distance 2 and 4 (swap set and unset bits: popcount stays 32)
        ones, zeros = [b for b in range(64) if h >> b & 1], [b for b in range(64) if not h >> b & 1]
        hashes.append(flip(h, ones[0], zeros[0]) if h % 2 else flip(h, ones[0], ones[1], zeros[0], zeros[1]))
    hashes = np.array(sorted(set(hashes)), dtype=np.uint64)
    n = len(hashes)
    uids = np.array([f"u{i:04d}" for i in rng.permutation(n)], dtype=object)
    pixels = rng.integers(1, 5, n)
    rows = pa.table(
        {
            "uid": uids.tolist(),
            "sha256": ["0" * 64] * n,
            "phash": pa.array(hashes),
            "phash_degenerate": [False] * n,
            "pixels": pixels,
        }
    )
    cfg = BucketConfig(k=4, shards=2)
    bands = pa.concat_tables([band_rows(rows.slice(s, 100), cfg) for s in range(0, n, 100)])
    groups = bands["group"].to_numpy()
    pairs = pa.concat_tables([bucket_pairs(bands.filter(pa.array(groups == g)), cfg) for g in np.unique(groups)])
    ab = np.unique(np.stack([pairs["a"].to_numpy(), pairs["b"].to_numpy()], axis=1), axis=0)
    nodes = np.unique(ab)
    at = np.searchsorted(hashes, nodes)
    art = clusters_to_artifact(
        np.searchsorted(nodes, ab[:, 0]), np.searchsorted(nodes, ab[:, 1]), uids[at], pixels[at], nodes
    )
    rep = near_duplicate_clusters(hashes, 4, priority=(-pixels, uids.astype(str)))
    expected = {uids[i]: uids[r] for i, r in enumerate(rep) if r != i}
    assert len(expected) >= 55
    assert dict(zip(art["uid"].to_pylist(), art["representative"].to_pylist(), strict=True)) == expected


def write(path, table):
    pq.write_table(table, path)
    return str(path)


def test_dedup_reject_stage_exact_before_near_and_only_live_rows(tmp_path):
    exact = write(
        tmp_path / "exact.parquet",
        pa.table(
            {
                "uid": ["b"],
                "representative": ["a"],
                "distance": pa.array([0], pa.int8()),
                "cluster_size": pa.array([2], pa.int32()),
            },
            schema=ARTIFACT_SCHEMA,
        ),
    )
    near = write(
        tmp_path / "near.parquet",
        pa.table(
            {
                "uid": ["b", "c", "d"],
                "representative": ["x", "a", "a"],
                "distance": pa.array([2, 2, 4], pa.int8()),
                "cluster_size": pa.array([3, 3, 3], pa.int32()),
            },
            schema=ARTIFACT_SCHEMA,
        ),
    )
    batch = mark_rejected(pa.table({"uid": ["a", "b", "c", "d"]}), [None, None, None, "too_small"], stage="images")
    out = DedupRejectStage(DedupRejectConfig(exact=exact, near=near))(batch)
    assert out["reject_reason"].to_pylist() == [None, "exact_duplicate", "near_duplicate", "too_small"]
    assert out["reject_detail"].to_pylist()[:3] == [None, "a", "a"]
    assert out["reject_stage"].to_pylist() == [None, "dedup", "dedup", "images"]
    assert DedupRejectStage(DedupRejectConfig())(batch).equals(batch)


def test_eval_dedup_stage_rejects_within_k_eval(tmp_path):
    hashes = write(
        tmp_path / "h.parquet",
        pa.table(
            {
                "set": ["synthetic", "synthetic", "other"],
                "image_id": ["7", "8", "9"],
                "phash": pa.array([A, flip(A, 8, 12, 9, 13, 10, 14, 11, 15), FLAT], pa.uint64()),
            },
            schema=EVAL_HASH_SCHEMA,
        ),
    )
    near, far = flip(A, 0, 4), flip(A, 0, 4, 1, 5, 2, 6)  # one unset + one set bit per pair: popcount stays 32
    batch = image_batch(["a", "b", "c", "d", "e"], [near, far, FLAT, None, A])
    batch = mark_rejected(batch, [None, None, None, None, "exact_duplicate"], stage="dedup")
    out = EvalDedupStage(EvalDedupConfig(hashes=hashes, k_eval=4))(batch)
    assert out["reject_reason"].to_pylist() == ["eval_duplicate", None, None, None, "exact_duplicate"]
    assert out["reject_detail"].to_pylist()[0] == "synthetic:7 d=2"
    assert out["reject_stage"].to_pylist()[0] == "eval_dedup"


def test_dedup_config():
    cfg = DedupConfig()
    assert (cfg.exact, cfg.near, cfg.k, cfg.k_eval) == (True, True, 4, 4)
    with pytest.raises(ValidationError, match="dedup.near needs dedup.exact"):
        DedupConfig(exact=False)
    DedupConfig(exact=False, near=False)
    with pytest.raises(ValidationError):
        DedupConfig(k=9)
