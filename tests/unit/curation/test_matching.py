"""EntryMatcher equals MetaCLIP's matchers (naive and Aho-Corasick) exactly, batched or not."""

import pickle

import ahocorasick
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.matching import EntryMatcher, match_reference, spaced_entries, spaced_join
from curation.text import spacing

ENTRIES = [
    "dog",  # 0
    "golden retriever",  # 1
    "golden",  # 2
    "retriever",  # 3
    "The",  # 4
    "hot dog",  # 5
    "dog-friendly",  # 6
    "a",  # 7
    "e.g.",  # 8
    "New York City",  # 9
    "New York",  # 10
    "York",  # 11
    "dog",  # 12: a duplicated entry keeps its own id
    "cat",  # 13
]


def metaclip_ahocorasick(entries):
    """MetaCLIP's substr_matching_ahocorasick.py, as released (values are (idx, key) tuples)."""
    automaton = ahocorasick.Automaton()
    for idx, key in enumerate(spaced_entries(entries)):
        automaton.add_word(key, (idx, key))
    automaton.make_automaton()

    def match(text):
        return sorted({entry_id for _end, (entry_id, _key) in automaton.iter(spacing(text))})

    return match


@pytest.fixture(scope="module")
def matcher():
    return EntryMatcher(ENTRIES)


@pytest.mark.parametrize(
    "text,ids",
    [
        ("A golden retriever.", [1, 2, 3]),  # overlapping: the bigram and both words
        ("The dog, the cat", [0, 4, 12, 13]),  # "," is a boundary; case-sensitive: "the" is not "The"
        ("the DOG", []),
        ("(dog) 'dog' dog's /dog/", []),  # ( ) ' / are not boundaries
        ("dog-friendly hotel", [6]),  # "-" is not a boundary either
        ("a hot dog in New York City!", [0, 5, 7, 9, 10, 11, 12]),
        ("e.g. a dog", [0, 7, 12]),  # spacing() splits "e.g." so the entry can never match
        ("dog\tdog\ndog", [0, 12]),  # one id per entry per text, tab/newline are spaces
        ("", []),
    ],
)
def test_literal_matches(matcher, text, ids):
    assert matcher.match_batch([text])[0].tolist() == ids
    assert match_reference(text, spaced_entries(ENTRIES)) == ids


def test_batch_shapes_types_and_nulls(matcher):
    texts = ["A golden retriever.", None, "nothing here", "The cat"]
    out = matcher.match_batch(texts)
    assert len(out) == 4 and all(a.dtype == np.int32 for a in out)
    assert [a.tolist() for a in out] == [[1, 2, 3], [], [], [4, 13]]
    arrow = matcher.match_arrow(pa.array(texts))
    assert arrow.type == pa.list_(pa.int32()) and arrow.to_pylist() == [[1, 2, 3], [], [], [4, 13]]
    offsets, ids = matcher.match_flat([])
    assert offsets.tolist() == [0] and ids.size == 0


def test_caption_containing_the_separator_falls_back_exactly(matcher):
    sep = matcher.separator
    texts = [f"dog{sep}cat", f"a {sep} cat", "The golden retriever"]
    expected = [match_reference(t, spaced_entries(ENTRIES)) for t in texts]
    assert [a.tolist() for a in matcher.match_batch(texts)] == expected


def test_spaced_join_equals_joining_spaced_texts():
    texts = ["a, b.", "", "x\ty", "?!"]
    assert spaced_join(texts, "\x00") == "\x00".join(spacing(t) for t in texts)


def test_pickle_round_trip(matcher):
    clone = pickle.loads(pickle.dumps(matcher))
    texts = ["a hot dog in New York City!", "The golden retriever"]
    assert [a.tolist() for a in clone.match_batch(texts)] == [a.tolist() for a in matcher.match_batch(texts)]


def test_entries_holding_every_separator_candidate_are_refused():
    with pytest.raises(ValueError, match="separator"):
        EntryMatcher(["\x00\x01\x02\x03\ufffe\uffff"])


# Small alphabets make collisions, overlaps, repeats and odd spacing common.
_ENTRY_CHARS = st.sampled_from(list("abAB -.,!`'()\t\x00"))
_TEXT_CHARS = st.sampled_from(list("abAB -.,;:?!`'()\t\n\r\x00"))
_entries = st.lists(st.text(_ENTRY_CHARS, max_size=6), min_size=1, max_size=25)
_texts = st.lists(st.none() | st.text(_TEXT_CHARS, max_size=30), max_size=12)


@settings(max_examples=300, deadline=None)
@given(_entries, _texts)
def test_matcher_equals_metaclip_reference(entries, texts):
    matcher = EntryMatcher(entries)
    spaced = spaced_entries(entries)
    got = [a.tolist() for a in matcher.match_batch(texts)]
    assert got == [[] if t is None else match_reference(t, spaced) for t in texts]


@settings(max_examples=150, deadline=None)
@given(_entries.map(lambda es: list(dict.fromkeys(es))), _texts)
def test_matcher_equals_metaclip_ahocorasick(entries, texts):
    """Against MetaCLIP's released Aho-Corasick matcher (valid for lists without repeats: its automaton keeps
    only the last id of a repeated key)."""
    reference = metaclip_ahocorasick(entries)
    got = [a.tolist() for a in EntryMatcher(entries).match_batch(texts)]
    assert got == [[] if t is None else reference(t) for t in texts]


@settings(max_examples=100, deadline=None)
@given(_entries, _texts, st.integers(0, 12))
def test_batching_does_not_change_matches(entries, texts, cut):
    matcher = EntryMatcher(entries)
    whole = [a.tolist() for a in matcher.match_batch(texts)]
    parts = [a.tolist() for a in matcher.match_batch(texts[:cut])] + [
        a.tolist() for a in matcher.match_batch(texts[cut:])
    ]
    assert whole == parts == [matcher.match_batch([t])[0].tolist() for t in texts]
