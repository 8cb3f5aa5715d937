"""Exact near-duplicate search over 64-bit pHashes (Hamming ≤ k) and clustering; must not import Ray or do I/O.

Method (Manku, Jain, Das Sarma, WWW 2007 — block-permutation tables): split the 64 bits into m = k + 3 blocks
(k = 3: six blocks of 11, 11, 11, 11, 10, 10 bits). Two hashes within distance k differ in at most k blocks, so at
least 3 blocks are identical, so they share the key formed by some choice of 3 blocks: C(m, 3) tables (k = 3:
20 tables of 31–33-bit keys) find every such pair — the search is exact, never approximate. Candidates (same key
in some table) are verified by popcount, edges go to union-find, and each cluster's representative is the member
with the smallest priority key. Real (non-degenerate) pHashes all have 32 bits set, so their distances are even and
k = 3 is searched with the 10 tables of k = 2 (`table_radius`) — same pairs, half the work.

The pieces a distributed version needs are public: `band_keys` (explode to (table, key) rows for a groupby),
`pairs_within` (verify one bucket), `union_find_components` (edges → representatives).

Degenerate hashes (popcount ≠ 32, see `phash.degenerate_mask`) are excluded by default: they are neither
near- nor exact-matched and stay their own representative, because unrelated flat images share them (every solid
colour hashes to 0x8000000000000000). Byte-identical copies of such images are still caught by the sha256 stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curation.phash import degenerate_mask, hamming

KEPT_BLOCKS = 3
SMALL_BUCKET = 64  # buckets up to this size are expanded by the vectorised offset loop, larger ones by broadcasting
PAIR_CHUNK = 1 << 22  # bound on the (rows × bucket) popcount matrix held at once in `pairs_within`

Priority = np.ndarray | Sequence[np.ndarray] | None


def block_layout(max_distance: int = 3) -> list[tuple[int, int]]:
    """(shift, width) of each of the k + 3 blocks, most significant first; widths differ by at most one bit."""
    if not 0 <= max_distance <= 8:  # C(11, 3) = 165 tables at k = 8 (table ids are uint8); beyond: not this method
        raise ValueError(f"max_distance must be in 0..8, got {max_distance}")
    m = max_distance + KEPT_BLOCKS
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    layout, top = [], 64
    for w in widths:
        top -= w
        layout.append((top, w))
    return layout


def table_blocks(max_distance: int = 3) -> list[tuple[int, ...]]:
    """The block triples, one per table, in a fixed order (table_id = position in this list)."""
    return list(combinations(range(max_distance + KEPT_BLOCKS), KEPT_BLOCKS))


def table_radius(max_distance: int, exclude_degenerate: bool) -> int:
    """Radius the block tables must cover. Two hashes that both have exactly 32 bits set differ in an even number
    of bits (every 1→0 flip pairs with a 0→1 flip), so among non-degenerate pHashes k = 3 finds exactly the pairs
    k = 2 finds — with C(5, 3) = 10 tables of ~38-bit keys instead of 20 of ~32 bits."""
    return max_distance - max_distance % 2 if exclude_degenerate else max_distance


def _table_keys(hashes: np.ndarray, layout: list[tuple[int, int]], blocks: tuple[int, ...]) -> np.ndarray:
    """Concatenate the chosen blocks of each hash into one uint64 key (≤ 64 bits, ~33 for k = 3)."""
    key = np.zeros(hashes.shape, dtype=np.uint64)
    for b in blocks:
        shift, width = layout[b]
        mask = np.uint64((1 << width) - 1)
        key = (key << np.uint64(width)) | ((hashes >> np.uint64(shift)) & mask)
    return key


def band_keys(hashes: np.ndarray, max_distance: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Explode n hashes into n·T (table_id uint8, key uint64) rows, table-major: row r belongs to item r % n.

    Items sharing (table_id, key) are candidates; a groupby on both columns gives the buckets `pairs_within`
    verifies. Every pair within `max_distance` shares at least one row.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    layout, tables = block_layout(max_distance), table_blocks(max_distance)
    keys = np.concatenate([_table_keys(hashes, layout, blocks) for blocks in tables]) if len(hashes) else None
    if keys is None:
        return np.zeros(0, np.uint8), np.zeros(0, np.uint64)
    table_ids = np.repeat(np.arange(len(tables), dtype=np.uint8), len(hashes))
    return table_ids, keys


def pairs_within(hashes_in_bucket: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """All local index pairs (i < j) of one bucket whose Hamming distance is ≤ max_distance, as two int64 arrays.

    Quadratic in the bucket size by nature; memory is bounded by processing rows in chunks.
    """
    h = np.asarray(hashes_in_bucket, dtype=np.uint64)
    m = len(h)
    rows = max(1, PAIR_CHUNK // max(m, 1))
    out_i, out_j = [], []
    for start in range(0, m, rows):
        block = hamming(h[start : start + rows, None], h[None, :]) <= max_distance
        i, j = np.nonzero(block)
        i = i + start
        keep = j > i
        out_i.append(i[keep])
        out_j.append(j[keep])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)


def _sort_keys(keys: np.ndarray, key_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted keys, original positions). Packs (key, position) into one uint64 when it fits, because numpy's
    SIMD sort of plain uint64 is ~10× faster than an argsort (the dominant cost of the whole search)."""
    n = len(keys)
    idx_bits = max(1, (n - 1).bit_length())
    if key_bits + idx_bits <= 64:
        packed = np.sort((keys << np.uint64(idx_bits)) | np.arange(n, dtype=np.uint64))
        return packed >> np.uint64(idx_bits), (packed & np.uint64((1 << idx_bits) - 1)).astype(np.int64)
    order = np.argsort(keys)
    return keys[order], order


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) int64 of each run of equal values in a sorted array."""
    if len(sorted_values) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    return starts.astype(np.int64), np.diff(np.append(starts, len(sorted_values))).astype(np.int64)


def _bucket_candidates(
    keys: np.ndarray, key_bits: int, hashes: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Verified pairs (i < j, item indices) among items sharing a key in one table."""
    sk, order = _sort_keys(keys, key_bits)
    starts, lengths = _runs(sk)
    # Small buckets (the normal case) are expanded for all buckets at once; big ones one by one, chunked.
    p, q = _run_pairs(starts, np.where(lengths <= SMALL_BUCKET, lengths, 1))
    a, b = order[p], order[q]
    ok = hamming(hashes[a], hashes[b]) <= max_distance
    out_a, out_b = [a[ok]], [b[ok]]
    for s, n in zip(starts[lengths > SMALL_BUCKET].tolist(), lengths[lengths > SMALL_BUCKET].tolist(), strict=True):
        members = order[s : s + n]
        li, lj = pairs_within(hashes[members], max_distance)
        out_a.append(members[li])
        out_b.append(members[lj])
    a, b = np.concatenate(out_a), np.concatenate(out_b)
    return np.minimum(a, b), np.maximum(a, b)


def _exact_groups(hashes: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Collapse identical hashes of `items`: (unique hashes ascending, members grouped by unique hash, start and
    count of each unique hash's members in `members`)."""
    order = np.argsort(hashes[items])
    sorted_hashes = hashes[items][order]
    starts, counts = _runs(sorted_hashes)
    return sorted_hashes[starts], items[order].astype(np.int64), starts, counts


def _run_pairs(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All position pairs (p < q) inside runs [start, start + count) of a sorted array (quadratic per run)."""
    multi = counts > 1  # touch only runs that can pair, not every position (most runs have length 1)
    s, c = starts[multi], counts[multi]
    pos = np.repeat(s, c) + np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
    end = np.repeat(s + c, c)
    out_p, out_q, d = [], [], 1
    while len(pos):
        live = pos + d < end
        pos, end = pos[live], end[live]
        out_p.append(pos)
        out_q.append(pos + d)
        d += 1
    if not out_p:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_p), np.concatenate(out_q)


def near_duplicate_pairs(
    hashes: np.ndarray, max_distance: int = 3, *, exclude_degenerate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of item indices with Hamming(h_i, h_j) ≤ max_distance, each pair once, sorted by (i, j).

    A diagnostic/reference API: its output is quadratic in how often one hash repeats, so clustering does not use
    it (it links exact copies by a chain instead). With `exclude_degenerate`, items whose hash has popcount ≠ 32
    appear in no pair.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    items = np.flatnonzero(~degenerate_mask(hashes)) if exclude_degenerate else np.arange(n)
    uniq, members, starts, counts = _exact_groups(hashes, items)
    ui, uj = _unique_pairs(uniq, max_distance, table_radius(max_distance, exclude_degenerate))
    # Cross product of the member lists of each unique pair, vectorised.
    sizes = counts[ui] * counts[uj]
    which = np.repeat(np.arange(len(ui)), sizes)
    local = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    a = members[starts[ui[which]] + local // counts[uj[which]]]
    b = members[starts[uj[which]] + local % counts[uj[which]]]
    p, q = _run_pairs(starts, counts)
    a, b = np.concatenate((a, members[p])), np.concatenate((b, members[q]))
    code = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    return code // n, code % n


def _unique_pairs(uniq: np.ndarray, max_distance: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of distinct hashes within max_distance, via block tables covering `radius`, deduplicated."""
    if radius == 0 or len(uniq) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    layout, n = block_layout(radius), len(uniq)
    codes = []
    for blocks in table_blocks(radius):
        key_bits = sum(layout[b][1] for b in blocks)
        i, j = _bucket_candidates(_table_keys(uniq, layout, blocks), key_bits, uniq, max_distance)
        codes.append(i * n + j)
    code = np.unique(np.concatenate(codes))
    return code // n, code % n


def priority_rank(n: int, priority: Priority = None) -> np.ndarray:
    """Rank (0 = most preferred) of each item: ascending by the priority key(s), then by index. int64 (n,).

    `priority` is one array or a sequence of arrays (first = primary), each of length n and sortable (numbers or
    strings); smaller wins. E.g. "largest source image, then smallest uid": `(-orig_pixels, uid)`.
    """
    keys = [] if priority is None else [priority] if isinstance(priority, np.ndarray) else list(priority)
    for k in keys:
        if len(k) != n:
            raise ValueError(f"priority arrays must have length {n}, got {len(k)}")
    order = np.lexsort((np.arange(n), *[np.asarray(k) for k in reversed(keys)]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def union_find_components(n: int, pairs: tuple[np.ndarray, np.ndarray], priority: Priority = None) -> np.ndarray:
    """Connected components of n items under the edge list `pairs` → representative item index per item (int64).

    The representative of a component is its member with the smallest `priority_rank`, so it depends only on the
    items and their priority keys, not on input order when the keys are unique (e.g. include the uid). The result
    is the same as a union-find over the edges; the components are computed with scipy's csgraph (C, linear time).
    """
    i, j = (np.asarray(p, dtype=np.int64) for p in pairs)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    rank = priority_rank(n, priority)
    best = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(best, labels, rank)
    item_of_rank = np.empty(n, dtype=np.int64)
    item_of_rank[rank] = np.arange(n)
    return item_of_rank[best[labels]]


def near_duplicate_clusters(
    hashes: np.ndarray, max_distance: int = 3, priority: Priority = None, *, exclude_degenerate: bool = True
) -> np.ndarray:
    """Representative item index for each of n uint64 hashes (itself when it is kept), int64 (n,).

    Items are linked when their Hamming distance is ≤ max_distance (exact for any k; tables grow as C(k+3, 3));
    clusters are the connected components (so chains link), and the representative is chosen by `priority`
    (default: smallest index). Degenerate hashes are singletons when `exclude_degenerate`. Work and memory are
    linear in n plus the number of distinct near pairs: copies of one hash are linked as a chain, not all pairs.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    items = np.flatnonzero(~degenerate_mask(hashes)) if exclude_degenerate else np.arange(n)
    uniq, members, starts, counts = _exact_groups(hashes, items)
    ui, uj = _unique_pairs(uniq, max_distance, table_radius(max_distance, exclude_degenerate))
    unique_of_pos = np.repeat(np.arange(len(uniq)), counts)
    same = np.flatnonzero(unique_of_pos[1:] == unique_of_pos[:-1])  # consecutive copies of one hash: a chain
    edges_i = np.concatenate((members[starts[ui]], members[same]))
    edges_j = np.concatenate((members[starts[uj]], members[same + 1]))
    return union_find_components(n, (edges_i, edges_j), priority)


def eval_set_matches(
    train_hashes: np.ndarray, eval_hashes: np.ndarray, k: int, *, exclude_degenerate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Which training hashes lie within Hamming ≤ k of some evaluation hash (test-set leakage).

    Returns (mask bool (n_train,), matched int64 (n_train,)): matched is the closest evaluation index (ties: the
    smallest index), −1 where there is no match. Degenerate hashes on either side never match.
    """
    train = np.asarray(train_hashes, dtype=np.uint64)
    ev = np.asarray(eval_hashes, dtype=np.uint64)
    ti_all, ei_all = [], []
    radius = table_radius(k, exclude_degenerate)
    layout = block_layout(radius)
    t_ok = ~degenerate_mask(train) if exclude_degenerate else np.ones(len(train), bool)
    e_idx = np.flatnonzero(~degenerate_mask(ev)) if exclude_degenerate else np.arange(len(ev))
    for blocks in table_blocks(radius):
        tk, ek = _table_keys(train, layout, blocks), _table_keys(ev[e_idx], layout, blocks)
        e_order = np.argsort(ek, kind="stable")
        sek = ek[e_order]
        lo, hi = np.searchsorted(sek, tk, "left"), np.searchsorted(sek, tk, "right")
        counts = np.where(t_ok, hi - lo, 0)
        ti = np.repeat(np.arange(len(train)), counts)
        offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ei = e_idx[e_order[np.repeat(lo, counts) + offs]]
        ok = hamming(train[ti], ev[ei]) <= k
        ti_all.append(ti[ok])
        ei_all.append(ei[ok])
    return _closest_match(train, ev, np.concatenate(ti_all), np.concatenate(ei_all))


def _closest_match(train, ev, ti, ei) -> tuple[np.ndarray, np.ndarray]:
    """Reduce verified (train, eval) pairs to the closest eval index per train item (ties → smallest index)."""
    matched = np.full(len(train), -1, dtype=np.int64)
    if len(ti):
        order = np.lexsort((ei, hamming(train[ti], ev[ei]), ti))
        ti, ei = ti[order], ei[order]
        first = np.concatenate(([True], ti[1:] != ti[:-1]))
        matched[ti[first]] = ei[first]
    return matched >= 0, matched
