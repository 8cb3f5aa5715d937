"""Evaluation inside a training run: `clipforge eval`'s code path (`evaluation.run.evaluate_benchmark`) on rank 0's
live model every `eval.every_steps` and at the last step.

The benchmarks are loaded once per (re)start; the model is evaluated in eval mode in fp32 with open_clip's
validation transform, so the numbers at the last step equal those `clipforge eval` gives on the exported model.
Results become flat metrics `eval/<benchmark>/<key>` (CLIP_benchmark keys: acc1, acc5, mean_per_class_recall,
image_retrieval_recall@k, text_retrieval_recall@k). No Ray, no torch.distributed here.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from evaluation.config import EvalConfig
from evaluation.datasets import load_benchmark
from evaluation.models import LoadedModel
from evaluation.run import evaluate_benchmark
from training.config import TrainConfig
from training.model import BuiltModel, get_tokenizer

TASKS = ["zeroshot_classification", "zeroshot_retrieval"]


def eval_due(cfg: TrainConfig, step: int) -> bool:
    """True at the steps where the run evaluates: every `eval.every_steps` and the last step (never when off)."""
    every = cfg.eval.every_steps
    return every is not None and (step % every == 0 or step == cfg.steps)


def eval_config(cfg: TrainConfig, model: str, device: str) -> EvalConfig:
    """The `clipforge eval` config that gives the same numbers as the run's evaluation of `model`."""
    e = cfg.eval
    return EvalConfig(
        model=model,
        benchmarks=e.benchmarks,
        tasks=TASKS,
        max_samples=e.max_images,
        batch_size=e.batch_size,
        num_workers=0,  # no DataLoader processes forked from a training worker
        device=device,
    )


def metric_prefix(name: str) -> str:
    """`eval/<name>/` with the benchmark name made a safe TensorBoard tag (`captions:val` -> `captions_val`)."""
    return f"eval/{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}/"


class RunEvaluator:
    """Rank 0's evaluator: holds the loaded benchmarks, the validation transform and the tokenizer."""

    def __init__(self, cfg: TrainConfig, built: BuiltModel, device: torch.device):
        from open_clip.transform import PreprocessCfg, image_transform_v2

        self.cfg = eval_config(cfg, cfg.model.name, str(device))
        # what open_clip.create_model_and_transforms (and so `clipforge eval`) builds as the validation transform
        self.preprocess = image_transform_v2(PreprocessCfg(**built.preprocess_cfg), is_train=False)
        self.tokenizer = get_tokenizer(cfg.model.name)
        self.benches = [load_benchmark(spec, self.cfg.max_samples) for spec in self.cfg.benchmarks]
        self.device = str(device)

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """Evaluate `model` (unwrapped; its train/eval mode is restored) on every benchmark; flat metrics."""
        lm = LoadedModel(model, self.preprocess, self.tokenizer, self.cfg.model, None, False, self.device)
        out: dict[str, float] = {}
        for bench in self.benches:
            for record in evaluate_benchmark(lm, bench, self.cfg):
                out.update(flat_metrics(bench.name, record))
        return out


def flat_metrics(benchmark: str, record: dict[str, Any]) -> dict[str, float]:
    """One result record's metrics as `eval/<benchmark>/<key>` floats."""
    prefix = metric_prefix(benchmark)
    return {prefix + k: float(v) for k, v in record["metrics"].items() if isinstance(v, int | float)}
