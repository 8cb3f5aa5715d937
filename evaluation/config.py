"""`EvalConfig`: what `clipforge eval` evaluates, on which benchmarks, where results go. Pure data, no I/O.

Loaded with `pipeline.core.config.load_config(EvalConfig, path, overrides)`; unknown keys and unknown benchmark names
are rejected at load time with a message naming the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from evaluation.datasets import parse_benchmark_spec
from evaluation.errors import EvaluationError
from evaluation.linear_probe import DEFAULT_C_GRID
from pipeline.core.config import StrictModel

Task = Literal["zeroshot_classification", "zeroshot_retrieval", "linear_probe"]
ALL_TASKS: tuple[str, ...] = ("zeroshot_classification", "zeroshot_retrieval", "linear_probe")


def check_benchmark_specs(specs: list[str]) -> list[str]:
    """`specs` if every one parses as a benchmark `clipforge eval` accepts and none is listed twice, else a
    `ValueError` naming it (pydantic validators of the eval and train configs)."""
    for spec in specs:
        try:
            parse_benchmark_spec(spec)
        except EvaluationError as e:
            raise ValueError(str(e)) from None
    if len(set(specs)) != len(specs):
        raise ValueError(f"benchmarks listed twice: {sorted({s for s in specs if specs.count(s) > 1})}")
    return specs


class LinearProbeConfig(StrictModel):
    """Logistic-regression probe settings."""

    c_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_C_GRID), min_length=1)
    """Inverse regularisation strengths tried on the validation split (20 % of each train class)."""
    max_iter: int = Field(default=1000, gt=0)
    """L-BFGS iterations per fit."""


class RayEvalConfig(StrictModel):
    """Run the evaluation as one Ray task (e.g. on a cluster GPU) instead of in this process."""

    enabled: bool = False
    """Wrap the evaluation in `ray.remote(num_gpus=..., num_cpus=...)`; results come back to this process."""
    address: str | None = None
    """Ray address to join; None: RAY_ADDRESS or a local Ray."""
    num_gpus: float = Field(default=0.0, ge=0)
    """GPUs the task reserves (1 on a GPU cluster); the model then runs on CUDA when `device` is auto."""
    num_cpus: float = Field(default=1.0, gt=0)
    """CPUs the task reserves."""


class EvalConfig(StrictModel):
    """Evaluate one open_clip checkpoint on a list of benchmarks."""

    model: str = "clipforge-tiny"
    """open_clip model config name (ours in configs/models/ included) or `local-dir:PATH` (open_clip_config.json +
    weights, as training exports it)."""
    checkpoint: str | None = None
    """Weights file (.pt/.pth/.bin/.safetensors) for a config-name `model`; None with a config name: random init
    (a chance-level baseline)."""
    seed: int = 0
    """Seed of the random init when no weights are loaded (so a baseline is the same model every run)."""
    benchmarks: list[str] = Field(default_factory=lambda: ["digits"], min_length=1)
    """Benchmark specs: `digits`, `synthetic:PATH`, `imagefolder:PATH`, `wds:PATH`, `captions:PATH`."""
    tasks: list[Task] = Field(default_factory=lambda: list(ALL_TASKS), min_length=1)
    """Tasks to run where a benchmark supports them (classification sets: zero-shot and linear probe; caption
    sets: retrieval)."""
    output_dir: str = "eval-out"
    """Where results.json, results.md and the resolved config.yaml are written."""
    device: str = "auto"
    """'auto' (CUDA when visible, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    batch_size: int = Field(default=256, gt=0)
    """Images (or prompts) per forward pass."""
    num_workers: int | None = Field(default=None, ge=0)
    """DataLoader worker processes decoding and preprocessing images while the model runs (0: in this process);
    None: one per usable core beyond the first, at most 4 (1 on a 2-core machine)."""
    amp: bool = False
    """Autocast (fp16 on CUDA, bf16 on CPU) like CLIP_benchmark's default; off gives the fp32 reference numbers."""
    max_samples: int | None = Field(default=None, gt=0)
    """Cap on test samples per benchmark (evenly spaced); None: all."""
    recall_k: list[int] = Field(default_factory=lambda: [1, 5, 10], min_length=1)
    """k values of the retrieval recall@k metrics."""
    linear_probe: LinearProbeConfig = Field(default_factory=LinearProbeConfig)
    ray: RayEvalConfig = Field(default_factory=RayEvalConfig)

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, specs: list[str]) -> list[str]:
        return check_benchmark_specs(specs)

    @field_validator("recall_k")
    @classmethod
    def _positive_k(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError(f"recall_k values must be >= 1, got {ks}")
        return ks
