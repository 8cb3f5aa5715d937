"""Online balancing draws: a pure function of (seed, epoch, uid), bit-exact against a scalar reference."""

import numpy as np
import pytest

from training.balance import epoch_order, hash_uniform, online_keep, uid_to_u64

M = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """Reference splitmix64 finaliser on Python ints."""
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def reference_uniform(seed: int, epoch: int, uid64: int) -> float:
    key = splitmix64(seed ^ splitmix64(epoch))
    return (splitmix64(uid64 ^ key) >> 11) / float(1 << 53)


def test_uid_to_u64_reads_hex_prefix_and_folds_other_strings():
    u = uid_to_u64(["0123456789abcdef0123", "ffffffffffffffff", "key-1", "key-1", "key-2"])
    assert u.dtype == np.uint64
    assert int(u[0]) == 0x0123456789ABCDEF and int(u[1]) == M
    assert u[2] == u[3] and u[2] != u[4]


@pytest.mark.parametrize(("seed", "epoch"), [(0, 0), (0, 1), (7, 3), (2**40, 12)])
def test_hash_uniform_matches_scalar_reference(seed, epoch):
    uids = np.array([0, 1, 0x0123456789ABCDEF, M, 12345678901234567], dtype=np.uint64)
    got = hash_uniform(seed, epoch, uids)
    want = [reference_uniform(seed, epoch, int(x)) for x in uids]
    assert got.tolist() == want


def test_draw_ignores_order_and_batching():
    uids = uid_to_u64([f"{i:024x}" for i in range(1000)])
    whole = hash_uniform(3, 5, uids)
    perm = np.random.default_rng(0).permutation(1000)
    assert np.array_equal(hash_uniform(3, 5, uids[perm]), whole[perm])
    assert np.array_equal(np.concatenate([hash_uniform(3, 5, uids[:100]), hash_uniform(3, 5, uids[100:])]), whole)


def test_uniforms_are_uniform_and_epochs_independent():
    uids = np.arange(200_000, dtype=np.uint64)
    a, b = hash_uniform(0, 0, uids), hash_uniform(0, 1, uids)
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.005
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


def test_online_keep_rates_and_edge_probabilities():
    uids = np.arange(100_000, dtype=np.uint64)
    assert online_keep(uids, np.ones(len(uids)), 0, 0).all()
    assert not online_keep(uids, np.zeros(len(uids)), 0, 0).any()
    assert online_keep(uids, np.full(len(uids), np.nan), 0, 0).all()  # no probability recorded: keep
    keep0, keep1 = (online_keep(uids, np.full(len(uids), 0.3), 0, e) for e in (0, 1))
    assert abs(keep0.mean() - 0.3) < 0.01
    # Re-drawn every epoch (MetaCLIP online balancing): a different subset of the head each time.
    assert 0.05 < (keep0 & keep1).mean() < 0.13


def test_epoch_order_is_a_deterministic_permutation_per_epoch():
    uids = np.arange(50, dtype=np.uint64)
    o0 = epoch_order(uids, 0, 0)
    assert sorted(o0.tolist()) == list(range(50))
    assert np.array_equal(o0, epoch_order(uids, 0, 0))
    assert not np.array_equal(o0, epoch_order(uids, 0, 1))
