"""MetaCLIP substring matching of captions against a metadata list, batched. Pure: no Ray, no module state.

Semantics are exactly MetaCLIP's: every entry is padded to `f" {e} "`, the text goes through `spacing()`, and an
entry matches where its padded form is a substring — case-sensitive, whole-token (spaces and the seven wrapped
marks are the only boundaries), overlapping ("golden retriever" also yields "golden" and "retriever"), each id
at most once per text. `match_reference` is MetaCLIP's naive loop, kept as the definition for tests.

`rule="metaclip2"` is Meta CLIP 2's spaced-metadata rule for worldwide lists (`get_spaced_metadata`): an entry gets
the leading space only if its first character is not CJK/Thai/Lao/Burmese/Khmer/Tibetan/punctuation
(`curation.charclass`), the trailing one only if its last character is not; texts go through the same `spacing()`.
So "猫" matches inside "黑猫警长", while "Katze" still needs spaces (or a no-space character) around it.

How `EntryMatcher` finds the same matches faster. Let T = spacing(text) and toks = T.split(" ") (T starts and
ends with a space, so toks[0] == toks[-1] == ""). Then `f" {e} " in T` holds exactly when
e == " ".join(toks[i:j]) for some 1 <= i < j <= len(toks) - 1: the padded entry starts and ends on a space of T,
so e covers whole space-separated tokens (empty tokens included, which is how entries with leading, trailing or
double spaces behave). So matching is a lookup of token runs in a table of
every entry and every proper token prefix of a multi-word entry; a run is extended only while it is such a
prefix. Under `metaclip2` the same holds with finer cuts: the spaced entry occurs at T[p:q] exactly when T[p:q]
is the entry, p is a *start point* (T[p-1] is a space or T[p] a no-space character) and q an *end point* (T[q] is a
space or T[q-1] a no-space character) — the pads an entry lacks are those its own edge characters make unnecessary.
Which positions inside a match are end points depends only on the entry's characters, so runs go from a start
point over successive end points, and the table holds each entry's prefixes at its inner end points.

A whole batch is one string — spaced texts joined by a separator token no entry contains — and every step is a
numpy pass over all cut points of the batch: substring hashes (`curation.spanhash`), one vectorised hash table
probe per run length, and a character-by-character check of every hit, so hash collisions can never produce a
match. No per-token or per-match Python objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pyarrow as pa

from curation.charclass import NO_SPACE_CHARS, no_space_mask, no_space_table, spaced_entry_metaclip2
from curation.spanhash import BASES, HashTable, SpanHasher, code_units, same_units
from curation.text import TextBatch, as_pylist, spacing

# Separator candidates for joining a batch: characters no real entry contains (checked at build time).
_SEPARATORS = ("\x00", "\x01", "\x02", "\x03", "\ufffe", "\uffff")
_ROW_SHIFT = 31  # (row << 31) | id packs a (row, entry id) pair into one int64 for sorting
_SPACE = ord(" ")
Rule = Literal["metaclip", "metaclip2"]
RULES: tuple[str, ...] = ("metaclip", "metaclip2")


def spaced_entries(entries: Sequence[str], rule: Rule = "metaclip") -> list[str]:
    """MetaCLIP v1: `spaced_metadata = [f" {e} " for e in metadata]`; `metaclip2`: Meta CLIP 2's
    `get_spaced_metadata` (`curation.charclass.spaced_entry_metaclip2`; an empty entry has no spaced form there)."""
    if rule == "metaclip":
        return [f" {e} " for e in entries]
    _check_rule(rule)
    for i, e in enumerate(entries):
        if not e:
            raise ValueError(f"entry {i} is empty: Meta CLIP 2's spaced-metadata rule has no form for it")
    return [spaced_entry_metaclip2(e) for e in entries]


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown matching rule {rule!r}; expected one of {list(RULES)}")


def spaced_join(texts: Sequence[str], sep: str) -> str:
    """`sep.join(spacing(t) for t in texts)`, computed as one `spacing()` pass over the whole batch: the
    replacements are per character and `sep` is not among them, so spacing the concatenation spaces each part."""
    return spacing(f" {sep} ".join(texts)) if texts else ""


def match_reference(text: str, spaced: Sequence[str]) -> list[int]:
    """MetaCLIP's naive matcher, verbatim: `[i for i, e in enumerate(spaced_metadata) if e in spacing(text)]`.
    O(len(spaced)) per text; for tests and as the definition."""
    t = spacing(text)
    return [i for i, e in enumerate(spaced) if e in t]


def _space_cuts(key: str) -> list[int]:
    """MetaCLIP: a key's inner token ends are its spaces (`key[:j]` for every space j, j = 0 included)."""
    return [j for j, c in enumerate(key) if c == " "]


def _metaclip2_cuts(key: str) -> list[int]:
    """Meta CLIP 2: a key's inner end points, j in [1, len) with key[j] a space or key[j-1] a no-space character."""
    after = [m.end() for m in NO_SPACE_CHARS.finditer(key, 0, len(key) - 1)]
    if " " not in key:
        return after
    return sorted(set(after).union(j for j, c in enumerate(key) if c == " " and j > 0))


def _table_codes(keys: list[str], cuts: Callable[[str], list[int]]) -> dict[str, int]:
    """Code of every table string: `(g + 1) << 1 | extends` for distinct entry g, `1` for a string that is only
    a proper prefix at an inner cut ("golden" for "golden retriever" when "golden" is no entry). `extends` = it is
    such a prefix of some entry."""
    codes: dict[str, int] = {}
    for g, key in enumerate(keys):
        for j in cuts(key):
            prefix = key[:j]
            codes[prefix] = codes.get(prefix, 0) | 1
        codes[key] = (g + 1) << 1 | (codes.get(key, 0) & 1)
    return codes


def _csr_lengths(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


class EntryMatcher:
    """Matches batches of captions against `entries` (entry id = list index). Build once per process/actor.

    Pickles with its built tables (numpy arrays: unpickling is faster than rebuilding, see
    benchmarks/bench_text.py), so a Ray actor that receives a matcher never rebuilds it per batch."""

    def __init__(self, entries: Sequence[str], rule: Rule = "metaclip"):
        self.entries = list(entries)
        self.rule = rule
        spaced_entries(self.entries[:0] if rule == "metaclip" else self.entries, rule)  # checks rule and entries
        cuts = _space_cuts if rule == "metaclip" else _metaclip2_cuts
        self._no_space = no_space_table() if rule == "metaclip2" else None
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(self.entries):
            groups.setdefault(e, []).append(i)
        keys = list(groups)  # distinct entries; an entry the list repeats keeps every one of its ids
        self._key_offsets = _csr_lengths(np.fromiter(map(len, groups.values()), np.int64, len(groups)))
        self._key_ids = np.fromiter((i for ids in groups.values() for i in ids), np.int64, len(self.entries))
        self._has_duplicates = len(keys) != len(self.entries)
        self._max_tokens = max((len(cuts(k)) + 1 for k in keys), default=1)
        self.separator = next((s for s in _SEPARATORS if not any(s in k for k in keys)), None)
        if self.separator is None:
            raise ValueError("every separator candidate occurs in some entry; cannot batch")
        self._key_units = code_units("".join(keys))  # for the character check of hits
        self._key_starts = _csr_lengths(np.fromiter(map(len, keys), np.int64, len(keys)))
        self._build_table(_table_codes(keys, cuts))

    def _build_table(self, codes: dict[str, int]) -> None:
        strings = list(codes)
        units = code_units("".join(strings))
        bounds = _csr_lengths(np.fromiter(map(len, strings), np.int64, len(strings)))
        values = np.fromiter(codes.values(), np.int64, len(codes))
        for base in BASES:  # the first base under which no two table strings share a hash
            hasher = SpanHasher(base)
            hashes = hasher.spans(*hasher.prefix(units), bounds[:-1], bounds[1:])
            if len(np.unique(hashes)) == len(hashes):
                self._hasher, self._table = hasher, HashTable(hashes, values)
                return
        raise ValueError("no hash base separates these entries")  # never seen; 4 independent 64-bit bases

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_no_space"] = None if self._no_space is None else True  # the 1 MiB class table is rebuilt on load
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._no_space is not None:
            self._no_space = no_space_table()

    @property
    def n_entries(self) -> int:
        return len(self.entries)

    def match_flat(self, texts: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """Matches of a batch as CSR: (offsets int64[n+1], ids int32[total]); row i's ids are
        ids[offsets[i]:offsets[i+1]], ascending and unique. A null text matches nothing; an empty one goes
        through `spacing()` like any other (it can only match an empty entry)."""
        rows = as_pylist(texts)
        present = [t for t in rows if t is not None]
        joined = spaced_join(present, self.separator)
        if joined.count(self.separator) == max(len(present) - 1, 0):
            packed = self._packed(joined, batched=True)
        else:  # some caption contains the separator character: match one text at a time
            parts = [self._packed(spacing(t), batched=False) + (i << _ROW_SHIFT) for i, t in enumerate(present)]
            packed = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        offsets, ids = _csr(packed, len(present))
        if len(present) == len(rows):
            return offsets, ids
        counts = np.zeros(len(rows), dtype=np.int64)  # spread the non-null rows back over the whole batch
        counts[[i for i, t in enumerate(rows) if t is not None]] = np.diff(offsets)
        full = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=full[1:])
        return full, ids

    def match_batch(self, texts: TextBatch) -> list[np.ndarray]:
        """Per text, the ascending unique int32 ids of the entries it matches (an empty array when none)."""
        offsets, ids = self.match_flat(texts)
        return np.split(ids, offsets[1:-1]) if len(offsets) > 1 else []

    def match_arrow(self, texts: TextBatch) -> pa.ListArray:
        """`match_flat` as an Arrow `list<int32>` array (one list per text; an empty list when none)."""
        offsets, ids = self.match_flat(texts)
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(ids, type=pa.int32()))

    def _packed(self, joined: str, batched: bool) -> np.ndarray:
        """Sorted unique `(row << 31) | entry id` of every match in `joined`, a spaced text or a spaced batch
        (rows counted at separator characters when `batched`, else all row 0)."""
        if not joined:
            return np.zeros(0, dtype=np.int64)
        units = code_units(joined)
        prefix, inv = self._hasher.prefix(units)
        starts, ends, first = self._cut_points(units)
        n_ends = len(ends)
        codes = self._table.get(self._hasher.spans(prefix, inv, starts, ends[first]))
        hit = np.flatnonzero(codes >= 2)
        hit_s, hit_e, hit_codes = [starts[hit]], [ends[first[hit]]], [codes[hit]]
        runs = np.flatnonzero(codes & 1)
        for k in range(1, self._max_tokens):  # extend runs by one cut while they are entry prefixes
            runs = runs[first[runs] + k < n_ends]
            if not runs.size:
                break
            c = self._table.get(self._hasher.spans(prefix, inv, starts[runs], ends[first[runs] + k]))
            h = runs[c >= 2]
            hit_s.append(starts[h])
            hit_e.append(ends[first[h] + k])
            hit_codes.append(c[c >= 2])
            runs = runs[(c & 1) == 1]
        s, e = np.concatenate(hit_s), np.concatenate(hit_e)
        keys = (np.concatenate(hit_codes) >> 1) - 1
        ok = self._verify(units, s, e, keys)
        if batched:  # a separator only ever occurs as a joining token here (checked by the caller)
            row = np.searchsorted(np.flatnonzero(units == ord(self.separator)), s[ok])
        else:
            row = np.zeros(int(ok.sum()), dtype=np.int64)
        return self._pack_ids(row.astype(np.int64), keys[ok])

    def _cut_points(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts, ends, first): where a match may start, where it may end (ascending), and per start the index
        in `ends` of the first end a run from it reaches. MetaCLIP: the tokens of `joined.split(" ")` but the
        first and last (always empty), each its own run start and first end. Meta CLIP 2: the start and end points
        of the module docstring, a run from p reaching the ends > p."""
        spaces = np.flatnonzero(units == _SPACE)
        if self._no_space is None:
            starts, ends = spaces[:-1] + 1, spaces[1:]  # token t = units[starts[t]:ends[t]]
            return starts, ends, np.arange(len(starts))
        n = len(units)
        no_space = no_space_mask(units, self._no_space)
        space = units == _SPACE
        is_start = no_space.copy()
        is_start[1:] |= space[:-1]
        is_end = np.zeros(n + 1, dtype=bool)
        is_end[:n] = space
        is_end[1:] |= no_space
        starts, ends = np.flatnonzero(is_start), np.flatnonzero(is_end)
        first = np.cumsum(is_end, dtype=np.int64)[starts]  # ends at positions <= p: the first end > p
        keep = first < len(ends)
        return starts[keep], ends, first[keep]

    def _verify(self, units: np.ndarray, s: np.ndarray, e: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """`bool[m]`: the text span [s, e) is, character for character, distinct entry `keys` (a hash match
        is only a candidate)."""
        key_start = self._key_starts[keys]
        ok = (e - s) == (self._key_starts[keys + 1] - key_start)
        idx = np.flatnonzero(ok)
        ok[idx] = same_units(units, s[idx], self._key_units, key_start[idx], (e - s)[idx])
        return ok

    def _pack_ids(self, rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """(row, distinct-entry index) pairs -> sorted unique `(row << 31) | entry id`, expanding an entry the
        list repeats into all its ids. MetaCLIP: `matched_entry_ids = set()` per text."""
        if self._has_duplicates:
            counts = self._key_offsets[keys + 1] - self._key_offsets[keys]
            first = np.repeat(self._key_offsets[keys], counts)
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            rows, keys = np.repeat(rows, counts), self._key_ids[first + within]
        packed = np.sort((rows << _ROW_SHIFT) | keys)
        if packed.size > 1:
            packed = packed[np.concatenate(([True], packed[1:] != packed[:-1]))]
        return packed


def _csr(packed: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique `(row << 31) | id` -> (offsets int64[n_rows + 1], ids int32)."""
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(packed >> _ROW_SHIFT, minlength=n_rows), out=offsets[1:])
    return offsets, (packed & ((1 << _ROW_SHIFT) - 1)).astype(np.int32)
