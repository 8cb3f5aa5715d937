"""Loading open_clip models for evaluation, registering our JSON model configs, exporting local-dir checkpoints.

Nothing here downloads: a model is a registered config name (random init, or weights from a local .pt /
.safetensors file) or `local-dir:PATH` (open_clip's `open_clip_config.json` + weights). Errors a user can fix are
`EvaluationError`s naming the path or name. Training imports `register_model_configs` and `export_local_dir`.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch

from evaluation.errors import EvaluationError

MODELS_DIR = Path(__file__).resolve().parents[1] / "configs" / "models"
LOCAL_DIR = "local-dir:"
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
log = logging.getLogger(__name__)


def register_model_configs(*dirs: str | Path) -> list[str]:
    """Register every `*.json` model config in `dirs` (default: configs/models) with open_clip; idempotent.

    Returns the names (file stems) found. A name open_clip already knows is not re-added, so calling this in every
    worker process, any number of times, is cheap.
    """
    known = set(open_clip.list_models())
    names = []
    for d in dirs or (MODELS_DIR,):
        for path in sorted(Path(d).glob("*.json")):
            if path.stem not in known:
                open_clip.add_model_config(path)
                known.add(path.stem)
            names.append(path.stem)
    return names


@dataclass
class LoadedModel:
    """An open_clip model in eval mode with its validation transform and tokenizer."""

    model: torch.nn.Module
    preprocess: Callable
    """PIL image -> float tensor [3, H, W] (open_clip's validation transform)."""
    tokenizer: Callable
    """list[str] -> LongTensor [B, context_length]."""
    name: str
    checkpoint: str | None
    random_init: bool
    device: str


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else is returned as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _check_local_dir(path: Path) -> None:
    if not path.is_dir():
        raise EvaluationError(f"checkpoint directory {str(path)!r} (model: local-dir:...) does not exist.")
    if not (path / CONFIG_NAME).is_file():
        raise EvaluationError(f"checkpoint directory {str(path)!r} has no {CONFIG_NAME} (open_clip local-dir format).")
    if not any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir()):
        raise EvaluationError(
            f"checkpoint directory {str(path)!r} has no weights file (expected {WEIGHTS_NAME} or another "
            f"{'/'.join(WEIGHT_SUFFIXES)} file beside {CONFIG_NAME})."
        )


def _check_name(name: str, checkpoint: str | None) -> None:
    if open_clip.get_model_config(name) is None:
        ours = ", ".join(register_model_configs())
        raise EvaluationError(
            f"unknown model {name!r} (model): use an open_clip config name (ours: {ours}) or local-dir:PATH."
        )
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise EvaluationError(f"checkpoint file {checkpoint!r} (checkpoint) does not exist.")


def load_model(name: str, checkpoint: str | None = None, device: str = "auto", seed: int = 0) -> LoadedModel:
    """Build `name` (config name or `local-dir:PATH`) on `device`, weights from `checkpoint` or the local dir.

    A config name without `checkpoint` is randomly initialised from `seed` (`random_init=True`; the global torch
    RNG is left as it was), which is a baseline, not an error. open_clip's own failures (a state dict that does
    not fit the config) become `EvaluationError`s.
    """
    register_model_configs()
    device = resolve_device(device)
    if name.startswith(LOCAL_DIR):
        _check_local_dir(Path(name[len(LOCAL_DIR) :]))
        if checkpoint is not None:
            raise EvaluationError(
                f"checkpoint {checkpoint!r} given with model {name!r}: a local-dir holds its weights."
            )
    else:
        _check_name(name, checkpoint)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=checkpoint, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, ValueError, KeyError, OSError, EOFError, pickle.UnpicklingError) as e:  # a corrupt file
        where = checkpoint or name
        raise EvaluationError(f"could not load model {name!r} from {where!r}: {e}") from None
    model.eval()
    random_init = checkpoint is None and not name.startswith(LOCAL_DIR)
    return LoadedModel(model, preprocess, tokenizer, name, checkpoint, random_init, device)


def preprocess_config(model: torch.nn.Module) -> dict[str, Any]:
    """The JSON-ready `preprocess_cfg` of an open_clip model (mean, std, interpolation, resize_mode, size)."""
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}))
    keep = ("mean", "std", "interpolation", "resize_mode", "size")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items() if k in keep}


def export_local_dir(model: torch.nn.Module, model_cfg: dict[str, Any], path: str | Path) -> Path:
    """Write `path/open_clip_config.json` ({model_cfg, preprocess_cfg}) and `path/open_clip_model.safetensors`.

    The result loads with `open_clip.create_model_and_transforms("local-dir:PATH")`, CLIP_benchmark's
    `--model local-dir:PATH`, and `load_model`. Weights are saved from CPU copies, contiguous, in their dtype.
    """
    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_config(model)}
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2), encoding="utf-8")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS_NAME))
    return out


def export_random_local_dir(name: str, path: str | Path, seed: int = 0) -> Path:
    """Randomly initialise config `name` (seeded) and export it as a local-dir; for tests and benchmarks."""
    register_model_configs()
    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise EvaluationError(f"unknown model {name!r}: no open_clip config of that name.")
    torch.manual_seed(seed)
    root = logging.getLogger()
    level, root.level = root.level, max(root.level, logging.ERROR)  # "initialized randomly" is the point here
    try:
        model = open_clip.create_model(name, pretrained=None)
    finally:
        root.setLevel(level)
    return export_local_dir(model, model_cfg, path)
