"""Resolve a command's CONFIG + `--set` overrides with that command's own model (the app layer: it knows every
command's config). `clipforge submit` ships the result; nothing below the app layer imports this."""

from __future__ import annotations

from pathlib import Path

from infra.submit import COMMANDS
from pipeline.core.errors import ClipforgeError


def resolve_config(command: str, config: str | Path | None, overrides: list[str] | None) -> str:
    """Validate CONFIG + `--set` overrides with the command's own model; return the resolved config as YAML.

    Raises `ConfigError` (exit 2) exactly as `clipforge CMD CONFIG` would, before any cluster is contacted.
    """
    from pipeline.core.config import dump_config, load_config

    if command == "build":
        from pipeline.build_config import BuildConfig

        cfg = load_config(BuildConfig, config, overrides)
    elif command == "train":
        from training.config import TrainConfig

        cfg = load_config(TrainConfig, config, overrides)
    elif command == "eval":
        from evaluation.command import load_eval_config

        cfg = load_eval_config(config, overrides)
    else:
        raise ClipforgeError(f"unknown command {command!r}: expected one of {', '.join(COMMANDS)}.")
    return dump_config(cfg)
