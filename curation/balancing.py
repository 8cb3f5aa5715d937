"""MetaCLIP balancing: entry counts, per-entry probabilities, keep probabilities, hash-seeded sampling, the 6 %
tail rule. Pure numpy: no Ray, no I/O, no random state — every draw is a function of (seed, uid, entry).

`id_lists` (the matched entry ids of each row) may be a list of integer numpy arrays or an Arrow `list<int>`
array (`ListArray`, `LargeListArray` or a chunked one; a null list counts as empty). Internally everything works
on the flattened CSR form (offsets int64[n+1], values int64[total]) from `flatten_id_lists`. Ids must be unique
within a row, as `EntryMatcher` produces them (MetaCLIP counts an entry at most once per text).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.hashing import MASK64, hash_uniforms, splitmix64, uid_to_u64

IdLists = Sequence[np.ndarray] | pa.ListArray | pa.LargeListArray | pa.ChunkedArray


def flatten_id_lists(id_lists: IdLists) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[n+1], values int64[total]): row i's ids are values[offsets[i]:offsets[i+1]]."""
    if isinstance(id_lists, pa.ChunkedArray):
        id_lists = id_lists.combine_chunks() if id_lists.num_chunks else pa.array([], pa.list_(pa.int32()))
    if isinstance(id_lists, pa.ListArray | pa.LargeListArray):
        lengths = pc.fill_null(pc.list_value_length(id_lists), 0).to_numpy(zero_copy_only=False)
        values = id_lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    else:
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        values = np.concatenate([np.asarray(a, dtype=np.int64) for a in id_lists]) if len(id_lists) else np.zeros(0)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, values.astype(np.int64, copy=False)


def entry_counts(id_lists: IdLists, n_entries: int) -> np.ndarray:
    """Texts per entry, `uint64[n_entries]` ("uint64 to be safe for scaling", MetaCLIP `entry_count.py`).
    Counts of disjoint batches add up to the count of their union (the one global reduce of the pipeline)."""
    _, values = flatten_id_lists(id_lists)
    if values.size and (values.min() < 0 or values.max() >= n_entries):
        bad = values[(values < 0) | (values >= n_entries)][0]
        raise ValueError(f"entry id {int(bad)} is outside the metadata's range [0, {n_entries})")
    return np.bincount(values, minlength=n_entries).astype(np.uint64)


def entry_probs(counts: np.ndarray, t: float) -> np.ndarray:
    """p_e = min(1, t / c_e) as `float64[len(counts)]`; entries with count < t (count 0 included) get 1.0.
    MetaCLIP: `entry_count[entry_count < t] = t; entry_prob = t / entry_count`."""
    if not t > 0:
        raise ValueError(f"t must be positive, got {t!r}")
    return t / np.maximum(np.asarray(counts, dtype=np.float64), float(t))


def _row_products(offsets: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Product of factors[offsets[i]:offsets[i+1]] per row; 1.0 for an empty row."""
    out = np.ones(len(offsets) - 1, dtype=np.float64)
    nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
    if nonempty.size:  # reduceat over the starts of non-empty rows: each segment is exactly that row
        out[nonempty] = np.multiply.reduceat(factors, offsets[nonempty])
    return out


def keep_prob(ids: np.ndarray | IdLists, probs: np.ndarray) -> float | np.ndarray:
    """P(keep) = 1 − Π_e (1 − p_e) over a row's entries (MetaCLIP 2 `curate.py`: `1. - np.prod(1. -
    entry_probs[ids])`). `ids` is one row (a 1-D integer numpy array -> float) or a batch of rows
    (`id_lists` -> `float64[n]`). A row without entries has probability 0."""
    if isinstance(ids, np.ndarray) and ids.ndim == 1 and ids.dtype.kind in "iu":
        return float(1.0 - np.prod(1.0 - probs[ids])) if ids.size else 0.0
    offsets, values = flatten_id_lists(ids)
    return 1.0 - _row_products(offsets, 1.0 - probs[values])


def expected_kept(id_lists: IdLists, probs: np.ndarray) -> float:
    """E[rows kept] = Σ_rows (1 − Π(1 − p_e)): MetaCLIP's planning formula for |D*|."""
    return float(np.sum(keep_prob(id_lists, probs)))


def pair_uniforms(seed: int, uid64: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """U[0, 1) per (uid, entry) pair, `float64[len(entries)]`, a pure function of (seed, uid, entry):
    `splitmix64(splitmix64(uid64 ^ splitmix64(seed)) ^ entry) >> 11`, scaled by 2^-53."""
    key = splitmix64(np.asarray([seed & MASK64], dtype=np.uint64))[0]
    row_key = splitmix64(np.asarray(uid64, dtype=np.uint64) ^ key)
    return hash_uniforms(splitmix64(row_key ^ np.asarray(entries).astype(np.uint64)))


def sample_keep(uids: Sequence[str] | pa.Array, id_lists: IdLists, probs: np.ndarray, seed: int) -> np.ndarray:
    """`bool[n]`: keep a row iff some matched entry e fires, i.e. U(seed, uid, e) < p_e — MetaCLIP's
    "for entry_id in text.matched_entry_ids: if random.random() < entry_prob[entry_id]: keep", with the
    uniform drawn from a hash instead of RNG state. So the result for a row does not depend on how rows are
    split into batches, their order, or the worker; P(keep) = `keep_prob`; a tail entry (p = 1) always keeps
    its rows; a row with no entries is never kept."""
    offsets, values = flatten_id_lists(id_lists)
    n = len(offsets) - 1
    if len(uids) != n:
        raise ValueError(f"{len(uids)} uids for {n} rows of entry ids")
    rows = np.repeat(np.arange(n), np.diff(offsets))
    fired = pair_uniforms(seed, uid_to_u64(uids)[rows], values) < probs[values]
    keep = np.zeros(n, dtype=bool)
    keep[rows[fired]] = True
    return keep


def tail_share(counts: np.ndarray, t: float) -> float:
    """Share of all matches held by entries with count < t (MetaCLIP 2 `t_to_p`:
    `entry_counts[entry_counts < t].sum() / entry_counts.sum()`)."""
    counts = np.asarray(counts, dtype=np.uint64)
    total = counts.sum()
    if total == 0:
        raise ValueError("no matches: every entry count is 0")
    return float(counts[counts < t].sum() / total)


def t_for_tail_share(counts: np.ndarray, share: float = 0.06) -> int:
    """MetaCLIP 2's `p_to_t`, exactly: sort the counts ascending (zeros included), let
    cum_i = (c_(0) + ... + c_(i)) / Σc be the share of matches held by the i+1 smallest entries, take the
    first i minimising |cum_i − share|, and return t = c_(i). So t is the count of the entry at which the
    ascending cumulative share of matches comes closest to `share`; the 6 % rule is share=0.06 (MetaCLIP:
    t=20k on the 1.6B pool, 170k on 10.7B). Entries with count < t then hold at most about `share`
    (`tail_share(counts, t)` ≤ cum_i, ties at c_(i) being excluded)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    ordered = np.sort(np.asarray(counts, dtype=np.uint64))
    total = ordered.sum()
    if total == 0:
        raise ValueError("no matches: every entry count is 0")
    portion = np.cumsum(ordered) / total
    return int(ordered[np.abs(portion - share).argmin()])


def t_lang(counts_lang: np.ndarray, counts_en: np.ndarray, t_en: float, default_share: float = 0.06) -> float:
    """Meta CLIP 2's threshold for a non-English language: `max(1, p_to_t(counts_lang, t_to_p(counts_en, t_en)))`,
    where `t_to_p` is the share of English matches held by entries with count < t_en (`tail_share`) and `p_to_t`
    is `t_for_tail_share` (all the language's counts, zeros included). So every language keeps English's tail share.
    Guards (Meta CLIP 2 divides by t_lang, and `p_to_t` of a language without matches is undefined): a language
    with no match gets t = 1; English without a match gives no share, so `default_share` (the 6 % rule) stands in;
    t is never below 1. Always a finite float."""
    counts_lang = np.asarray(counts_lang, dtype=np.uint64)
    if counts_lang.sum() == 0:
        return 1.0
    en = np.asarray(counts_en, dtype=np.uint64)
    p = tail_share(en, t_en) if en.sum() else default_share
    return float(max(1, t_for_tail_share(counts_lang, p)))


def per_language_t(
    counts_by_lang: dict[str, np.ndarray], t_ref: float, ref: str = "en", default_share: float = 0.06
) -> dict[str, float]:
    """MetaCLIP 2's per-language thresholds: t = t_ref for `ref`, `t_lang(counts, counts[ref], t_ref)` for every
    other language, so each keeps `ref`'s tail share."""
    if ref not in counts_by_lang:
        raise ValueError(f"reference language {ref!r} has no counts (have: {sorted(counts_by_lang)})")
    en = counts_by_lang[ref]
    return {
        lang: (float(t_ref) if lang == ref else t_lang(c, en, t_ref, default_share))
        for lang, c in counts_by_lang.items()
    }
