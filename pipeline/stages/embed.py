"""Ray Data stage: image and caption embeddings of the downloaded rows, per download part, stored in the run (#22).

`EmbedPartStage` (an actor: the model stays resident; `num_gpus` per actor when the cluster has GPUs, CPU
otherwise) takes one download part, applies the dedup decisions to it, embeds the live rows' stored (already
resized) images and their captions in batches (`training.embedder`), and commits
RUN/embeddings/parts/part-NNNNNN.parquet (`embedding_schema`, float16). A part's file is its commit marker: a
re-run embeds only parts without one.
RUN/embeddings/model.json records the model and its embedding width; a resumed run whose model has another width
stops before any work (`check_stored_width`). No filtering here: `clip_filter` and `semdedup` read these files.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.config import StrictModel
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, Uri, open_write, read_bytes
from pipeline.rundir import RunDir
from pipeline.stages.base import CPU_HEAVY, Resources, StageChain, StageSpec, apply_stage, live_mask
from pipeline.stages.download_parts import committed_parts, part_name
from pipeline.stages.model_configs import EmbedConfig

EMBED_DIR = "embeddings"
PARTS_DIR = "embeddings/parts"
MODEL_FILE = "model.json"


def embedding_schema(dim: int) -> pa.Schema:
    """RUN/embeddings/parts/part-NNNNNN.parquet: one row per embedded uid (sorted), L2-normalised, float16 [dim]."""
    vec = pa.list_(pa.float16(), dim)
    return pa.schema([("uid", pa.string()), ("image_emb", vec), ("text_emb", vec)])


def model_ref(cfg: EmbedConfig, device: str = "cpu"):
    from training.embedder import ModelRef

    return ModelRef(cfg.model, cfg.checkpoint, device)


def check_model(cfg: EmbedConfig) -> int:
    """Load the configured model once on CPU (preflight: a missing or unloadable file exits 2 before any work) and
    return its embedding width."""
    from training.embedder import embedding_dim, load_embedder

    return embedding_dim(load_embedder(model_ref(cfg)))


def check_stored_width(run: RunDir, cfg: EmbedConfig, dim: int) -> None:
    """A run that already holds embeddings of another width (the model files changed under a resumed run) is a
    `ClipforgeError` before any work."""
    if not run.exists(EMBED_DIR, MODEL_FILE):
        return
    stored = run.read_json(f"{EMBED_DIR}/{MODEL_FILE}")
    if int(stored["dim"]) != dim:
        raise ClipforgeError(
            f"embed.model {cfg.model!r} embeds to width {dim}, but {run.path(EMBED_DIR)} holds embeddings of width "
            f"{stored['dim']} (model {stored['model']!r}); restore that model or re-run with --overwrite"
        )


class EmbedPartsConfig(StrictModel):
    """What one embedding actor needs: the model, where parts are read and committed, the dedup decisions."""

    embed: EmbedConfig
    download_dir: str
    """RUN/work/download (the parts of `pipeline.stages.download_parts`)."""
    out_dir: str
    """RUN/embeddings/parts."""
    dim: int
    before: list[StageSpec] = []
    """Stages applied to a part before embedding (the dedup rejects): only rows still live are embedded."""
    s3: S3Options = S3Options()

    model_config = {**StrictModel.model_config, "arbitrary_types_allowed": True}


PART_SUMMARY = pa.schema([("part", pa.int64()), ("rows", pa.int64()), ("seconds", pa.float64())])


class EmbedPartStage:
    """A batch of part numbers → each part's embeddings committed; returns one summary row per part."""

    name = "embed"
    resources: Resources = Resources(CPU_HEAVY.num_cpus, actors=True)

    def __init__(self, config: EmbedPartsConfig) -> None:
        import torch

        from training.embedder import load_embedder

        self.config = config
        gpu = config.embed.device == "auto" and torch.cuda.is_available()  # Ray exposes only the actor's GPU(s)
        self.loaded = load_embedder(model_ref(config.embed, "cuda" if gpu else "cpu"))
        self.before = StageChain(config.before)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for part in batch["part"].to_pylist():
            t0 = time.monotonic()
            n = self.commit(int(part))
            rows.append({"part": part, "rows": n, "seconds": round(time.monotonic() - t0, 3)})
        return pa.Table.from_pylist(rows, schema=PART_SUMMARY)

    def embed_rows(self, rows: pa.Table) -> pa.Table:
        """Live rows with an image → `embedding_schema` rows (same order)."""
        from training.embedder import embed_captions, embed_image_bytes

        bs = self.config.embed.batch_size
        image = embed_image_bytes(self.loaded, rows["image"].to_pylist(), bs)
        text = embed_captions(self.loaded, [c or "" for c in rows["caption"].to_pylist()], bs)
        return pa.table([rows["uid"], _vectors(image), _vectors(text)], schema=embedding_schema(self.config.dim))

    def commit(self, part: int) -> int:
        """Embed download part `part`'s live rows and commit the part's file; returns the rows embedded."""
        data = read_bytes(str(Uri.parse(self.config.download_dir).join(part_name(part))), self.config.s3)
        table = pq.read_table(pa.BufferReader(data))  # the dedup stages read their own columns (phash, uid)
        table = self.before(table)
        live = live_mask(table) & pc.is_valid(table["image"]).to_numpy(zero_copy_only=False)
        rows = table.filter(pa.array(live))
        rows = rows.take(pc.sort_indices(rows, [("uid", "ascending")]))
        out = self.embed_rows(rows)
        with open_write(Uri.parse(self.config.out_dir).join(part_name(part)), self.config.s3) as f:
            pq.write_table(out, f)
        return out.num_rows


def _vectors(x: np.ndarray) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(x, dtype=np.float16).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])


def embed_resources(cfg: EmbedConfig) -> Resources:
    """Actors ask for `cfg.num_gpus` each when the cluster has GPUs (as many actors as the GPUs hold), else CPU."""
    import ray

    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if cfg.device == "auto" and gpus > 0:
        return Resources(CPU_HEAVY.num_cpus, num_gpus=cfg.num_gpus, max_actors=max(1, math.floor(gpus / cfg.num_gpus)))
    return EmbedPartStage.resources


def embed_parts(cfg: EmbedConfig, run: RunDir, before: list[StageSpec], dim: int, say, track=None, s3=None) -> dict:
    """Embed every committed download part that has no embeddings file yet; returns {parts, embedded_before,
    embedded_now, rows}. Records RUN/embeddings/model.json first (the width a resumed run is checked against)."""
    import ray

    check_stored_width(run, cfg, dim)
    if not run.exists(EMBED_DIR, MODEL_FILE):
        run.write_json(f"{EMBED_DIR}/{MODEL_FILE}", {"model": cfg.model, "checkpoint": cfg.checkpoint, "dim": dim})
    out_dir, download_dir = run.path(PARTS_DIR), run.path("work", "download")
    parts = committed_parts(download_dir, s3)
    before_now = committed_parts(out_dir, s3) & parts
    pending = sorted(parts - before_now)
    res = embed_resources(cfg)
    where = f"{res.num_gpus:g} GPU per actor" if res.num_gpus else "CPU"
    say(f"embed: {len(parts)} parts; {len(before_now)} embedded by an earlier run, {len(pending)} to embed ({where})")
    if track:
        track(lambda: (len(committed_parts(out_dir, s3) & parts), len(parts), "parts"))
    if pending:
        stage_cfg = EmbedPartsConfig(
            embed=cfg, download_dir=download_dir, out_dir=out_dir, dim=dim, before=list(before), s3=s3 or S3Options()
        )
        spec = StageSpec(EmbedPartStage, stage_cfg, batch_size=1, resources=res)
        ds = ray.data.from_items([{"part": p} for p in pending], override_num_blocks=len(pending))
        apply_stage(ds, spec).materialize()
    missing = parts - committed_parts(out_dir, s3)
    if missing:
        raise ClipforgeError(f"embedding parts {sorted(missing)[:10]} were not committed; re-run to finish them")
    rows = read_embeddings(run, ["uid"]).num_rows
    return {"parts": len(parts), "embedded_before": len(before_now), "embedded_now": len(pending), "rows": rows}


def read_embeddings(run: RunDir, columns: list[str]) -> pa.Table:
    """`columns` of every committed embeddings part, sorted by uid (the barriers' input; float16 vectors)."""
    import pyarrow.dataset as pads

    if not run.exists(PARTS_DIR):
        return embedding_schema(1).empty_table().select(columns)
    fs, path = run.fs(PARTS_DIR)
    table = pads.dataset(path, filesystem=fs, format="parquet").to_table(columns=columns)
    return table.take(pc.sort_indices(table, [("uid", "ascending")]))
