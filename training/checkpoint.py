"""Training checkpoints (a directory Ray Train persists) and the open_clip `local-dir` export.

A checkpoint directory holds `state.pt` (model and optimizer state dicts, progress counters) and
`progress.json` (the counters, human-readable). Model weights are always the unwrapped, uncompiled module's, so
keys never carry `module.` or `_orig_mod.` prefixes. Export writes exactly what
`open_clip.create_model_and_transforms("local-dir:PATH")` reads: `open_clip_config.json` ({model_cfg,
preprocess_cfg}) and `open_clip_model.safetensors` (written by `evaluation.models.export_local_dir`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from evaluation.models import CONFIG_NAME, WEIGHTS_NAME, export_local_dir

STATE_FILE = "state.pt"
PROGRESS_FILE = "progress.json"


def save_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, progress: dict):
    """Write `state.pt` + `progress.json` into `directory` (which Ray then uploads to storage)."""
    directory = Path(directory)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "progress": dict(progress)}
    torch.save(state, directory / STATE_FILE)
    (directory / PROGRESS_FILE).write_text(json.dumps(progress, indent=1, sort_keys=True))


def load_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load model and optimizer state from a checkpoint directory in place; returns the progress counters.

    A checkpoint from a different architecture is a `ValueError` naming the mismatching keys, not a
    half-loaded model.
    """
    device = next(model.parameters()).device
    state = torch.load(Path(directory) / STATE_FILE, map_location=device, weights_only=True)
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"checkpoint in {directory} does not fit model: {str(e)[:400]}") from None
    optimizer.load_state_dict(state["optimizer"])
    return dict(state["progress"])


def export_model(fs: Any, dest: str, model: torch.nn.Module, model_cfg: dict) -> None:
    """Export `model` as an open_clip local-dir at `dest` on pyarrow filesystem `fs` (local or S3); on object
    storage it is written to a local temporary directory first, then copied."""
    import pyarrow.fs as pafs

    if isinstance(fs, pafs.LocalFileSystem):
        export_local_dir(model, model_cfg, dest)
        return
    with tempfile.TemporaryDirectory(prefix="clipforge-export-") as tmp:
        export_local_dir(model, model_cfg, tmp)
        fs.create_dir(dest, recursive=True)
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            pafs.copy_files(str(Path(tmp) / name), f"{dest}/{name}", pafs.LocalFileSystem(), fs)
