"""Vectorised substring hashing and a uint64 hash table, in numpy — the engine under `curation.matching`. No Ray.

`SpanHasher` hashes any substring [s, e) of a string in O(1) after one O(n) prefix pass: with code units
a_i (UTF-32, plus one so that NUL counts), P[k] = Σ_{i<k} a_i·B^i and hash(s, e) = (P[e] − P[s])·B^(−s), all
mod 2^64 (B odd, hence invertible). Equal substrings always hash equal wherever they sit; unequal ones rarely do,
and callers that need exactness compare the characters of every hit (`same_units`).
"""

from __future__ import annotations

import numpy as np

# Odd 64-bit bases; a matcher takes the first under which its keys' hashes are all distinct.
BASES = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hashing spreads the weak low bits into the slot


def code_units(text: str) -> np.ndarray:
    """The UTF-32 code units of `text` as `uint32[len(text)]` (lone surrogates kept as they are)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _powers(base: int, n: int) -> np.ndarray:
    """`uint64[n]`: base^0 .. base^(n-1) mod 2^64."""
    out = np.full(n, base, dtype=np.uint64)
    if n:
        out[0] = 1
        np.cumprod(out, out=out)  # integer overflow wraps: arithmetic mod 2^64
    return out


class SpanHasher:
    """Polynomial substring hashes mod 2^64 with an odd `base`."""

    def __init__(self, base: int):
        if base % 2 == 0:
            raise ValueError(f"base must be odd, got {base:#x}")
        self.base = base
        self.inverse = pow(base, -1, 2**64)

    def prefix(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, inv), both `uint64[len(units) + 1]`: prefix sums of (a_i + 1)·B^i and inverse powers B^(−k)."""
        n = len(units)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((units.astype(np.uint64) + np.uint64(1)) * _powers(self.base, n), out=prefix[1:])
        return prefix, _powers(self.inverse, n + 1)

    @staticmethod
    def spans(prefix: np.ndarray, inv: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """`uint64[m]` hashes of the substrings [starts[i], ends[i]) (the empty substring hashes to 0)."""
        return (prefix[ends] - prefix[starts]) * inv[starts]


def same_units(
    units: np.ndarray, starts: np.ndarray, ref: np.ndarray, ref_starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """`bool[m]`: units[starts[i] : starts[i] + lengths[i]] == ref[ref_starts[i] : ... + lengths[i]], compared
    character by character in one vectorised pass."""
    total = int(lengths.sum())
    if total == 0:
        return np.ones(len(lengths), dtype=bool)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    differs = units[np.repeat(starts, lengths) + within] != ref[np.repeat(ref_starts, lengths) + within]
    return np.bincount(owner[differs], minlength=len(lengths)) == 0


class HashTable:
    """Open addressing with linear probing, `uint64` key -> non-zero `int64` value; lookups are vectorised.
    Capacity is the power of two >= `1 / max_load` keys; a slot holds key and value side by side (one cache
    line per probe). Insertion order decides ties, so the layout is deterministic."""

    def __init__(self, keys: np.ndarray, values: np.ndarray, max_load: float = 0.25):
        if len(np.unique(keys)) != len(keys):
            raise ValueError("duplicate keys")
        if np.any(values <= 0):
            raise ValueError("values must be positive (0 marks an empty slot)")
        bits = max(4, int(np.ceil(np.log2(max(len(keys) / max_load, 2)))))
        self._shift, self._mask = np.uint64(64 - bits), (1 << bits) - 1
        self.slots = np.zeros((1 << bits, 2), dtype=np.uint64)  # [key, value]; value 0 = empty
        slot = self._home(keys)
        pending = np.arange(len(keys))
        while pending.size:  # each round, the first pending key claiming a free slot takes it
            want = slot[pending]
            free = self.slots[want, 1] == 0
            taken, first = np.unique(want[free], return_index=True)
            winners = pending[free][first]
            self.slots[taken, 0], self.slots[taken, 1] = keys[winners], values[winners].astype(np.uint64)
            placed = np.zeros(len(keys), dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & self._mask

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _FIBONACCI) >> self._shift).astype(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """`int64[len(keys)]`: the value stored under each key, 0 where absent."""
        slot = self._home(keys)
        probe = self.slots[slot]
        hit = probe[:, 0] == keys
        out = np.where(hit, probe[:, 1], 0).astype(np.int64)
        todo = np.flatnonzero(~hit & (probe[:, 1] != 0))  # neither found nor at an empty slot: probe on
        while todo.size:
            slot[todo] = (slot[todo] + 1) & self._mask
            probe = self.slots[slot[todo]]
            hit = probe[:, 0] == keys[todo]
            out[todo[hit]] = probe[hit, 1].astype(np.int64)
            todo = todo[~hit & (probe[:, 1] != 0)]
        return out
