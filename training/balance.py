"""Online MetaCLIP balancing and per-epoch sample order as pure functions of (seed, epoch, uid64).

Pure numpy: no Ray, no torch, no I/O, no RNG state. The same sample gets the same draw no matter which
worker reads it, in which block, in which order — so an epoch's kept set is a property of the data, not of
the cluster that trains on it. `uid64` is `curation.hashing.uid_to_u64(uid)`, the build's own uid → uint64, and
every draw is made of `curation.hashing`'s splitmix64 and hash uniforms.

Why an epoch's draw is not the build's draw: the build draws one uniform per (uid, entry) pair against p_e
(`curation.balancing.pair_uniforms`); a shard sidecar carries only the row's P(keep) = 1 − Π(1 − p_e), so
training draws one uniform per (uid, epoch) against it — the same keep probability, a fresh subset each epoch.
"""

from __future__ import annotations

import numpy as np

from curation.hashing import hash_uniforms, splitmix64


def hash_uniform(seed: int, epoch: int, uid64: np.ndarray) -> np.ndarray:
    """U[0, 1) float64 per uid for (seed, epoch): splitmix64(uid ^ splitmix64(seed ^ splitmix64(epoch)))."""
    key = splitmix64(np.array([seed], dtype=np.uint64) ^ splitmix64(np.array([epoch], dtype=np.uint64)))
    return hash_uniforms(splitmix64(np.asarray(uid64, dtype=np.uint64) ^ key))


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


def shard_order(n_shards: int, seed: int, epoch: int) -> np.ndarray:
    """Per-epoch permutation of shard indices 0..n-1 (a third hash stream, seed ^ 0x5BA4D): which shard an epoch
    reads first, and with `data.exact_order`, which rank reads it (rank r takes positions r, r + world, ...)."""
    return np.argsort(hash_uniform(seed ^ 0x5BA4D, epoch, np.arange(n_shards, dtype=np.uint64)), kind="stable")


def augment_seed(seed: int, epoch: int, uid64: int) -> list[int]:
    """The entropy of one sample's augmentation draws in `epoch` (for `np.random.default_rng`): the same crop for
    the same (seed, epoch, sample) on any worker, in any order, after any restart."""
    return [int(seed) & (2**64 - 1), int(epoch), int(uid64) & (2**64 - 1)]
