"""Meta CLIP 2's per-language threshold t_lang = max(1, p_to_t(counts_lang, t_to_p(counts_en, t_en)))."""

import math

import numpy as np
import pytest

from curation.balancing import entry_probs, keep_prob, per_language_t, sample_keep, t_lang


def _t_to_p(counts_en, t_en):
    """Meta CLIP 2 `t_to_p`: share of English matches held by entries with count < t_en."""
    return sum(int(c) for c in counts_en if c < t_en) / sum(int(c) for c in counts_en)


def _p_to_t(counts, p):
    """Meta CLIP 2 `p_to_t`: sorted counts, cumulative share, the count where the share is closest to p."""
    ordered = sorted(int(c) for c in counts)
    total, running, best_i, best_gap = sum(ordered), 0, 0, math.inf
    for i, c in enumerate(ordered):
        running += c
        if abs(running / total - p) < best_gap:
            best_i, best_gap = i, abs(running / total - p)
    return ordered[best_i]


def _zipf_counts(rng, n_entries, n_matches, a):
    ids = (rng.zipf(a, size=n_matches) - 1) % n_entries
    return np.bincount(ids, minlength=n_entries).astype(np.uint64)


@pytest.mark.parametrize("seed", range(5))
def test_t_lang_equals_the_formula_on_zipf_counts(seed):
    rng = np.random.default_rng(seed)
    en = _zipf_counts(rng, 3000, 200_000, 1.2)
    t_en = float(rng.integers(5, 500))
    p = _t_to_p(en, t_en)
    for n_entries, n_matches, a in ((2000, 50_000, 1.3), (500, 3000, 1.6), (4000, 900, 1.1)):
        counts = _zipf_counts(rng, n_entries, n_matches, a)
        assert t_lang(counts, en, t_en) == max(1, _p_to_t(counts, p))
    assert 0 < p < 1


def test_single_match_and_no_match_languages_are_finite():
    en = np.array([1, 1, 2, 6, 90], dtype=np.uint64)  # tail share at t=6: 0.04
    single = np.array([0, 0, 1, 0], dtype=np.uint64)
    none = np.zeros(7, dtype=np.uint64)
    assert _p_to_t(single, 0.04) == 0  # the raw rule gives t = 0: Meta CLIP 2 would divide 0 / 0
    assert t_lang(single, en, 6) == 1.0
    assert t_lang(none, en, 6) == 1.0
    assert t_lang(single, np.zeros(5, dtype=np.uint64), 6) == 1.0  # English without a match: default share
    for counts in (single, none):
        probs = entry_probs(counts, t_lang(counts, en, 6))
        assert np.isfinite(probs).all() and (probs == 1.0).all()


def test_english_without_matches_uses_the_default_share():
    counts = np.array([1, 1, 2, 6, 90], dtype=np.uint64)  # cumulative .01 .02 .04 .10 1.0
    zero_en = np.zeros(3, dtype=np.uint64)
    assert t_lang(counts, zero_en, 100, default_share=0.06) == 2.0
    assert t_lang(counts, zero_en, 100, default_share=0.5) == 6.0  # |.10 - .5| < |1.0 - .5|


def test_per_language_t_and_keep_in_own_language():
    en = np.array([1, 1, 2, 6, 90], dtype=np.uint64)
    de = np.array([3, 3, 4, 40, 50], dtype=np.uint64)  # cumulative .03 .06 .10 .50 1.0; p = .04 -> t = 3
    ts = per_language_t({"en": en, "de": de, "ja": np.zeros(2, np.uint64)}, t_ref=6)
    assert ts == {"en": 6.0, "de": 3.0, "ja": 1.0}
    probs = entry_probs(de, ts["de"])  # min(1, 3 / c)
    assert probs.tolist() == pytest.approx([1.0, 1.0, 0.75, 0.075, 0.06])
    row = np.array([3, 4])
    assert keep_prob(row, probs) == pytest.approx(1 - (1 - 0.075) * (1 - 0.06))
    n = 20_000
    kept = sample_keep([f"u{i}" for i in range(n)], [row] * n, probs, seed=7).mean()
    assert abs(kept - keep_prob(row, probs)) < 4 * math.sqrt(0.13 * 0.87 / n)
