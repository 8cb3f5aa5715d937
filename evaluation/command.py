"""`clipforge eval`'s logic: config file + `--set` + shortcut flags -> `EvalConfig` -> results on disk.

Kept out of `pipeline/cli.py` so the CLI function stays a thin shell and this stays testable without typer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluation.config import EvalConfig
from evaluation.errors import EvaluationError
from pipeline.core.config import apply_overrides, read_yaml, validate_config


def checkpoint_settings(path: str) -> dict[str, Any]:
    """`--checkpoint PATH` as config keys: a directory is `model: local-dir:PATH`, a file is `checkpoint: PATH`."""
    p = Path(path)
    if p.is_dir():
        return {"model": f"local-dir:{p}", "checkpoint": None}
    if p.is_file():
        return {"checkpoint": str(p)}
    raise EvaluationError(f"--checkpoint {path!r} does not exist (give a local-dir export or a weights file).")


def load_eval_config(
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    checkpoint: str | None = None,
    model: str | None = None,
    benchmarks: str | None = None,
    output: str | Path | None = None,
    use_ray: bool = False,
    num_gpus: float | None = None,
) -> EvalConfig:
    """The resolved config: file (or defaults), then `--set` overrides, then the flags, which win."""
    data = apply_overrides(read_yaml(config) if config is not None else {}, overrides or [])
    source = repr(str(config)) if config is not None else "the built-in defaults"
    flags: dict[str, Any] = {}
    if model is not None:
        flags["model"] = model
    if checkpoint is not None:
        flags.update(checkpoint_settings(checkpoint))
    if benchmarks is not None:
        flags["benchmarks"] = [b.strip() for b in benchmarks.split(",") if b.strip()]
    if output is not None:
        flags["output_dir"] = str(output)
    data.update(flags)
    if use_ray or num_gpus is not None:
        ray = dict(data.get("ray") or {}, enabled=True)
        if num_gpus is not None:
            ray["num_gpus"] = num_gpus
        data["ray"] = ray
    if flags or use_ray or num_gpus is not None:
        source += " with command-line flags"
    return validate_config(EvalConfig, data, source)


def run_eval(cfg: EvalConfig, say: Callable[[str], None] | None = None) -> tuple[Path, str]:
    """Evaluate (here, or as a Ray task when `cfg.ray.enabled`), write the results; returns (output dir, Markdown).
    `say` gets progress lines (one per finished result; one line for a Ray task); None is quiet."""
    from evaluation.report import progress_line, results_markdown, write_results
    from evaluation.run import evaluate, evaluate_on_ray

    if say:
        where = f"as a Ray task ({cfg.ray.num_gpus:g} GPU)" if cfg.ray.enabled else f"(device: {cfg.device})"
        say(f"evaluating {cfg.model} on {', '.join(cfg.benchmarks)} {where}")
    if cfg.ray.enabled:
        results = evaluate_on_ray(cfg)
    else:
        results = evaluate(cfg, on_record=(lambda r: say(progress_line(r))) if say else None)
    out = write_results(results, cfg.output_dir, cfg)
    return out, results_markdown(results)
