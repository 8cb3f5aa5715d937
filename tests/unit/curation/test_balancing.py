"""MetaCLIP balancing: counts, probabilities, hash-seeded sampling (batch/order invariant), the 6 % tail rule."""

import hashlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.balancing import (
    entry_counts,
    entry_probs,
    expected_kept,
    flatten_id_lists,
    keep_prob,
    pair_uniforms,
    per_language_t,
    sample_keep,
    t_for_tail_share,
    tail_share,
)
from curation.hashing import uid_to_u64

ROWS = [np.array([0, 2]), np.array([], dtype=np.int32), np.array([1]), np.array([2, 3])]


def test_flatten_list_and_arrow_forms_agree():
    offsets, values = flatten_id_lists(ROWS)
    assert offsets.tolist() == [0, 2, 2, 3, 5] and values.tolist() == [0, 2, 1, 2, 3]
    arrow = pa.array([[9], [0, 2], None, [1], [2, 3]], pa.list_(pa.int32())).slice(1)  # sliced, with a null
    o2, v2 = flatten_id_lists(arrow)
    assert o2.tolist() == offsets.tolist() and v2.tolist() == values.tolist()
    chunked = pa.chunked_array([arrow.slice(0, 2), arrow.slice(2)])
    assert flatten_id_lists(chunked)[1].tolist() == values.tolist()


def test_entry_counts():
    counts = entry_counts(ROWS, 5)
    assert counts.dtype == np.uint64 and counts.tolist() == [1, 1, 2, 1, 0]
    halves = entry_counts(ROWS[:2], 5) + entry_counts(ROWS[2:], 5)
    assert halves.tolist() == counts.tolist()
    with pytest.raises(ValueError, match="entry id 3 is outside"):
        entry_counts(ROWS, 3)


def test_entry_probs_is_min_one_t_over_count():
    p = entry_probs(np.array([0, 5, 10, 20, 40], dtype=np.uint64), 10)
    assert p.dtype == np.float64 and p.tolist() == [1.0, 1.0, 1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="t must be positive"):
        entry_probs(np.array([1]), 0)


def test_keep_prob_closed_form():
    probs = np.array([0.5, 0.5, 0.2, 1.0])
    assert keep_prob(np.array([0, 1]), probs) == pytest.approx(0.75)
    assert keep_prob(np.array([], dtype=np.int64), probs) == 0.0
    batch = keep_prob([np.array([0, 1]), np.array([], dtype=np.int64), np.array([2]), np.array([2, 3])], probs)
    assert batch.tolist() == pytest.approx([0.75, 0.0, 0.2, 1.0])
    assert expected_kept(ROWS, probs) == pytest.approx(1 - 0.5 * 0.8 + 0.5 + 1.0)


# Literal draws recorded from the code before hashing moved to `curation.hashing`: a build's kept set must not move.
PINNED_IDS = [np.array([0]), np.array([1, 2]), np.array([2]), np.array([], dtype=np.int64), np.array([0, 1, 2])]
PINNED_IDS += [np.array([1]), np.array([2, 0]), np.array([1])]


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def test_pair_uniforms_and_sample_keep_are_pinned():
    uid64 = np.array([0, 1, 2**63, 12345678901234567], np.uint64)
    assert pair_uniforms(7, uid64, np.array([0, 5, 9, 123])).tolist() == [
        0.609394524568175,
        0.9370198053568523,
        0.24396757222457355,
        0.57610434144288,
    ]
    assert pair_uniforms(-3, uid64[:2], np.array([0, 1])).tolist() == [0.5570122015098184, 0.20294135773437705]
    uids, probs = [f"u{i}" for i in range(8)], np.array([0.5, 0.25, 0.75])
    assert sample_keep(uids, PINNED_IDS, probs, 0).astype(int).tolist() == [1, 1, 1, 0, 1, 1, 1, 0]
    assert sample_keep(uids, PINNED_IDS, probs, 42).astype(int).tolist() == [0, 1, 1, 0, 1, 0, 1, 1]
    assert sample_keep(uids, PINNED_IDS, probs, 2**40).astype(int).tolist() == [1, 1, 1, 0, 1, 0, 1, 1]


def test_sample_keep_on_2000_rows_is_pinned():
    uids = [f"uid-{i}" for i in range(2000)]
    rng = np.random.default_rng(0)
    rows = [rng.choice(50, size=rng.integers(0, 4), replace=False) for _ in range(2000)]
    keep = sample_keep(uids, rows, np.linspace(0.02, 1.0, 50), 17)
    assert int(keep.sum()) == 1085 and _digest(keep) == "46156eabe9648fc6"
    assert _digest(pair_uniforms(5, uid_to_u64(uids), np.arange(2000) % 31)) == "6a214c8b2b0557ab"


def test_uniforms_are_in_unit_interval_and_pure():
    u = pair_uniforms(7, np.arange(1000, dtype=np.uint64), np.arange(1000) % 13)
    assert u.min() >= 0.0 and u.max() < 1.0 and 0.45 < u.mean() < 0.55
    assert np.array_equal(u, pair_uniforms(7, np.arange(1000, dtype=np.uint64), np.arange(1000) % 13))
    assert not np.array_equal(u, pair_uniforms(8, np.arange(1000, dtype=np.uint64), np.arange(1000) % 13))


_rows = st.lists(st.lists(st.integers(0, 19), max_size=5, unique=True), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(_rows, st.integers(0, 2**64 - 1), st.randoms(use_true_random=False), st.integers(0, 4))
def test_sampling_is_invariant_to_batch_splits_and_order(rows, seed, rnd, n_cuts):
    ids = [np.array(r, dtype=np.int64) for r in rows]
    uids = [f"uid-{i}" for i in range(len(rows))]
    probs = np.linspace(0.05, 1.0, 20)
    whole = sample_keep(uids, ids, probs, seed)
    order = list(range(len(rows)))
    rnd.shuffle(order)
    cuts = sorted(rnd.randint(0, len(rows)) for _ in range(n_cuts))
    got = {}
    for lo, hi in zip([0, *cuts], [*cuts, len(rows)], strict=False):
        part = order[lo:hi]
        arrow = pa.array([rows[i] for i in part], pa.list_(pa.int32()))  # any id_lists form
        for i, kept in zip(part, sample_keep([uids[i] for i in part], arrow, probs, seed), strict=False):
            got[i] = kept
    assert [got[i] for i in range(len(rows))] == whole.tolist()


@settings(max_examples=60, deadline=None)
@given(_rows, st.integers(0, 2**32))
def test_rows_with_a_tail_entry_are_always_kept(rows, seed):
    ids = [np.array(r, dtype=np.int64) for r in rows]
    counts = np.arange(20, dtype=np.uint64) * 3  # entries 0..6 have count < t = 20
    probs = entry_probs(counts, 20)
    keep = sample_keep([str(i) for i in range(len(rows))], ids, probs, seed)
    for r, kept in zip(rows, keep, strict=False):
        if any(counts[e] < 20 for e in r):
            assert kept
        if not r:
            assert not kept


def test_kept_count_within_4_sigma_of_expected_on_100k_rows():
    rng = np.random.default_rng(0)
    n_entries, n_rows = 5000, 100_000
    lengths = rng.integers(1, 8, size=n_rows)
    values = (rng.zipf(1.3, size=lengths.sum()) - 1) % n_entries  # Zipf-like entry popularity
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    ids = [np.unique(values[offsets[i] : offsets[i + 1]]) for i in range(n_rows)]
    counts = entry_counts(ids, n_entries)
    t = t_for_tail_share(counts, 0.06)
    probs = entry_probs(counts, t)
    p_row = keep_prob(ids, probs)
    mean, sigma = p_row.sum(), np.sqrt(np.sum(p_row * (1 - p_row)))
    assert mean == pytest.approx(expected_kept(ids, probs))
    assert 1000 < mean < 0.9 * n_rows  # balancing actually bites on this fixture
    kept = sample_keep([f"{i:024x}" for i in range(n_rows)], ids, probs, seed=1234).sum()
    assert abs(kept - mean) < 4 * sigma, (kept, mean, sigma)


def test_single_row_keep_frequency_matches_closed_form():
    probs = np.array([0.3, 0.2, 0.9])
    row = np.array([0, 1])
    n = 20_000
    kept = sample_keep([f"u{i}" for i in range(n)], [row] * n, probs, seed=5).mean()
    p = keep_prob(row, probs)  # 1 - 0.7 * 0.8 = 0.44
    assert abs(kept - p) < 4 * np.sqrt(p * (1 - p) / n)


def _p_to_t_brute_force(counts, share):
    ordered = sorted(int(c) for c in counts)
    total = sum(ordered)
    best_i, best = 0, None
    for i in range(len(ordered)):
        gap = abs(sum(ordered[: i + 1]) / total - share)
        if best is None or gap < best:
            best_i, best = i, gap
    return ordered[best_i]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=60).filter(any), st.floats(0.0, 1.0))
def test_t_for_tail_share_matches_brute_force(counts, share):
    arr = np.array(counts, dtype=np.uint64)
    t = t_for_tail_share(arr, share)
    assert t == _p_to_t_brute_force(counts, share)
    assert tail_share(arr, t) <= sum(c for c in counts if c <= t) / sum(counts)


def test_t_for_tail_share_literal_and_errors():
    counts = np.array([1, 1, 2, 6, 90], dtype=np.uint64)  # cumulative shares .01 .02 .04 .10 1.0
    assert t_for_tail_share(counts, 0.06) == 2  # |.04 - .06| < |.10 - .06|
    assert tail_share(counts, 2) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="no matches"):
        t_for_tail_share(np.zeros(3, dtype=np.uint64))


def test_per_language_t_keeps_the_reference_tail_share():
    en = np.array([1, 1, 2, 6, 90], dtype=np.uint64)
    fr = np.array([1, 2, 3, 4, 40, 50], dtype=np.uint64)
    ts = per_language_t({"en": en, "fr": fr}, t_ref=6)
    p = tail_share(en, 6)  # 0.04
    assert ts == {"en": 6, "fr": t_for_tail_share(fr, p)}
    with pytest.raises(ValueError, match="reference language 'en'"):
        per_language_t({"fr": fr}, t_ref=6)
