"""Zero-shot retrieval metrics: pure numpy functions of L2-normalised embeddings. No torch, no I/O.

Follows CLIP_benchmark (`clip_benchmark/metrics/zeroshot_retrieval.py`): scores are cosine similarities; each
image may have several captions. `image_retrieval_recall@k` (text -> image): the fraction of captions whose image
is among the k best-scoring images. `text_retrieval_recall@k` (image -> text): the fraction of images with at
least one of their captions among the k best-scoring captions (CLIP-paper recall, not the fraction of positives).
An image without captions counts as a miss. k larger than the number of candidates gives NaN (CLIP_benchmark's
`torch.topk` raises there). Ties rank the lower index first (CLIP_benchmark: `torch.topk`'s unspecified order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def best_positive_ranks(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Per query (row), the 0-based rank of its best-ranked positive candidate; `len(row)` when it has none.

    scores [Q, N] float, positive [Q, N] bool. Candidates rank by descending score, lower index first on ties,
    so a candidate j has rank #{i : s_i > s_j} + #{i < j : s_i == s_j}.
    """
    masked = np.where(positive, scores, -np.inf)
    best = masked.argmax(axis=1)  # highest-scoring positive; first (lowest index) among equal scores
    s_best = np.take_along_axis(scores, best[:, None], axis=1)
    before = np.arange(scores.shape[1])[None, :] < best[:, None]
    ranks = (scores > s_best).sum(axis=1) + ((scores == s_best) & before).sum(axis=1)
    return np.where(positive.any(axis=1), ranks, scores.shape[1])


def _recalls(ranks: np.ndarray, n_candidates: int, ks: Sequence[int]) -> dict[int, float]:
    return {k: float("nan") if k > n_candidates else float((ranks < k).mean()) for k in ks}


def retrieval_metrics(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    text_image: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    batch_size: int = 1024,
) -> dict[str, float]:
    """`image_retrieval_recall@k` and `text_retrieval_recall@k` for each k.

    image_embeddings [N, D], text_embeddings [M, D] (normalised); text_image [M] int: the image index of each
    caption. Scores are computed in query batches of `batch_size` rows, so memory stays O(batch x candidates).
    """
    images = np.asarray(image_embeddings, dtype=np.float32)
    texts = np.asarray(text_embeddings, dtype=np.float32)
    text_image = np.asarray(text_image, dtype=np.int64)
    n_images, n_texts = len(images), len(texts)
    t2i, i2t = [], []
    for start in range(0, n_texts, batch_size):
        rows = slice(start, start + batch_size)
        positive = np.arange(n_images)[None, :] == text_image[rows, None]
        t2i.append(best_positive_ranks(texts[rows] @ images.T, positive))
    for start in range(0, n_images, batch_size):
        rows = np.arange(start, min(start + batch_size, n_images))
        positive = rows[:, None] == text_image[None, :]
        i2t.append(best_positive_ranks(images[rows] @ texts.T, positive))
    image_r = _recalls(np.concatenate(t2i) if t2i else np.zeros(0), n_images, ks)
    text_r = _recalls(np.concatenate(i2t) if i2t else np.zeros(0), n_texts, ks)
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = image_r[k]
        out[f"text_retrieval_recall@{k}"] = text_r[k]
    return out


def flatten_captions(captions: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """[[c00, c01], [c10]] -> ([c00, c01, c10], text_image=[0, 0, 1]): the layout `retrieval_metrics` takes."""
    texts = [c for caps in captions for c in caps]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions]).astype(np.int64)
    return texts, owner


def retrieval_chance(text_image: np.ndarray, n_images: int, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """What a random ranking scores, keyed like `retrieval_metrics`: `image_retrieval_recall@k` = k / n_images;
    `text_retrieval_recall@k` = the mean over images of P(one of its c captions is among k of the M captions drawn
    at random) = 1 - C(M - c, k) / C(M, k). NaN where the metric is (k > candidates)."""
    owner = np.asarray(text_image, dtype=np.int64)
    n_texts = len(owner)
    per_image = np.bincount(owner, minlength=n_images)[:n_images].astype(np.float64)
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = float("nan") if k > n_images else k / n_images
        if k > n_texts or n_images == 0:
            out[f"text_retrieval_recall@{k}"] = float("nan")
            continue
        j = np.arange(k, dtype=np.float64)[None, :]
        miss = np.clip((n_texts - per_image[:, None] - j) / (n_texts - j), 0.0, 1.0).prod(axis=1)
        out[f"text_retrieval_recall@{k}"] = float((1.0 - miss).mean())
    return out
