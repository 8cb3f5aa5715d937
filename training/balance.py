"""Online MetaCLIP balancing and per-epoch sample order as pure functions of (seed, epoch, uid).

Pure numpy: no Ray, no torch, no I/O, no RNG state. The same sample gets the same draw no matter which
worker reads it, in which block, in which order — so an epoch's kept set is a property of the data, not of
the cluster that trains on it.
"""

from __future__ import annotations

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrap-around arithmetic is the point)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def uid_to_u64(uids: list[str] | np.ndarray) -> np.ndarray:
    """uint64 per uid: the first 16 hex digits of a hex uid (sha224 prefix), else a hash of its UTF-8 bytes.

    Non-hex uids (e.g. a plain sample key) are folded with splitmix64 over 8-byte chunks, so any string works.
    """
    out = np.empty(len(uids), dtype=np.uint64)
    for i, uid in enumerate(uids):
        uid = str(uid)
        try:
            out[i] = int(uid[:16], 16) if len(uid) >= 16 else _fold(uid)
        except ValueError:
            out[i] = _fold(uid)
    return out


def _fold(text: str) -> np.uint64:
    data = text.encode("utf-8")
    h = np.array([len(data)], dtype=np.uint64)
    for start in range(0, len(data), 8):
        chunk = np.uint64(int.from_bytes(data[start : start + 8], "little"))
        h = _splitmix64(h ^ chunk)
    return h[0]


def hash_uniform(seed: int, epoch: int, uid64: np.ndarray) -> np.ndarray:
    """U[0, 1) float64 per uid for (seed, epoch): splitmix64(uid ^ splitmix64(seed ^ splitmix64(epoch)))."""
    key = _splitmix64(np.array([seed], dtype=np.uint64) ^ _splitmix64(np.array([epoch], dtype=np.uint64)))
    h = _splitmix64(np.asarray(uid64, dtype=np.uint64) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def online_keep(uid64: np.ndarray, keep_prob: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """bool mask: keep a sample in `epoch` iff u(seed, epoch, uid) < keep_prob (MetaCLIP online balancing).

    `keep_prob` is the sidecar's per-sample P(keep) = 1 - prod_e(1 - min(1, t / count_e)); a null/NaN
    probability keeps the sample (no metadata match information means no reason to drop it).
    """
    prob = np.asarray(keep_prob, dtype=np.float64)
    prob = np.where(np.isnan(prob), 1.0, prob)
    return hash_uniform(seed, epoch, uid64) < prob


def epoch_order(uid64: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Permutation (int64 indices) that sorts samples by a per-epoch hash: a shuffle that ignores arrival order.

    Uses a different stream from `online_keep` (seed ^ 0x5EED) so the kept set and the order are independent.
    """
    return np.argsort(hash_uniform(seed ^ 0x5EED, epoch, uid64), kind="stable")
