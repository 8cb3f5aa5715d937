"""Configs of the model-based curation stages (#22): `embed.*`, `clip_filter.*`, `semdedup.*`; no behaviour here
(kept apart from the stages so `pipeline.build_config` imports no stage machinery)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.core.config import StrictModel


class EmbedConfig(StrictModel):
    """embed stage: which open_clip model embeds the downloaded images and captions, and how it runs."""

    model: str = ""
    """`local-dir:PATH` (an open_clip export: a `clipforge train` run's export/ or any local open_clip weights) or an
    open_clip config name (configs/models/*.json or built in) with `checkpoint`. Nothing is downloaded."""
    checkpoint: str | None = None
    """Local weights file (.pt/.bin/.safetensors) for a config-name `model`; none for a local-dir."""
    batch_size: int = Field(256, ge=1)
    """Images (and captions) per forward pass."""
    num_gpus: float = Field(1.0, gt=0, le=8)
    """GPUs per embedding actor when the cluster has GPUs (fractional shares one GPU between actors, e.g. 0.5);
    without GPUs the actors run on CPU."""
    device: Literal["auto", "cpu"] = "auto"
    """auto: CUDA (bf16 autocast) in an actor that was given a GPU, CPU otherwise; cpu: never a GPU."""


class ClipFilterConfig(StrictModel):
    """clip_filter stage: keep pairs whose image and caption agree. Exactly one of `threshold`, `keep_fraction`."""

    threshold: float | None = Field(None, ge=-1, le=1)
    """Keep rows with cosine(image, caption) ≥ this (DataComp: 0.25 with OpenAI's B/32; a tiny model scores lower)."""
    keep_fraction: float | None = Field(None, gt=0, le=1)
    """Keep the top fraction of the run's embedded rows by score (a barrier computes the quantile; DataComp: 0.3)."""

    def check(self) -> None:
        """Raise unless exactly one rule is set (checked when the clip_filter stage runs)."""
        if (self.threshold is None) == (self.keep_fraction is None):
            raise ValueError("the clip_filter stage needs exactly one of clip_filter.threshold and keep_fraction")


class SemDedupConfig(StrictModel):
    """semdedup stage: drop rows whose image embedding has cosine ≥ 1 − eps to a kept row of its k-means cluster."""

    eps: float = Field(0.05, ge=0, lt=1)
    """Duplicate threshold: cosine ≥ 1 − eps (SemDeDup's ε; the paper sweeps 0.0–0.3 on LAION)."""
    n_clusters: int = Field(100, ge=1)
    """k-means clusters (capped at the row count); more clusters: less work per cluster, more missed pairs that fall
    on both sides of a boundary. SemDeDup used 50,000 for 440M images."""
    seed: int = Field(0, ge=0)
    """k-means seed (sample and initialisation)."""
