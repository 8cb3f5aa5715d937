"""Near-duplicate search: exact against brute force, clusters, degenerate hashes, determinism, eval-set matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import curation.neardup as nd
from curation.neardup import (
    band_keys,
    block_layout,
    eval_set_matches,
    near_duplicate_clusters,
    near_duplicate_pairs,
    pairs_within,
    priority_rank,
    table_blocks,
    table_radius,
    union_find_components,
)
from curation.phash import hamming, popcount

ONE = np.uint64(1)


def random_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64, n, dtype=np.uint64)


def flip_bits(rng: np.random.Generator, hashes: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Each hash with exactly distances[i] distinct bits flipped."""
    positions = np.argsort(rng.random((len(hashes), 64)), axis=1)
    masks = np.zeros(len(hashes), dtype=np.uint64)
    for c in range(int(distances.max(initial=0))):
        take = distances > c
        masks[take] |= ONE << positions[take, c].astype(np.uint64)
    return hashes ^ masks


def plant(rng: np.random.Generator, n: int, n_pairs: int, max_d: int = 3) -> np.ndarray:
    """n random hashes; n_pairs of them overwritten with copies of others at distance 0..max_d (uniform)."""
    h = random_hashes(rng, n)
    idx = rng.choice(n, 2 * n_pairs, replace=False)
    src, dst = idx[:n_pairs], idx[n_pairs:]
    h[dst] = flip_bits(rng, h[src], rng.integers(0, max_d + 1, n_pairs))
    return h


def brute_pairs(h: np.ndarray, k: int, exclude_degenerate: bool) -> set[tuple[int, int]]:
    d = hamming(h[:, None], h[None, :])
    ok = np.triu(d <= k, 1)
    if exclude_degenerate:
        good = popcount(h) == 32
        ok &= good[:, None] & good[None, :]
    i, j = np.nonzero(ok)
    return set(zip(i.tolist(), j.tolist(), strict=True))


def as_set(pairs) -> set[tuple[int, int]]:
    return set(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))


def test_block_layout_for_k3_is_six_blocks_twenty_tables():
    assert [w for _, w in block_layout(3)] == [11, 11, 11, 11, 10, 10]
    assert [s for s, _ in block_layout(3)] == [53, 42, 31, 20, 10, 0]
    assert len(table_blocks(3)) == 20 and len(table_blocks(1)) == 4 and len(table_blocks(4)) == 35


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("exclude", [False, True])
def test_pairs_equal_brute_force(k, exclude):
    rng = np.random.default_rng(k)
    h = plant(rng, 6000, 1500, max_d=k + 1)
    # Exact-duplicate groups and a chain (a-b and b-c within k, a-c beyond): all must be listed as pairs.
    h[:5] = h[5]
    h[10] = flip_bits(rng, h[11:12], np.array([min(k, 3)]))[0]
    h[12] = flip_bits(rng, h[10:11], np.array([min(k, 3)]))[0]
    assert as_set(near_duplicate_pairs(h, k, exclude_degenerate=exclude)) == brute_pairs(h, k, exclude)


def test_recall_and_precision_1_on_1e5_hashes():
    """10^5 hashes, 20,000 planted pairs at distances 0–3. The truth comes from an independent exact method:
    classic pigeonhole with 4 blocks of 16 bits (d ≤ 3 ⇒ one block equal), exhaustively verified per bucket."""
    rng = np.random.default_rng(7)
    h = plant(rng, 100_000, 20_000)
    got = near_duplicate_pairs(h, 3, exclude_degenerate=False)
    truth = set()
    for shift in (0, 16, 32, 48):
        key = (h >> np.uint64(shift)) & np.uint64(0xFFFF)
        order = np.argsort(key, kind="stable")
        sk = key[order]
        for d in range(1, 64):  # every pair of positions inside one bucket, at offset d
            same = np.flatnonzero(sk[d:] == sk[:-d])
            if not len(same):
                break
            a, b = order[same], order[same + d]
            ok = hamming(h[a], h[b]) <= 3
            truth |= set(zip(np.minimum(a, b)[ok].tolist(), np.maximum(a, b)[ok].tolist(), strict=True))
    found = as_set(got)
    assert len(truth) >= 20_000
    assert found == truth  # recall 1.0 and precision 1.0
    assert (hamming(h[got[0]], h[got[1]]) <= 3).all()


def test_clusters_are_brute_force_components():
    rng = np.random.default_rng(3)
    h = plant(rng, 4000, 1200)
    rep = near_duplicate_clusters(h, 3, exclude_degenerate=False)
    i, j = map(np.array, zip(*brute_pairs(h, 3, False), strict=True))
    _, labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(4000, 4000)), directed=False)
    for lab in np.unique(labels):
        members = np.flatnonzero(labels == lab)
        assert (rep[members] == members.min()).all()  # one component, default priority: smallest index


def balanced_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Hashes shaped like real pHashes: MSB (the DC term) set and exactly 32 bits set."""
    chosen = np.argsort(rng.random((n, 63)), axis=1)[:, :31] + 1
    bits = np.zeros((n, 64), dtype=bool)
    bits[:, 0] = True
    np.put_along_axis(bits, chosen, True, axis=1)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def test_degenerate_hashes_do_not_form_giant_clusters():
    rng = np.random.default_rng(11)
    flat = np.full(2000, 0x8000000000000000, dtype=np.uint64)  # every solid-colour image
    near_flat = flip_bits(rng, np.full(500, 0x8000000000000000, dtype=np.uint64), rng.integers(1, 3, 500))
    normal = balanced_hashes(rng, 1000)
    twin = normal[:100].copy()  # real near-dups of balanced hashes differ by a swap: distance 2
    h = np.concatenate([flat, near_flat, normal, twin])
    rep = near_duplicate_clusters(h, 3)
    n_degenerate = 2500
    assert (rep[:n_degenerate] == np.arange(n_degenerate)).all()  # all singletons
    assert (rep[-100:] == np.arange(2500, 2600)).all()  # the normal duplicates still cluster
    unguarded = near_duplicate_clusters(h, 3, exclude_degenerate=False)
    assert np.bincount(unguarded).max() >= 2000  # what the guard prevents


def test_representatives_deterministic_under_permutation():
    rng = np.random.default_rng(5)
    n = 3000
    h = plant(rng, n, 900)
    h[100:110] = h[99]
    pixels = rng.integers(1, 5, n) * 10_000  # many ties on size, broken by uid
    uid = np.array([f"u{x:06d}" for x in rng.permutation(n)])
    rep = near_duplicate_clusters(h, 3, priority=(-pixels, uid), exclude_degenerate=False)
    rep_uid = dict(zip(uid.tolist(), uid[rep].tolist(), strict=True))
    for seed in range(3):
        p = np.random.default_rng(100 + seed).permutation(n)
        rep_p = near_duplicate_clusters(h[p], 3, priority=(-pixels[p], uid[p]), exclude_degenerate=False)
        assert dict(zip(uid[p].tolist(), uid[p][rep_p].tolist(), strict=True)) == rep_uid


def test_priority_largest_image_then_smallest_uid():
    h = np.array([0x0123456789ABCDEF] * 4, dtype=np.uint64)
    pixels = np.array([100, 400, 400, 50])
    uid = np.array(["d", "c", "b", "a"])
    assert near_duplicate_clusters(h, 0, priority=(-pixels, uid), exclude_degenerate=False).tolist() == [2, 2, 2, 2]
    assert priority_rank(4, (-pixels, uid)).tolist() == [2, 1, 0, 3]
    with pytest.raises(ValueError, match="length 4"):
        priority_rank(4, np.arange(3))


def test_distributed_pieces_reproduce_the_local_result():
    """band_keys → groupby (table_id, key) → pairs_within per bucket → union_find_components."""
    rng = np.random.default_rng(9)
    n = 5000
    h = plant(rng, n, 1500)
    table_ids, keys = band_keys(h, 3)
    assert len(keys) == 20 * n and table_ids.dtype == np.uint8 and keys.dtype == np.uint64
    item = np.tile(np.arange(n), 20)
    buckets: dict[tuple[int, int], list[int]] = {}
    for t, k, i in zip(table_ids.tolist(), keys.tolist(), item.tolist(), strict=True):
        buckets.setdefault((t, k), []).append(i)
    edges = set()
    for members in buckets.values():
        if len(members) > 1:
            m = np.array(members)
            li, lj = pairs_within(h[m], 3)
            edges |= set(zip(np.minimum(m[li], m[lj]).tolist(), np.maximum(m[li], m[lj]).tolist(), strict=True))
    assert edges == as_set(near_duplicate_pairs(h, 3, exclude_degenerate=False))
    i, j = map(np.array, zip(*edges, strict=True))
    assert (union_find_components(n, (i, j)) == near_duplicate_clusters(h, 3, exclude_degenerate=False)).all()


def test_pairs_within_large_bucket_chunks(monkeypatch):
    monkeypatch.setattr(nd, "PAIR_CHUNK", 20_000)  # 20 rows per chunk: the chunk seams are exercised
    rng = np.random.default_rng(2)
    bucket = flip_bits(rng, np.repeat(random_hashes(rng, 1), 800), rng.integers(1, 6, 800))
    assert as_set(pairs_within(bucket, 3)) == brute_pairs(bucket, 3, False)


def test_eval_set_matches():
    rng = np.random.default_rng(4)
    ev = random_hashes(rng, 500)
    train = random_hashes(rng, 5000)
    train[:300] = flip_bits(rng, ev[:300], rng.integers(0, 4, 300))  # leaked copies, d ≤ 3
    train[300:400] = flip_bits(rng, ev[300:400], np.full(100, 5))  # too far for k = 3
    mask, matched = eval_set_matches(train, ev, 3, exclude_degenerate=False)
    assert mask[:300].all() and not mask[300:].any()
    assert (matched[:300] == np.arange(300)).all() and (matched[300:] == -1).all()


def test_eval_set_matches_picks_the_closest_then_smallest_index():
    a = np.uint64(0x0F0F0F0F0F0F0F0F)  # balanced: 32 bits set
    swap = np.uint64(0b10001)  # clear bit 0, set bit 4: distance 2, still 32 bits
    swap2 = np.uint64(0b10001 << 8)
    ev = np.array([a ^ swap ^ swap2, a ^ swap, a ^ swap2, a], dtype=np.uint64)  # distances 4, 2, 2, 0
    assert eval_set_matches(np.array([a]), ev, 3)[1].tolist() == [3]
    mask, matched = eval_set_matches(np.array([a]), ev[:3], 3)
    assert mask.tolist() == [True] and matched.tolist() == [1]


def test_eval_set_degenerate_never_matches():
    flat = np.array([0x8000000000000000], dtype=np.uint64)
    mask, matched = eval_set_matches(flat, flat, 3)
    assert mask.tolist() == [False] and matched.tolist() == [-1]
    assert eval_set_matches(flat, flat, 3, exclude_degenerate=False)[0].tolist() == [True]


def test_empty_inputs():
    empty = np.zeros(0, dtype=np.uint64)
    assert near_duplicate_clusters(empty, 3).shape == (0,)
    assert band_keys(empty)[1].shape == (0,)
    assert eval_set_matches(empty, empty, 3)[1].shape == (0,)
    assert near_duplicate_clusters(np.array([5], dtype=np.uint64), 3).tolist() == [0]


def test_balanced_hashes_need_only_even_radius_tables():
    """popcount-32 hashes differ by an even number of bits, so k = 3 uses the 10 tables of k = 2 — and is exact."""
    assert table_radius(3, exclude_degenerate=True) == 2 and table_radius(3, exclude_degenerate=False) == 3
    rng = np.random.default_rng(12)
    h = balanced_hashes(rng, 3000)
    for start in range(0, 600, 2):  # make h[start+1] = h[start] with one 1-bit and one 0-bit swapped (d = 2)
        v = int(h[start])
        one = next(b for b in range(63) if v >> b & 1)
        zero = next(b for b in range(63) if not v >> b & 1)
        h[start + 1] = np.uint64(v ^ (1 << one) ^ (1 << zero))
    truth = brute_pairs(h, 3, True)
    assert len(truth) >= 300
    assert as_set(near_duplicate_pairs(h, 3)) == truth == as_set(near_duplicate_pairs(h, 2))
    mask, matched = eval_set_matches(h[1:600:2], h[0:600:2], 3)
    assert mask.all() and (matched == np.arange(300)).all()
