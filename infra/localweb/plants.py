"""Planted targets of the model-based filters (#22): semantic duplicates that pHash misses and captions that describe
another concept. Pure numpy over row indices (no I/O, no strings); off unless their rates are set.

- `semantic_dup_rate`: a row shows an earlier plain row's image transformed so that its pHash moves far beyond the
  near-dup radius while the content stays (mirrored, 12 % cropped, mirrored and darker: render.SEMANTIC_VARIANTS).
  Answers: role `dup_semantic`, `semantic_dup_of` = the row whose image it shows. Not a `dup_cluster` member:
  pHash dedup is not expected to find it.
- `caption_mismatch_rate`: a plain row's caption is written for another concept (same caption kind and template).
  Answers: `caption_mismatch` true and `caption_concept` the concept the caption describes.
"""

from __future__ import annotations

import numpy as np

from infra.localweb.concepts import N_CONCEPTS
from infra.localweb.rand import randint, uniform

SEMANTIC_SOURCE_TRIES = 8
_SALT_SEM_SRC, _SALT_SEM_VARIANT, _SALT_MISMATCH, _SALT_OTHER = range(331, 335)


def plan_semantic_dups(seed: int, rows: np.ndarray, candidates: np.ndarray, plain: np.ndarray) -> np.ndarray:
    """For each row in `candidates`, an earlier row among `plain` (bool per row) whose image it shows, or -1 when
    none of SEMANTIC_SOURCE_TRIES draws hit a plain row (the row then stays plain)."""
    source = np.full(len(candidates), -1, dtype=np.int64)
    for t in range(SEMANTIC_SOURCE_TRIES):
        todo = np.flatnonzero(source < 0)
        r = rows[candidates[todo]]
        j = randint(seed, r, _SALT_SEM_SRC + 1000 * t, r)  # j < row (0 for row 0)
        ok = plain[j] & (j < r)
        source[todo[ok]] = j[ok]
    return source


def semantic_variant(seed: int, rows: np.ndarray, n_variants: int) -> np.ndarray:
    """Which of the `n_variants` semantic variants (0-based) each row shows."""
    return randint(seed, rows, _SALT_SEM_VARIANT, n_variants)


def caption_concepts(seed: int, rows: np.ndarray, concepts: np.ndarray, eligible: np.ndarray, rate: float):
    """(concept each caption describes, mismatch mask): an `eligible` row is mismatched with probability `rate` and
    then describes another concept, drawn uniformly among the other N_CONCEPTS − 1."""
    mismatch = eligible & (uniform(seed, rows, _SALT_MISMATCH) < rate)
    other = (concepts + 1 + randint(seed, rows, _SALT_OTHER, N_CONCEPTS - 1)) % N_CONCEPTS
    return np.where(mismatch, other, concepts), mismatch
