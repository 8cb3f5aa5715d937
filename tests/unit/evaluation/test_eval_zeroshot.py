"""Zero-shot metrics on hand-computed cases: class embeddings, top-k with ties, k > classes, per-class recall."""

import math

import numpy as np
import pytest

from evaluation.zeroshot import (
    class_embeddings,
    classification_metrics,
    label_ranks,
    mean_per_class_recall,
    topk_accuracy,
    zeroshot_logits,
    zeroshot_metrics,
)


def test_class_embedding_is_mean_of_normalised_prompts_renormalised():
    prompts = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [0.6, 0.8]]])  # [C=2, T=2, D=2], rows unit norm
    out = class_embeddings(prompts)
    s = math.sqrt(0.5)
    np.testing.assert_allclose(out, [[s, s], [0.6, 0.8]])


def test_logits_use_the_fixed_scale_100():
    np.testing.assert_allclose(zeroshot_logits(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])), [[100, 0]])


def test_topk_hand_computed():
    logits = np.array(
        [
            [0.9, 0.1, 0.0],  # label 0: rank 0
            [0.5, 0.4, 0.1],  # label 1: rank 1
            [0.5, 0.4, 0.1],  # label 2: rank 2
            [0.2, 0.3, 0.5],  # label 0: rank 2
        ]
    )
    labels = np.array([0, 1, 2, 0])
    assert list(label_ranks(logits, labels)) == [0, 1, 2, 2]
    assert topk_accuracy(logits, labels, 1) == 0.25
    assert topk_accuracy(logits, labels, 2) == 0.5
    assert topk_accuracy(logits, labels, 3) == 1.0


def test_k_larger_than_classes_is_nan_like_clip_benchmark_acc5():
    logits = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    m = classification_metrics(logits, np.array([0, 1]))
    assert m["acc1"] == 1.0 and math.isnan(m["acc5"])
    assert topk_accuracy(logits, np.array([0, 1]), 4) == 1.0  # k == classes is defined (and trivially 1)


def test_ties_rank_the_lower_class_index_first():
    logits = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.1, 0.7, 0.7]])
    labels = np.array([0, 2, 2])
    assert list(label_ranks(logits, labels)) == [0, 2, 1]
    assert topk_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, labels, 2) == pytest.approx(2 / 3)
    # acc1 and the argmax behind mean_per_class_recall agree on ties: predictions are [0, 0, 1]
    m = classification_metrics(logits, labels, topk=(1,))
    assert m["mean_per_class_recall"] == pytest.approx((1.0 + 0.0) / 2)


def test_mean_per_class_recall_hand_computed():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 0, 1, 1, 0, 3])  # class 3 only predicted, never true: ignored
    assert mean_per_class_recall(preds, labels) == pytest.approx((3 / 4 + 1 / 2 + 0) / 3)


def test_mean_per_class_recall_equals_sklearn_balanced_accuracy():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(1)
    labels, preds = rng.integers(0, 7, 500), rng.integers(0, 9, 500)
    with pytest.warns(UserWarning):  # sklearn warns about predicted classes that are never true
        expected = balanced_accuracy_score(labels, preds)
    assert mean_per_class_recall(preds, labels) == pytest.approx(expected, abs=1e-12)


def test_zeroshot_metrics_end_to_end_hand_case():
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = zeroshot_metrics(images, classes, np.array([0, 1, 1]))
    assert m["acc1"] == pytest.approx(2 / 3) and math.isnan(m["acc5"])
    assert m["mean_per_class_recall"] == pytest.approx((1 + 0.5) / 2)
