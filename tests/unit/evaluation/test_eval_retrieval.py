"""Retrieval metrics on hand-computed cases: several captions per image, ties, k beyond the candidates."""

import math

import numpy as np
import pytest

from evaluation.retrieval import best_positive_ranks, flatten_captions, retrieval_metrics


def _unit(deg):
    r = np.deg2rad(np.asarray(deg, dtype=float))
    return np.stack([np.cos(r), np.sin(r)], axis=1)


def test_flatten_captions():
    texts, owner = flatten_captions([["a", "b"], ["c"], ["d", "e", "f"]])
    assert texts == ["a", "b", "c", "d", "e", "f"] and owner.tolist() == [0, 0, 1, 2, 2, 2]


def test_multiple_captions_per_image_hand_computed():
    images = _unit([0, 90, 180])
    # image 0 captions at 80 and 5 degrees, image 1 caption at 105, image 2 caption at 10 degrees
    texts = _unit([80, 5, 105, 10])
    owner = np.array([0, 0, 1, 2])
    m = retrieval_metrics(images, texts, owner, ks=(1, 2))
    # text -> image: t0 (80°) best image 1 (wrong, own image 0 second); t1 (5°) -> image 0 ✓;
    # t2 (105°) -> image 1 ✓; t3 (10°) -> image 0 first, image 1 second, own image 2 (180°) last
    assert m["image_retrieval_recall@1"] == pytest.approx(2 / 4)
    assert m["image_retrieval_recall@2"] == pytest.approx(3 / 4)
    # image -> text: image 0 ranks t1(5°) first ✓; image 1 ranks t0(80°) first, then t2(105°) -> hit at 2;
    # image 2 (180°) ranks t2(105°), t0(80°), t3(10°) ... -> its only caption t3 is third
    assert m["text_retrieval_recall@1"] == pytest.approx(1 / 3)
    assert m["text_retrieval_recall@2"] == pytest.approx(2 / 3)


def test_any_caption_in_top_k_counts_once():
    images = _unit([0, 90])
    texts = _unit([0, 1, 2, 90])  # image 0 has three near-identical captions
    m = retrieval_metrics(images, texts, np.array([0, 0, 0, 1]), ks=(1,))
    assert m["text_retrieval_recall@1"] == 1.0 and m["image_retrieval_recall@1"] == 1.0


def test_ties_rank_lower_index_first():
    scores = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    positive = np.array([[False, True, False], [False, False, True]])
    assert best_positive_ranks(scores, positive).tolist() == [1, 2]
    # the best positive is the first of several equal-scoring positives
    assert best_positive_ranks(np.array([[0.2, 0.9, 0.9]]), np.array([[True, False, True]])).tolist() == [1]


def test_query_without_positive_is_a_miss():
    assert best_positive_ranks(np.array([[0.3, 0.1]]), np.array([[False, False]])).tolist() == [2]
    images, texts = _unit([0, 90, 45]), _unit([0, 90])
    m = retrieval_metrics(images, texts, np.array([0, 1]), ks=(1, 2))
    assert m["text_retrieval_recall@2"] == pytest.approx(2 / 3)  # image 2 has no caption: miss at any k


def test_k_larger_than_candidates_is_nan():
    m = retrieval_metrics(_unit([0, 90]), _unit([0, 10, 90]), np.array([0, 0, 1]), ks=(1, 3, 5))
    assert math.isnan(m["image_retrieval_recall@3"]) and math.isnan(m["image_retrieval_recall@5"])
    assert m["text_retrieval_recall@3"] == 1.0 and math.isnan(m["text_retrieval_recall@5"])


def test_query_batching_does_not_change_results():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(37, 8))
    texts = rng.normal(size=(90, 8))
    owner = rng.integers(0, 37, 90)
    full = retrieval_metrics(images, texts, owner, batch_size=1000)
    assert retrieval_metrics(images, texts, owner, batch_size=7) == full
