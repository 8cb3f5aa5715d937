"""Counter-based randomness for the synthetic web: pure functions of (seed, id, salt); no state, no global RNG.

Every per-row and per-image decision is `uniform(seed, ids, salt)` or `hash64(...)` over whole numpy arrays, so a
row's fate does not depend on chunking or order, and the server recomputes an image's attributes from its id alone.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrap-around arithmetic is intended)."""
    z = (x + _GOLDEN).astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def hash64(seed: int, ids: np.ndarray | int, salt: int) -> np.ndarray:
    """uint64 hash per id: splitmix64(id ^ splitmix64(seed ^ splitmix64(salt))). `ids` are int64 >= 0."""
    key = splitmix64(np.array([seed], dtype=np.uint64) ^ splitmix64(np.array([salt], dtype=np.uint64)))
    return splitmix64(np.atleast_1d(np.asarray(ids, dtype=np.int64)).astype(np.uint64) ^ key)


def uniform(seed: int, ids: np.ndarray | int, salt: int) -> np.ndarray:
    """float64 in [0, 1) per id, from the top 53 bits of `hash64`."""
    return (hash64(seed, ids, salt) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def randint(seed: int, ids: np.ndarray | int, salt: int, n: int | np.ndarray) -> np.ndarray:
    """int64 in [0, n) per id (n may be an array broadcast against ids; n >= 1)."""
    return np.floor(uniform(seed, ids, salt) * n).astype(np.int64)
