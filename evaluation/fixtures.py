"""Test and benchmark helpers: make a random-init open_clip model non-trivial without training. Not for results.

`fit_visual_projection` replaces a ViT's final image projection with the ridge-regression map from its pooled
features to the (normalised) class embeddings of each image's label. The model then classifies zero-shot well
above chance with real, varied and sometimes close logits — what a metric-agreement check needs — in seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from evaluation.datasets import Benchmark
from evaluation.embed import embed_prompts
from evaluation.zeroshot import class_embeddings


def pooled_features(
    model: torch.nn.Module, preprocess: Callable, bench: Benchmark, batch_size: int = 256
) -> np.ndarray:
    """Image-tower outputs before the final projection, float64 [N_train, width], for `bench.train`."""
    visual = model.visual
    proj, visual.proj = visual.proj, None  # open_clip's VisionTransformer skips the projection when it is None
    try:
        out = []
        with torch.no_grad():
            for start in range(0, len(bench.train), batch_size):
                idx = range(start, min(start + batch_size, len(bench.train)))
                out.append(visual(torch.stack([preprocess(bench.train.images[i]) for i in idx])))
        return torch.cat(out).double().numpy()
    finally:
        visual.proj = proj


def fit_visual_projection(
    model: torch.nn.Module, tokenizer: Callable, preprocess: Callable, bench: Benchmark, ridge: float = 1e-3
) -> torch.nn.Module:
    """Set `model.visual.proj` (in place) to the ridge solution W of F W ≈ T on `bench.train`; returns the model.

    F: standardised-free pooled features [N, width]; T: class embedding of each sample's label [N, D]. The ridge
    term is `ridge * trace(F^T F) / width` so it scales with the features.
    """
    feats = pooled_features(model, preprocess, bench)
    classes = class_embeddings(embed_prompts(model, tokenizer, bench.classnames, bench.templates))
    targets = classes[bench.train.labels].astype(np.float64)
    gram = feats.T @ feats
    lam = ridge * np.trace(gram) / gram.shape[0]
    w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), feats.T @ targets)
    with torch.no_grad():
        model.visual.proj.copy_(torch.from_numpy(w).to(model.visual.proj.dtype))
    return model
