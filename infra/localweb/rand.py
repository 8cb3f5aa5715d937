"""Counter-based randomness for the synthetic web: pure functions of (seed, id, salt); no state, no global RNG.

Every per-row and per-image decision is `uniform(seed, ids, salt)` or `hash64(...)` over whole numpy arrays, so a
row's fate does not depend on chunking or order, and the server recomputes an image's attributes from its id alone.
Built on `curation.hashing` (splitmix64, hash uniforms); the synthetic web is pinned bit for bit by its tests.
"""

from __future__ import annotations

import numpy as np

from curation.hashing import hash_uniforms, splitmix64


def hash64(seed: int, ids: np.ndarray | int, salt: int) -> np.ndarray:
    """uint64 hash per id: splitmix64(id ^ splitmix64(seed ^ splitmix64(salt))). `ids` are int64 >= 0."""
    key = splitmix64(np.array([seed], dtype=np.uint64) ^ splitmix64(np.array([salt], dtype=np.uint64)))
    return splitmix64(np.atleast_1d(np.asarray(ids, dtype=np.int64)).astype(np.uint64) ^ key)


def uniform(seed: int, ids: np.ndarray | int, salt: int) -> np.ndarray:
    """float64 in [0, 1) per id, from the top 53 bits of `hash64`."""
    return hash_uniforms(hash64(seed, ids, salt))


def randint(seed: int, ids: np.ndarray | int, salt: int, n: int | np.ndarray) -> np.ndarray:
    """int64 in [0, n) per id (n may be an array broadcast against ids; n >= 1)."""
    return np.floor(uniform(seed, ids, salt) * n).astype(np.int64)
