"""Counter-based hashing, the one home of splitmix64, uid → uint64 and hash uniforms. Pure numpy: no project
imports, no I/O, no RNG state — every value is a function of its inputs alone.

The build's balance draws, training's online balance, shard and dedup buckets and the synthetic web all compose
these three primitives, so a change here changes every one of them (their unit tests pin literal values).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

MASK64 = (1 << 64) - 1
"""Python-int mask to bring a (possibly negative) seed into uint64 range."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_UNIT = 1.0 / (1 << 53)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser elementwise: `uint64` array of x's shape (a bijection of 64-bit words).

    `x` is cast to uint64 (an int64 array wraps, -1 → 2^64 − 1) and never modified; arithmetic wraps mod 2^64
    by design. splitmix64(0) = 0xE220A8397B1DCDAF."""
    z = np.array(x, dtype=np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += _GOLDEN
        z ^= z >> np.uint64(30)
        z *= _MIX1
        z ^= z >> np.uint64(27)
        z *= _MIX2
        z ^= z >> np.uint64(31)
    return z


def uid_to_u64(uids: Sequence[str] | np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`uint64[n]`: BLAKE2b with an 8-byte digest of each uid's UTF-8 bytes, read as a little-endian integer.

    Works for any string (hex sha224 uids and plain sample keys alike); the same uid gives the same word in the
    build (balance draws, shard buckets) and in training (online balance, epoch order, the `uid64` column)."""
    rows = uids.to_pylist() if isinstance(uids, pa.Array | pa.ChunkedArray) else uids
    blob = b"".join(hashlib.blake2b(str(u).encode("utf-8"), digest_size=8).digest() for u in rows)
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64)


def hash_uniforms(bits: np.ndarray) -> np.ndarray:
    """U[0, 1) from hash words: `float64` of bits's shape, the top 53 bits (`bits >> 11`) scaled by 2^-53.

    Exact (every value is a multiple of 2^-53, never 1.0); `bits` should already be mixed, e.g. by splitmix64."""
    return (np.asarray(bits, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * _UNIT
