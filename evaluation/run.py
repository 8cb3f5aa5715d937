"""Evaluation runner: model + benchmarks -> CLIP_benchmark-shaped result records. Embeds, then scores.

`evaluate(cfg)` runs in this process; `evaluate_on_ray(cfg)` runs the same thing as one Ray task (Ray is imported
only there); `zeroshot_quick` is the small entry point training calls every N steps on its live model.
Writing files is `evaluation.report`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from evaluation.config import EvalConfig
from evaluation.datasets import RETRIEVAL, Benchmark, fixed_split, load_benchmark
from evaluation.embed import embed_images, embed_prompts, embed_texts
from evaluation.linear_probe import linear_probe_metrics
from evaluation.models import LoadedModel, load_model
from evaluation.retrieval import flatten_captions, retrieval_chance, retrieval_metrics
from evaluation.zeroshot import class_embeddings, classification_chance, zeroshot_metrics


def zeroshot_classification(
    model: torch.nn.Module,
    tokenizer: Callable,
    preprocess: Callable,
    bench: Benchmark,
    image_embeddings: np.ndarray,
    batch_size: int = 256,
    amp: bool = False,
) -> dict[str, float]:
    """acc1, acc5, mean_per_class_recall of `bench`'s test split, given its image embeddings [N, D]."""
    prompts = embed_prompts(model, tokenizer, bench.classnames, bench.templates, batch_size, amp)
    return zeroshot_metrics(image_embeddings, class_embeddings(prompts), bench.test.labels)


def zeroshot_quick(
    model: torch.nn.Module,
    tokenizer: Callable,
    preprocess: Callable,
    benchmark: str | Benchmark = "digits",
    max_samples: int | None = 500,
    batch_size: int = 256,
    amp: bool = False,
) -> dict[str, float]:
    """Zero-shot acc1/acc5/mean_per_class_recall of a live model on a benchmark spec or a loaded `Benchmark`.

    For training's periodic eval: runs on the model's device, in eval mode under no_grad (the model's mode is
    restored), on at most `max_samples` evenly spaced test images. Pass a loaded `Benchmark` to skip re-loading.
    """
    bench = load_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    bench = bench.limit(max_samples)
    feats = embed_images(model, preprocess, bench.test.images, batch_size, amp=amp)
    return zeroshot_classification(model, tokenizer, preprocess, bench, feats, batch_size, amp)


def _probe(bench: Benchmark, test_feats: np.ndarray, cfg: EvalConfig, lm: LoadedModel) -> dict[str, Any]:
    """Linear probe on the train split's features, or, without one, on a fixed 60/40 split of the test split."""
    n_classes = len(bench.classnames)
    if bench.train is not None:
        train_feats = embed_images(
            lm.model, lm.preprocess, bench.train.images, cfg.batch_size, cfg.num_workers, cfg.amp
        )
        args = (train_feats, bench.train.labels, test_feats, bench.test.labels)
        note = None
    else:
        held = fixed_split(bench.test.labels)
        args = (test_feats[~held], bench.test.labels[~held], test_feats[held], bench.test.labels[held])
        note = "no train split: probe trained on 60 % and tested on 40 % of each test class"
    lp = cfg.linear_probe
    metrics = linear_probe_metrics(*args, n_classes=n_classes, c_grid=lp.c_grid, max_iter=lp.max_iter)
    chance = {f"lp_{k}": v for k, v in classification_chance(n_classes).items()}
    return {"metrics": metrics, "chance": chance, "n_train": len(args[1]), "n_samples": len(args[3]), "note": note}


def _retrieval(bench: Benchmark, feats: np.ndarray, cfg: EvalConfig, lm: LoadedModel) -> dict[str, Any]:
    texts, owner = flatten_captions(bench.test.captions)
    text_feats = embed_texts(lm.model, lm.tokenizer, texts, cfg.batch_size, cfg.amp)
    metrics = retrieval_metrics(feats, text_feats, owner, cfg.recall_k)
    chance = retrieval_chance(owner, len(feats), cfg.recall_k)
    return {"metrics": metrics, "chance": chance, "n_samples": len(feats), "n_texts": len(texts)}


def _record(bench: Benchmark, task: str, lm: LoadedModel, body: dict[str, Any], seconds: float) -> dict[str, Any]:
    """One result in CLIP_benchmark's output shape (dataset, model, pretrained, task, metrics) plus our details."""
    record = {"dataset": bench.name, "model": lm.name, "pretrained": lm.checkpoint or "", "task": task}
    record.update({k: v for k, v in body.items() if v is not None})
    record["seconds"] = round(seconds, 3)
    record["notes"] = list(bench.notes)
    return record


def evaluate_benchmark(lm: LoadedModel, bench: Benchmark, cfg: EvalConfig) -> list[dict[str, Any]]:
    """Every task of `cfg.tasks` that `bench` supports; image embeddings are computed once and shared."""
    start = time.perf_counter()
    feats = embed_images(lm.model, lm.preprocess, bench.test.images, cfg.batch_size, cfg.num_workers, cfg.amp)
    embed_s = time.perf_counter() - start
    records = []
    if bench.kind == RETRIEVAL:
        if "zeroshot_retrieval" in cfg.tasks:
            t0 = time.perf_counter()
            body = _retrieval(bench, feats, cfg, lm)
            records.append(_record(bench, "zeroshot_retrieval", lm, body, embed_s + time.perf_counter() - t0))
        return records
    if "zeroshot_classification" in cfg.tasks:
        t0 = time.perf_counter()
        metrics = zeroshot_classification(lm.model, lm.tokenizer, lm.preprocess, bench, feats, cfg.batch_size, cfg.amp)
        seconds = embed_s + time.perf_counter() - t0
        n_classes = len(bench.classnames)
        body = {"metrics": metrics, "chance": classification_chance(n_classes), "n_samples": len(feats)}
        body["n_classes"] = n_classes
        body.update(n_templates=len(bench.templates), images_per_s=round(len(feats) / max(seconds, 1e-9), 1))
        records.append(_record(bench, "zeroshot_classification", lm, body, seconds))
    if "linear_probe" in cfg.tasks:
        t0 = time.perf_counter()
        records.append(_record(bench, "linear_probe", lm, _probe(bench, feats, cfg, lm), time.perf_counter() - t0))
    return records


def evaluate(cfg: EvalConfig, on_record: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Load the model and every benchmark of `cfg` and evaluate them here; returns the results document.
    `on_record` gets each result record as it is done (for progress lines)."""
    import open_clip

    lm = load_model(cfg.model, cfg.checkpoint, cfg.device, cfg.seed)
    benches = [load_benchmark(spec, cfg.max_samples) for spec in cfg.benchmarks]  # fail fast on bad data
    records = []
    for spec, bench in zip(cfg.benchmarks, benches, strict=True):
        for record in evaluate_benchmark(lm, bench, cfg):
            records.append({"benchmark": spec, **record})
            if on_record:
                on_record(records[-1])
    return {
        "model": cfg.model,
        "checkpoint": cfg.checkpoint,
        "random_init": lm.random_init,
        "device": lm.device,
        "versions": {"open_clip": open_clip.__version__, "torch": torch.__version__},
        "results": records,
    }


def _evaluate_payload(cfg_data: dict[str, Any]) -> dict[str, Any]:
    """Ray task body: a plain dict in (the config), a plain dict out (the results document)."""
    return evaluate(EvalConfig.model_validate(cfg_data))


def evaluate_on_ray(cfg: EvalConfig) -> dict[str, Any]:
    """`evaluate(cfg)` as one Ray task reserving `cfg.ray.num_gpus` GPUs and `cfg.ray.num_cpus` CPUs.

    Paths in `cfg` (checkpoint, benchmarks) must be readable where the task runs. A `ClipforgeError` raised in the
    task is re-raised here as itself, so the CLI still prints one paragraph and exits 2.
    """
    import ray

    from pipeline.core.errors import ClipforgeError
    from pipeline.core.ray_setup import init_ray

    init_ray(address=cfg.ray.address)
    task = ray.remote(num_gpus=cfg.ray.num_gpus, num_cpus=cfg.ray.num_cpus, max_retries=0)(_evaluate_payload)
    data = cfg.model_dump(mode="json")
    data["ray"]["enabled"] = False
    try:
        return ray.get(task.remote(data))
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, ClipforgeError):
            raise e.cause from None
        raise
