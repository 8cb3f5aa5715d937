"""curation.semdedup: soundness, recall against brute force on planted duplicate groups, the representative rule."""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curation.semdedup import normalize, semantic_duplicate_pairs, semantic_duplicates


def planted(n_groups=200, group=4, singles=600, dim=64, noise=0.02, seed=0):
    """Random unit directions; each group is one direction plus small noise (cosine ≈ 0.98–0.99 within a group)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_groups, dim))
    dups = np.repeat(centers, group, axis=0) + noise * rng.normal(size=(n_groups * group, dim)) * np.sqrt(dim) / 8
    x = np.concatenate([dups, rng.normal(size=(singles, dim))])
    perm = rng.permutation(len(x))
    return normalize(x[perm]), np.concatenate([np.repeat(np.arange(n_groups), group), -1 - np.arange(singles)])[perm]


def brute_force_droppable(x, eps):
    """All but one member of each connected component of the graph cosine ≥ 1 − eps (exhaustive)."""
    sims = x @ x.T
    i, j = np.nonzero(np.triu(sims >= 1 - eps, 1))
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(x), len(x)))
    n_comp, _ = connected_components(graph, directed=False)
    return len(x) - n_comp


def test_every_dropped_row_names_a_kept_row_of_its_cluster_within_the_threshold():
    x, _ = planted()
    eps = 0.05
    res = semantic_duplicate_pairs(x, eps=eps, n_clusters=20, seed=0)
    dropped = np.flatnonzero(res.dropped)
    assert len(dropped) > 0
    assert (res.kept[dropped] >= 0).all() and not res.dropped[res.kept[dropped]].any()
    assert (res.cluster[dropped] == res.cluster[res.kept[dropped]]).all()
    cos = np.einsum("ij,ij->i", x[dropped], x[res.kept[dropped]])
    assert (cos >= 1 - eps - 1e-6).all()
    np.testing.assert_allclose(res.cosine[dropped], cos, atol=1e-5)
    assert (res.kept[~res.dropped] == -1).all() and np.isnan(res.cosine[~res.dropped]).all()


def test_planted_groups_drop_at_least_90_percent_of_what_brute_force_can():
    x, group = planted()
    eps = 0.05
    dropped = semantic_duplicates(x, eps=eps, n_clusters=20, seed=0)
    possible = brute_force_droppable(x, eps)
    assert possible == 200 * 3  # the planted groups, nothing else: the test data is what it claims
    assert dropped.sum() >= 0.9 * possible
    assert (group[dropped] >= 0).all()  # no singleton dropped


def test_the_lowest_index_member_of_a_group_is_kept():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1, 16))
    x = np.concatenate([rng.normal(size=(3, 16)), base, base * 2.0, base + 1e-4, rng.normal(size=(2, 16))])
    res = semantic_duplicate_pairs(x, eps=0.01, n_clusters=2, seed=0)
    assert res.dropped.tolist() == [False, False, False, False, True, True, False, False]
    assert res.kept[[4, 5]].tolist() == [3, 3]


def test_the_result_depends_on_the_seed_only_through_clusters_and_is_repeatable():
    x, _ = planted(n_groups=50, singles=100)
    a = semantic_duplicate_pairs(x, eps=0.05, n_clusters=8, seed=3)
    b = semantic_duplicate_pairs(x, eps=0.05, n_clusters=8, seed=3)
    assert np.array_equal(a.dropped, b.dropped) and np.array_equal(a.kept, b.kept)


def test_eps_zero_drops_only_identical_directions_and_edge_sizes_work():
    x = np.array([[1, 0], [2, 0], [0, 1], [1, 1e-3]], dtype=np.float16)
    assert semantic_duplicates(x, eps=0.0, n_clusters=10, seed=0).tolist() == [False, True, False, False]
    assert semantic_duplicates(np.zeros((0, 8)), eps=0.1, n_clusters=4, seed=0).shape == (0,)
    assert semantic_duplicates(np.ones((1, 8)), eps=0.1, n_clusters=4, seed=0).tolist() == [False]


def test_a_greedy_chain_keeps_an_item_whose_only_close_neighbour_was_dropped():
    # a ~ b and b ~ c but a !~ c: b is dropped (to a), c is kept (its only close neighbour b is gone)
    angles = np.radians([0.0, 5.0, 10.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    thr = np.cos(np.radians(6.0))
    res = semantic_duplicate_pairs(x, eps=1 - thr, n_clusters=1, seed=0)
    assert res.dropped.tolist() == [False, True, False]
