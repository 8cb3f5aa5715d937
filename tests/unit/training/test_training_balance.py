"""Online balancing draws: a pure function of (seed, epoch, uid), bit-exact against a scalar reference, and made of
the build's own hashing (`curation.hashing`)."""

import numpy as np
import pytest

from curation.balancing import entry_probs, keep_prob, pair_uniforms, sample_keep
from curation.hashing import hash_uniforms, uid_to_u64
from curation.hashing import splitmix64 as hashing_splitmix64
from training.balance import epoch_order, hash_uniform, online_keep

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


def test_training_reads_uids_with_the_builds_uid_to_u64():
    import training.data

    assert training.data.uid_to_u64 is uid_to_u64  # no second uid → uint64 in training
    u = uid_to_u64(["0123456789abcdef0123", "key-1", "key-1", "key-2"])
    assert u.dtype == np.uint64
    assert int(u[0]) == 0xF1766F8F13277D8B  # BLAKE2b-64, not the hex prefix 0x0123456789ABCDEF
    assert u[1] == u[2] and u[1] != u[3]


def test_epoch_and_build_draws_compose_the_same_primitives():
    """Both draws are `hash_uniforms(splitmix64(...))` of the same uid64. They are different events by design: the
    build draws per (uid, entry) against p_e, an epoch draws once per (uid, epoch) against the row's P(keep) (the
    sidecar has no per-entry draws) — so no epoch equals the build's draw, but every primitive is shared."""
    sm = hashing_splitmix64
    uid64 = uid_to_u64([f"uid-{i}" for i in range(500)])
    entries = np.arange(500) % 7
    for seed, epoch in [(0, 0), (7, 3)]:
        one = np.array([seed], np.uint64)
        epoch_key = sm(one ^ sm(np.array([epoch], np.uint64)))
        assert np.array_equal(hash_uniform(seed, epoch, uid64), hash_uniforms(sm(uid64 ^ epoch_key)))
        build = hash_uniforms(sm(sm(uid64 ^ sm(one)[0]) ^ entries.astype(np.uint64)))
        assert np.array_equal(pair_uniforms(seed, uid64, entries), build)


def test_online_keep_agrees_with_the_build_balance():
    """Same (uids, entry ids, probs, seed): rows with P(keep) 0 or 1 get the same decision from the build's
    `sample_keep` and training's epoch-0 `online_keep`; in between both keep at rate P(keep)."""
    rng = np.random.default_rng(1)
    n = 40_000
    ids = [rng.choice(6, size=rng.integers(0, 3), replace=False) for _ in range(n)]
    probs = entry_probs(np.array([1, 2, 40, 100, 400, 0], np.uint64), 20)  # entries 0, 1, 5 are tail: p = 1
    uids = [f"uid-{i}" for i in range(n)]
    build = sample_keep(uids, ids, probs, 3)
    p = keep_prob(ids, probs)
    online = online_keep(uid_to_u64(uids), p, 3, 0)
    sure = (p == 0) | (p == 1)
    assert sure.sum() > n // 2 and np.array_equal(build[sure], online[sure])
    assert abs(build[~sure].mean() - p[~sure].mean()) < 0.01 and abs(online[~sure].mean() - p[~sure].mean()) < 0.01


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
