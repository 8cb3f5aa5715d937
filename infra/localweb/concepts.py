"""The synthetic web's concepts (colour × shape pairs and handwritten digits) and who gets which; no rendering, no I/O.

A concept is an int index into `CONCEPTS`: first the 8 × 8 colour-shape pairs (colour-major), then the 10 digits.
Textures vary images and captions but are not part of the label. Which concept and texture an image shows is a pure
function of (seed, image_id), so the server needs no table: candidate images follow a Zipf law over a seeded
permutation of the concepts; evaluation images (ids from `EVAL_ID_BASE`) are balanced, `eval_per_concept` each.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from infra.localweb.config import WebConfig
from infra.localweb.rand import hash64, randint, uniform

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "black")
COLOUR_RGB = (
    (214, 40, 40),
    (240, 130, 20),
    (235, 205, 30),
    (40, 160, 60),
    (35, 85, 210),
    (130, 50, 170),
    (240, 120, 180),
    (25, 25, 25),
)
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "cross", "heart", "diamond")
TEXTURES = ("solid", "striped", "dotted", "checkered")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

EVAL_ID_BASE = 1 << 40
"""Image ids at or above this are evaluation images (id - EVAL_ID_BASE = eval index); below: candidate images."""

_SALT_CONCEPT, _SALT_TEXTURE, _SALT_PERM = 101, 102, 103


class Concept(NamedTuple):
    """One label of the synthetic web. `colour`/`shape` are None for digits, `digit` is -1 for shapes."""

    index: int
    class_name: str
    colour: str | None
    shape: str | None
    digit: int


def _all_concepts() -> tuple[Concept, ...]:
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    out = [Concept(i, f"{c} {s}", c, s, -1) for i, (c, s) in enumerate(pairs)]
    out += [Concept(len(pairs) + d, f"handwritten digit {d}", None, None, d) for d in range(10)]
    return tuple(out)


CONCEPTS = _all_concepts()
N_CONCEPTS = len(CONCEPTS)
N_SHAPE_CONCEPTS = len(COLOURS) * len(SHAPES)


def is_digit(concepts: np.ndarray) -> np.ndarray:
    """Boolean mask: which concept indices are handwritten digits."""
    return np.asarray(concepts) >= N_SHAPE_CONCEPTS


@lru_cache(maxsize=16)
def zipf_order(seed: int, a: float) -> tuple[np.ndarray, np.ndarray]:
    """(order, cdf): order[r] is the concept at frequency rank r (a seeded permutation), cdf the Zipf CDF over
    ranks with P(rank r) ∝ (r + 1) ** -a."""
    order = np.argsort(hash64(seed, np.arange(N_CONCEPTS), _SALT_PERM), kind="stable")
    weights = (np.arange(1, N_CONCEPTS + 1, dtype=np.float64)) ** -a
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    order, cdf = order.astype(np.int64), cdf
    order.flags.writeable = cdf.flags.writeable = False  # cached and shared: nobody may modify them
    return order, cdf


def concept_probabilities(seed: int, a: float) -> np.ndarray:
    """P(concept) for candidate images, indexed by concept (what `concepts_of` samples from)."""
    order, cdf = zipf_order(seed, a)
    p = np.empty(N_CONCEPTS)
    p[order] = np.diff(cdf, prepend=0.0)
    return p


def concepts_of(cfg: WebConfig, image_ids: np.ndarray | int) -> np.ndarray:
    """int64 concept index per image id: Zipf-sampled for candidate ids, id // eval_per_concept for eval ids."""
    ids = np.atleast_1d(np.asarray(image_ids, dtype=np.int64))
    order, cdf = zipf_order(cfg.seed, cfg.zipf_a)
    ranks = np.minimum(np.searchsorted(cdf, uniform(cfg.seed, ids, _SALT_CONCEPT), side="right"), N_CONCEPTS - 1)
    out = order[ranks]
    ev = ids >= EVAL_ID_BASE
    out[ev] = (ids[ev] - EVAL_ID_BASE) // cfg.eval_per_concept
    return out


def textures_of(cfg: WebConfig, image_ids: np.ndarray | int) -> np.ndarray:
    """int64 texture index per image id (uniform over `TEXTURES`; rendered for shapes, ignored for digits)."""
    return randint(cfg.seed, image_ids, _SALT_TEXTURE, len(TEXTURES))


def eval_image_ids(cfg: WebConfig) -> np.ndarray:
    """The evaluation split's image ids, concept-major: eval_per_concept per concept, N_CONCEPTS concepts."""
    return EVAL_ID_BASE + np.arange(N_CONCEPTS * cfg.eval_per_concept, dtype=np.int64)


def is_eval_id(image_id: int, cfg: WebConfig) -> bool:
    """True for an id of the evaluation split (the server serves /eval/{id}.jpg only for these)."""
    return EVAL_ID_BASE <= image_id < EVAL_ID_BASE + N_CONCEPTS * cfg.eval_per_concept
