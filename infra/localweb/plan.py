"""Row plan of the synthetic web: which image, variant, fault and duplicate cluster every candidate row gets; pure
numpy, no I/O, no strings.

Each row's role comes from `uniform(seed, row)` against the config's rates, so it does not depend on chunking.
Duplicate clusters need one look at all rows (a cluster's image is its first member's, and a cluster of one is no
cluster), so the plan holds a few small integer arrays per row (~40 bytes a row: 40 MB at 10^6 rows); the strings
are written later, chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infra.localweb.concepts import EVAL_ID_BASE, N_CONCEPTS
from infra.localweb.config import WebConfig
from infra.localweb.faults import FAULTS
from infra.localweb.plants import plan_semantic_dups, semantic_variant
from infra.localweb.rand import randint, uniform
from infra.localweb.render import FIRST_SEMANTIC_VARIANT, N_NEAR_VARIANTS, SEMANTIC_VARIANTS

ROLES = ("original", "dup_exact", "dup_near", "dup_url", "eval_exact", "eval_near", "dup_semantic")
"""A row's relation to the rest: first sight of an image, a byte-identical copy, a near-duplicate, the same URL
again, a copy (exact or near) of a held-out evaluation image, or a semantic duplicate pHash misses (plants.py)."""
ORIGINAL, DUP_EXACT, DUP_NEAR, DUP_URL, EVAL_EXACT, EVAL_NEAR, DUP_SEMANTIC = range(len(ROLES))

MEAN_CLUSTER_SIZE = 3
"""Duplicate rows are spread over (dup rows / 3) clusters, so a cluster has about 3 members (1 original + copies)."""
URL_SOURCE_TRIES = 8
"""A dup_url row looks at this many earlier rows for a plain one to repeat; if none is plain it stays a plain row."""

_SALT_ROLE, _SALT_FAULT, _SALT_CLUSTER, _SALT_VARIANT, _SALT_EVAL, _SALT_EVAL_NEAR, _SALT_URL = range(301, 308)
_FAULT, _EXACT, _NEAR, _URL, _EVAL, _SEMANTIC, _PLAIN = range(7)


@dataclass(frozen=True)
class RowPlan:
    """One entry per candidate row. `fault` indexes ("ok",) + FAULTS; `url_row` is the row whose URL the row uses
    (itself, or an earlier row for dup_url); `dup_cluster` and `eval_copy_of` are image ids or -1."""

    role: np.ndarray  # int8
    fault: np.ndarray  # int8
    image_id: np.ndarray  # int64
    variant: np.ndarray  # int8
    url_row: np.ndarray  # int64
    dup_cluster: np.ndarray  # int64
    eval_copy_of: np.ndarray  # int64
    semantic_dup_of: np.ndarray | None = None  # int64: the row whose image a dup_semantic row shows, else -1


def n_eval_images(cfg: WebConfig) -> int:
    """Size of the held-out evaluation split."""
    return N_CONCEPTS * cfg.eval_per_concept


def plan_rows(cfg: WebConfig) -> RowPlan:
    """The plan of all `cfg.n_candidates` rows: a pure function of the config."""
    n, seed = cfg.n_candidates, cfg.seed
    rows = np.arange(n, dtype=np.int64)
    rates = [cfg.fault_rate, cfg.dup_exact_rate, cfg.dup_near_rate, cfg.dup_url_rate, cfg.eval_copy_rate]
    edges = np.cumsum([*rates, cfg.semantic_dup_rate])
    kind = np.searchsorted(edges, uniform(seed, rows, _SALT_ROLE), side="right")
    role = np.full(n, ORIGINAL, dtype=np.int8)
    fault = np.zeros(n, dtype=np.int8)
    image_id, variant, url_row = rows.copy(), np.zeros(n, dtype=np.int8), rows.copy()
    is_fault = kind == _FAULT
    fault[is_fault] = 1 + randint(seed, rows[is_fault], _SALT_FAULT, len(FAULTS))
    _plan_duplicates(cfg, rows, kind, role, image_id, variant)
    _plan_eval_copies(cfg, rows, kind, role, image_id, variant)
    _plan_url_repeats(cfg, rows, kind, role, image_id, url_row)
    semantic_dup_of = _plan_semantic(cfg, rows, kind, role, image_id, variant)
    dup_cluster = _clusters(image_id, role)
    eval_copy_of = np.where(image_id >= EVAL_ID_BASE, image_id, -1)
    return RowPlan(role, fault, image_id, variant, url_row, dup_cluster, eval_copy_of, semantic_dup_of)


def _plan_semantic(cfg, rows, kind, role, image_id, variant) -> np.ndarray:
    """dup_semantic rows show an earlier plain row's image as a semantic variant (plants.py); -1 elsewhere."""
    out = np.full(len(rows), -1, dtype=np.int64)
    sem = np.flatnonzero(kind == _SEMANTIC)
    if not len(sem):
        return out
    source = plan_semantic_dups(cfg.seed, rows, sem, kind == _PLAIN)
    found = source >= 0
    hit = sem[found]
    role[hit] = DUP_SEMANTIC
    image_id[hit] = image_id[source[found]]
    variant[hit] = FIRST_SEMANTIC_VARIANT + semantic_variant(cfg.seed, rows[hit], len(SEMANTIC_VARIANTS))
    out[hit] = source[found]
    return out


def _plan_duplicates(cfg, rows, kind, role, image_id, variant) -> None:
    """Dup rows join one of ~(dup rows / MEAN_CLUSTER_SIZE) clusters; a cluster shows its first member's image."""
    dup = np.flatnonzero((kind == _EXACT) | (kind == _NEAR))
    if not len(dup):
        return
    expected = (cfg.dup_exact_rate + cfg.dup_near_rate) * cfg.n_candidates
    n_clusters = max(1, round(expected / MEAN_CLUSTER_SIZE))
    cluster = randint(cfg.seed, rows[dup], _SALT_CLUSTER, n_clusters)
    _, first, inverse = np.unique(cluster, return_index=True, return_inverse=True)
    image_id[dup] = rows[dup][first][inverse]  # dup is ascending, so `first` is each cluster's smallest row
    copies = dup[image_id[dup] != rows[dup]]  # the first member stays an original (variant 0)
    near = copies[kind[copies] == _NEAR]
    role[copies] = DUP_EXACT
    role[near] = DUP_NEAR
    variant[near] = 1 + randint(cfg.seed, rows[near], _SALT_VARIANT, N_NEAR_VARIANTS)


def _plan_eval_copies(cfg, rows, kind, role, image_id, variant) -> None:
    """Eval-copy rows show a held-out evaluation image: half exactly (variant 0), half as a near variant."""
    ev = np.flatnonzero(kind == _EVAL)
    image_id[ev] = EVAL_ID_BASE + randint(cfg.seed, rows[ev], _SALT_EVAL, n_eval_images(cfg))
    near = uniform(cfg.seed, rows[ev], _SALT_EVAL_NEAR) < 0.5
    role[ev] = np.where(near, EVAL_NEAR, EVAL_EXACT)
    variant[ev[near]] = 1 + randint(cfg.seed, rows[ev[near]], _SALT_VARIANT, N_NEAR_VARIANTS)


def _plan_url_repeats(cfg, rows, kind, role, image_id, url_row) -> None:
    """A dup_url row repeats the URL (hence the image) of an earlier plain row; without one it stays plain."""
    rep = np.flatnonzero(kind == _URL)
    source = np.full(len(rep), -1, dtype=np.int64)
    for t in range(URL_SOURCE_TRIES):
        todo = source < 0
        j = randint(cfg.seed, rows[rep[todo]], _SALT_URL + 1000 * t, rows[rep[todo]])  # j < row (0 for row 0)
        ok = (kind[j] == _PLAIN) & (j < rows[rep[todo]])
        source[np.flatnonzero(todo)[ok]] = j[ok]
    found = source >= 0
    role[rep[found]] = DUP_URL
    url_row[rep[found]] = source[found]
    image_id[rep[found]] = source[found]  # a plain row shows its own image; rows with no source stay plain


def _clusters(image_id: np.ndarray, role: np.ndarray) -> np.ndarray:
    """dup_cluster per row: the image id when two or more distinct URLs show that image, else -1. dup_url rows
    share a URL, not just an image, so they are never counted (the text stage merges them); dup_semantic rows are
    not pHash duplicates (their `semantic_dup_of` is the ground truth)."""
    out = np.full(len(image_id), -1, dtype=np.int64)
    distinct_urls = np.flatnonzero((role != DUP_URL) & (role != DUP_SEMANTIC))  # pHash does not see semantic dups
    _, inverse, counts = np.unique(image_id[distinct_urls], return_inverse=True, return_counts=True)
    multi = counts[inverse] >= 2
    out[distinct_urls[multi]] = image_id[distinct_urls[multi]]
    return out
