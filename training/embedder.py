"""Embedding stored images and captions with an open_clip model, for the build's model-based curation (#22).

Loads through `evaluation.models.load_model` (a `local-dir:` export, or a config name with a local weights file;
nothing is downloaded) and runs batched forward passes under `inference_mode`, with bf16 autocast on CUDA. Images
are the run's stored (already resized) encoded bytes. Never touches Ray: `pipeline.stages.embed` runs it in actors.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evaluation.errors import EvaluationError
from evaluation.models import LOCAL_DIR, LoadedModel, load_model
from pipeline.core.errors import ClipforgeError


@dataclass(frozen=True)
class ModelRef:
    """Which model to load: a `local-dir:PATH` export, or an open_clip config name plus a local weights file."""

    model: str
    checkpoint: str | None = None
    device: str = "auto"


def load_embedder(ref: ModelRef) -> LoadedModel:
    """The model of `ref` in eval mode; a missing or unloadable file is a `ClipforgeError` (exit 2). A config name
    needs a weights file: a randomly initialised filter model would silently curate with noise."""
    if not ref.model.startswith(LOCAL_DIR) and not ref.checkpoint:
        raise ClipforgeError(
            f"embed.model {ref.model!r} is a config name without embed.checkpoint: give a local weights file, or "
            "a local-dir:PATH export (nothing is downloaded)"
        )
    try:
        return load_model(ref.model, ref.checkpoint, device=ref.device)
    except EvaluationError as e:
        raise ClipforgeError(f"embed.model: {e}") from None


def embedding_dim(loaded: LoadedModel) -> int:
    """Width of the model's joint embedding space (what `embed_*` return per row)."""
    proj = getattr(loaded.model, "text_projection", None)
    if proj is not None:
        return int(proj.shape[1] if isinstance(proj, torch.Tensor) else proj.out_features)
    return int(loaded.model.visual.output_dim)


def _autocast(device: torch.device):
    # bf16 on CUDA (open_clip's `--precision amp_bf16`); fp32 on CPU, where bf16 matmuls are slower on most cores
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def decode(images: list[bytes]) -> list[Image.Image]:
    """Encoded image bytes → RGB PIL images (the run stores only images that decoded at download)."""
    return [Image.open(io.BytesIO(b)).convert("RGB") for b in images]


def embed_image_bytes(loaded: LoadedModel, images: list[bytes], batch_size: int = 256) -> np.ndarray:
    """L2-normalised image embeddings, float32 [len(images), D], in order."""
    device = torch.device(loaded.device)
    out = [np.zeros((0, embedding_dim(loaded)), np.float32)]
    with torch.inference_mode(), _autocast(device):
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([loaded.preprocess(im) for im in decode(images[start : start + batch_size])])
            feats = loaded.model.encode_image(pixels.to(device, non_blocking=True))
            out.append(F.normalize(feats.float(), dim=-1).cpu().numpy())
    return np.concatenate(out)


def embed_captions(loaded: LoadedModel, captions: list[str], batch_size: int = 256) -> np.ndarray:
    """L2-normalised caption embeddings, float32 [len(captions), D], in order."""
    device = torch.device(loaded.device)
    out = [np.zeros((0, embedding_dim(loaded)), np.float32)]
    with torch.inference_mode(), _autocast(device):
        for start in range(0, len(captions), batch_size):
            tokens = loaded.tokenizer(captions[start : start + batch_size]).to(device)
            out.append(F.normalize(loaded.model.encode_text(tokens).float(), dim=-1).cpu().numpy())
    return np.concatenate(out)
