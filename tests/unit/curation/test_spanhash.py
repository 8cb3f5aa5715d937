"""Substring hashes are position-independent; the vectorised hash table finds exactly what was stored."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.spanhash import BASES, HashTable, SpanHasher, code_units, same_units


def test_equal_substrings_hash_equal_wherever_they_sit():
    text = "xx dog yy dog\x00dogs \ud800 dog"
    units = code_units(text)
    assert len(units) == len(text)  # one unit per code point, lone surrogates included
    hasher = SpanHasher(BASES[0])
    prefix, inv = hasher.prefix(units)
    starts = np.array([i for i in range(len(text)) if text.startswith("dog", i)])
    hashes = hasher.spans(prefix, inv, starts, starts + 3)
    assert len(starts) == 4 and len(set(hashes.tolist())) == 1
    assert hasher.spans(prefix, inv, np.array([0, 5]), np.array([0, 5])).tolist() == [0, 0]  # empty span
    assert hasher.spans(prefix, inv, np.array([3]), np.array([7]))[0] != hashes[0]  # "dog " != "dog"
    with pytest.raises(ValueError, match="odd"):
        SpanHasher(2)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=8))
def test_span_hash_depends_only_on_the_substring(left, right, middle):
    hasher = SpanHasher(BASES[1])
    a, b = f"{left}{middle}{right}", f"{right}{middle}"
    pa_, ia = hasher.prefix(code_units(a))
    pb, ib = hasher.prefix(code_units(b))
    ha = hasher.spans(pa_, ia, np.array([len(left)]), np.array([len(left) + len(middle)]))
    hb = hasher.spans(pb, ib, np.array([len(right)]), np.array([len(right) + len(middle)]))
    assert ha[0] == hb[0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=200), st.lists(st.integers(0, 2**64 - 1), max_size=50)
)
def test_hash_table_returns_stored_values_and_zero_for_absent(keys, queries):
    stored = np.array(keys, dtype=np.uint64)
    table = HashTable(stored, np.arange(1, len(keys) + 1, dtype=np.int64), max_load=0.9)  # dense: long probes
    probe = np.array(keys + queries, dtype=np.uint64)
    expected = [keys.index(q) + 1 if q in keys else 0 for q in keys + queries]
    assert table.get(probe).tolist() == expected


def test_hash_table_rejects_bad_input():
    with pytest.raises(ValueError, match="duplicate"):
        HashTable(np.array([1, 1], dtype=np.uint64), np.array([1, 2]))
    with pytest.raises(ValueError, match="positive"):
        HashTable(np.array([1, 2], dtype=np.uint64), np.array([1, 0]))


def test_same_units():
    units = code_units("a dog, a cat")
    ref = code_units("dogcatcow")
    ok = same_units(units, np.array([2, 9, 2, 0]), ref, np.array([0, 3, 3, 0]), np.array([3, 3, 3, 0]))
    assert ok.tolist() == [True, True, False, True]
