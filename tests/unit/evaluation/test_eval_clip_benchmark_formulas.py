"""Our numpy metrics equal CLIP_benchmark's torch formulas on the same embeddings.

The reference functions below are copied from CLIP_benchmark 1.6.2 (MIT licence; `clip_benchmark/metrics/
zeroshot_classification.py`: `zero_shot_classifier`'s averaging, `accuracy`, the `balanced_accuracy_score` call;
`zeroshot_retrieval.py`: `recall_at_k` and its use), minus tqdm/autocast, so this test needs no clip-benchmark
install. One edit: `accuracy` indexes its one-element array (`[0]`) — CLIP_benchmark's `float(array)` raises on
NumPy >= 2.4, which is also why clip-benchmark cannot join this project's pinned test environment. The end-to-end
comparison with the installed package is `benchmarks/bench_eval.py`.
"""

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score

from evaluation.retrieval import retrieval_metrics
from evaluation.zeroshot import class_embeddings, zeroshot_metrics


def cb_classifier(prompt_embs: torch.Tensor) -> torch.Tensor:
    weights = []
    for class_prompt_embs in prompt_embs:  # [T, D] per class
        class_embedding = F.normalize(class_prompt_embs, dim=-1).mean(dim=0)
        class_embedding /= class_embedding.norm()
        weights.append(class_embedding)
    return torch.stack(weights, dim=1)


def cb_accuracy(output, target, topk=(1,)):
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    n = len(target)
    return [float(correct[:k].reshape(-1).float().sum(0, keepdim=True).cpu().numpy()[0]) / n for k in topk]


def cb_recall_at_k(scores, positive_pairs, k):
    nb_texts, nb_images = scores.shape
    topk_indices = torch.topk(scores, k, dim=1)[1]
    nb_positive = positive_pairs.sum(dim=1)
    topk_indices_onehot = torch.nn.functional.one_hot(topk_indices, num_classes=nb_images)
    positive_pairs_reshaped = positive_pairs.view(nb_texts, 1, nb_images)
    nb_true_positive = (topk_indices_onehot * positive_pairs_reshaped).sum(dim=(1, 2))
    return nb_true_positive / nb_positive


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zeroshot_classification_matches(seed):
    g = torch.Generator().manual_seed(seed)
    n, c, t, d = 400, 12, 5, 16
    prompts = F.normalize(torch.randn(c, t, d, generator=g), dim=-1)
    images = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    target = torch.randint(0, c, (n,), generator=g)
    logits = 100.0 * images @ cb_classifier(prompts)
    acc1, acc5 = cb_accuracy(logits, target, topk=(1, 5))
    mpcr = balanced_accuracy_score(target, logits.argmax(axis=1))

    ours = zeroshot_metrics(images.numpy(), class_embeddings(prompts.numpy()), target.numpy())
    assert ours["acc1"] == pytest.approx(acc1, abs=1e-12)
    assert ours["acc5"] == pytest.approx(acc5, abs=1e-12)
    assert ours["mean_per_class_recall"] == pytest.approx(mpcr, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_matches(seed):
    g = torch.Generator().manual_seed(seed)
    n_images, d = 60, 8
    captions_per_image = torch.randint(1, 6, (n_images,), generator=g)
    texts_image_index = torch.repeat_interleave(torch.arange(n_images), captions_per_image)
    images = F.normalize(torch.randn(n_images, d, generator=g), dim=-1)
    texts = F.normalize(images[texts_image_index] + 0.8 * torch.randn(len(texts_image_index), d, generator=g), dim=-1)
    scores = texts @ images.t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), texts_image_index] = True

    ours = retrieval_metrics(images.numpy(), texts.numpy(), texts_image_index.numpy(), ks=(1, 5, 10))
    for k in (1, 5, 10):
        image_r = (cb_recall_at_k(scores, positive_pairs, k) > 0).float().mean().item()
        text_r = (cb_recall_at_k(scores.T, positive_pairs.T, k) > 0).float().mean().item()
        assert ours[f"image_retrieval_recall@{k}"] == pytest.approx(image_r, abs=1e-6)
        assert ours[f"text_retrieval_recall@{k}"] == pytest.approx(text_r, abs=1e-6)
    assert 0.05 < ours["image_retrieval_recall@1"] < 0.95  # a non-trivial case
