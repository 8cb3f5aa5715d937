"""SemDeDup (Abbas et al., arXiv 2303.09540): semantic near-duplicates among embeddings; no I/O, never imports Ray.

Method: L2-normalise; k-means (scikit-learn's `KMeans`, fitted on a seeded sample of at most `fit_sample` rows, then
every row assigned to its nearest centroid); within each cluster, an item is dropped when its cosine similarity to an
item *kept* before it is ≥ 1 − eps. Items of a cluster are visited in ascending index order, so the kept
representative of a duplicate group is its lowest-index member (the build passes rows sorted by uid: the smallest uid
is kept). This greedy rule is sound by construction — every dropped item names a kept item of its cluster within the
threshold — unlike the paper's `max(triu(C·Cᵀ, 1)) > 1 − eps`, which may drop an item whose only close neighbour was
itself dropped.

Cost: the sample fit (n_sample × k × D per iteration) + one assignment pass (n × k × D) + the within-cluster
similarity blocks (Σ n_c² × D, in row chunks so a large cluster never holds an n_c × n_c matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_ROWS = 2048  # rows of a cluster's similarity block computed at once (CHUNK_ROWS × n_c float32)
FIT_SAMPLE = 100_000
KMEANS_ITER = 20  # DataComp's image-clustering baseline: faiss k-means, 20 iterations


@dataclass(frozen=True)
class SemDedupResult:
    """Per input row: `dropped` (bool), `kept` (int64: the kept row it duplicates, -1 when kept), `cosine`
    (float32: its similarity to that row, NaN when kept) and `cluster` (int32: its k-means cluster)."""

    dropped: np.ndarray
    kept: np.ndarray
    cosine: np.ndarray
    cluster: np.ndarray


def normalize(embeddings: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit L2 norm (an all-zero row stays zero)."""
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def cluster_embeddings(x: np.ndarray, n_clusters: int, seed: int, fit_sample: int = FIT_SAMPLE) -> np.ndarray:
    """int32 cluster id per row of normalised `x` [n, D]: scikit-learn k-means (one init, `KMEANS_ITER` iterations)
    fitted on a seeded sample of at most `fit_sample` rows, then every row assigned to its nearest centroid."""
    from sklearn.cluster import KMeans

    n = len(x)
    k = max(1, min(int(n_clusters), n))
    if k == 1:
        return np.zeros(n, dtype=np.int32)
    rng = np.random.default_rng(seed)
    sample = x if n <= fit_sample else x[np.sort(rng.choice(n, size=max(fit_sample, k), replace=False))]
    km = KMeans(n_clusters=k, n_init=1, max_iter=KMEANS_ITER, random_state=seed).fit(sample)
    return km.predict(x).astype(np.int32)


def _within_cluster(x: np.ndarray, members: np.ndarray, threshold: float, kept: np.ndarray, cos: np.ndarray) -> None:
    """Greedy pass over one cluster (`members` ascending): fills `kept`/`cos` for the members it drops."""
    n = len(members)
    xc = x[members]
    rows, cols, sims = [], [], []
    for start in range(0, n, CHUNK_ROWS):
        block = xc[start : start + CHUNK_ROWS] @ xc[: min(n, start + CHUNK_ROWS)].T
        r, c = np.nonzero(block >= threshold)
        earlier = c < r + start  # pairs (i, j) with j before i
        rows.append(r[earlier] + start)
        cols.append(c[earlier])
        sims.append(block[r[earlier], c[earlier]])
    r, c, s = np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)
    if not len(r):
        return
    # r is ascending (row-major nonzero, chunks in order): walk the rows that have an earlier close neighbour
    is_kept = np.ones(n, dtype=bool)
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    ends = np.r_[starts[1:], len(r)]
    for a, b in zip(starts, ends, strict=True):
        alive = is_kept[c[a:b]]
        if alive.any():
            j = a + int(np.argmax(np.where(alive, s[a:b], -np.inf)))  # the most similar kept item
            i = r[a]
            is_kept[i] = False
            kept[members[i]] = members[c[j]]
            cos[members[i]] = s[j]


def semantic_duplicate_pairs(
    embeddings: np.ndarray, eps: float, n_clusters: int, seed: int, fit_sample: int = FIT_SAMPLE
) -> SemDedupResult:
    """SemDeDup over `embeddings` [n, D] (any float dtype; normalised here) with threshold 1 − `eps` and
    `n_clusters` k-means clusters (capped at n); see the module docstring for the rule and the representative."""
    x = normalize(embeddings)
    n = len(x)
    kept = np.full(n, -1, dtype=np.int64)
    cos = np.full(n, np.nan, dtype=np.float32)
    if n == 0:
        return SemDedupResult(np.zeros(0, bool), kept, cos, np.zeros(0, np.int32))
    cluster = cluster_embeddings(x, n_clusters, seed, fit_sample)
    order = np.argsort(cluster, kind="stable")  # stable: members of each cluster stay in ascending index order
    bounds = np.flatnonzero(np.diff(cluster[order])) + 1
    for members in np.split(order, bounds):
        if len(members) > 1:
            _within_cluster(x, members, 1.0 - float(eps), kept, cos)
    return SemDedupResult(kept >= 0, kept, cos, cluster)


def semantic_duplicates(embeddings: np.ndarray, eps: float, n_clusters: int, seed: int) -> np.ndarray:
    """bool[n]: True where SemDeDup drops the row (a row of its cluster kept before it has cosine ≥ 1 − eps)."""
    return semantic_duplicate_pairs(embeddings, eps, n_clusters, seed).dropped
