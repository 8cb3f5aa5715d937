"""Zero-shot classification metrics: pure numpy functions of L2-normalised embeddings. No torch, no I/O.

Follows CLIP_benchmark (`clip_benchmark/metrics/zeroshot_classification.py`): the class embedding is the mean of
the normalised prompt embeddings, renormalised; logits are `100 * image @ class.T`; `acc1`/`acc5` are top-k
accuracies as fractions, `acc5` is NaN when there are fewer than 5 classes (generally: top-k is NaN when
k > number of classes); `mean_per_class_recall` is scikit-learn's `balanced_accuracy_score` of the argmax
prediction (mean recall over the classes present in `labels`).

Ties: CLIP_benchmark ranks with `torch.topk`, whose order among equal logits is unspecified (it differs between CPU
and CUDA and with tensor size); here equal logits rank the lower class index first — the rule `argmax` uses, so
`acc1` and the prediction behind `mean_per_class_recall` always agree. With real-valued logits ties do not occur.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LOGIT_SCALE = 100.0
"""Fixed zero-shot logit scale (CLIP_benchmark and open_clip's in-training eval); the learned scale is not used."""


def normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """`x` divided by its L2 norm along `axis` (rows of zeros stay zeros)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def class_embeddings(prompt_embeddings: np.ndarray) -> np.ndarray:
    """[C, T, D] normalised prompt embeddings -> [C, D]: per class the mean over templates, renormalised."""
    return normalize(np.asarray(prompt_embeddings).mean(axis=1))


def zeroshot_logits(image_embeddings: np.ndarray, class_embs: np.ndarray) -> np.ndarray:
    """[N, D] x [C, D] -> [N, C] logits `100 * image @ class.T` (float32 in, float32 out)."""
    return LOGIT_SCALE * (np.asarray(image_embeddings) @ np.asarray(class_embs).T)


def label_ranks(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each sample's true class among its logits [N, C] (0 = predicted); ties rank lower index first.

    rank = #{j : l_j > l_y} + #{j < y : l_j == l_y}; the label is in the top k exactly when rank < k.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    true = np.take_along_axis(logits, labels[:, None], axis=1)
    before = np.arange(logits.shape[1])[None, :] < labels[:, None]
    return (logits > true).sum(axis=1) + ((logits == true) & before).sum(axis=1)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is among the k highest logits; NaN when k exceeds the number of classes."""
    if k > np.asarray(logits).shape[1]:
        return float("nan")
    return float((label_ranks(logits, labels) < k).mean())


def mean_per_class_recall(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in `labels` of the fraction of that class predicted correctly
    (= sklearn `balanced_accuracy_score(labels, predictions)`; classes only predicted, never true, are ignored)."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    return float(np.mean([(predictions[labels == c] == c).mean() for c in classes]))


def predictions(logits: np.ndarray) -> np.ndarray:
    """argmax per row (the first maximum on ties), int64 [N]."""
    return np.asarray(logits).argmax(axis=1).astype(np.int64)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """`acc{k}` for each k (NaN when k > classes) and `mean_per_class_recall`, from logits [N, C] and labels [N]."""
    out = {f"acc{k}": topk_accuracy(logits, labels, k) for k in topk}
    out["mean_per_class_recall"] = mean_per_class_recall(predictions(logits), labels)
    return out


def zeroshot_metrics(
    image_embeddings: np.ndarray, class_embs: np.ndarray, labels: np.ndarray, topk: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """CLIP_benchmark's zero-shot metrics (`acc1`, `acc5`, `mean_per_class_recall`) from normalised embeddings."""
    return classification_metrics(zeroshot_logits(image_embeddings, class_embs), labels, topk)


def classification_chance(n_classes: int, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """What a uniform random guess scores, keyed like `classification_metrics`: `acc{k}` = k / n_classes (NaN when
    k > n_classes, as the metric is), `mean_per_class_recall` = 1 / n_classes."""
    out = {f"acc{k}": float("nan") if k > n_classes else k / n_classes for k in topk}
    out["mean_per_class_recall"] = 1.0 / n_classes
    return out
