"""CLIP-score filter (#22; DataComp's `clip_score` baseline): cosine(image, caption) per row from the stored
embeddings; keep rows at or above `clip_filter.threshold`, or the top `clip_filter.keep_fraction` of the run.

`clip_scores` is the barrier (the quantile needs the whole run): it scores every embedded row, picks the threshold
and writes RUN/dedup/clip_filter.parquet (uid, score of each row to drop, sorted by uid), clip_filter.json (the
threshold, counts and a score histogram, for the report) and clip_filter_thumbs.parquet (the report's lowest-scoring
dropped rows: `pipeline.stages.model_thumbs`). `ListedRejectStage` applies such a list: rows rejected
`low_clip_score` with the score in the detail. Rows without an embedding (rejected earlier) are never listed.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options
from pipeline.dedup.artifacts import read_parquet_uri, write_summary, write_table
from pipeline.rundir import RunDir
from pipeline.stages.base import CPU_LIGHT, Resources, live_mask, mark_rejected
from pipeline.stages.embed import read_embeddings
from pipeline.stages.model_configs import ClipFilterConfig
from pipeline.stages.model_thumbs import write_thumbs

HIST_BINS = 40


class ClipFilterReason(StrEnum):
    """Why the clip_filter stage rejected a row (`reject_detail`: "score=S threshold=T")."""

    low_clip_score = "low_clip_score"


def clip_scores(image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """float32 [n]: cosine of each row's image and caption embeddings ([n, D] each, any float dtype)."""
    a, b = np.asarray(image, np.float32), np.asarray(text, np.float32)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)).astype(np.float32)


def vectors(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list column → a 2-D numpy array [rows, width] (no copy per row)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = arr.type.list_size
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def choose_threshold(scores: np.ndarray, cfg: ClipFilterConfig) -> float:
    """The configured threshold, or the score of the ⌈keep_fraction × n⌉-th best row (rows ≥ it are kept; ties at
    the threshold are all kept)."""
    if cfg.threshold is not None:
        return float(cfg.threshold)
    n = len(scores)
    keep = min(n, math.ceil(float(cfg.keep_fraction) * n - 1e-9))
    if keep == 0:
        return float("inf") if n else -1.0
    return float(np.sort(scores)[n - keep])


LIST_SCHEMA = pa.schema([("uid", pa.string()), ("detail", pa.string())])
"""RUN/dedup/clip_filter.parquet and semdedup.parquet: one row per uid to reject and its reject detail, by uid."""


def clip_filter_barrier(run: RunDir, cfg: ClipFilterConfig) -> str:
    """Score every embedded row, choose the threshold, write the reject list and its summary; returns the list's
    URI. Reused as it is when a killed earlier run wrote the summary (written last)."""
    uri = run.path("dedup", "clip_filter.parquet")
    if run.exists("dedup", "clip_filter.json"):
        return uri
    emb = read_embeddings(run, ["uid", "image_emb", "text_emb"])
    scores = clip_scores(vectors(emb["image_emb"]), vectors(emb["text_emb"])) if emb.num_rows else np.zeros(0)
    thr = choose_threshold(scores, cfg)
    drop = np.flatnonzero(scores < thr)
    details = [f"score={s:.4f} threshold={thr:.4f}" for s in scores[drop]]
    table = pa.table([emb["uid"].take(pa.array(drop, pa.int64())), pa.array(details, pa.string())], schema=LIST_SCHEMA)
    write_table(run.uri.join("dedup", "clip_filter.parquet"), table, run.s3)
    write_thumbs(run, "clip_filter", table)  # the report's lowest-scoring dropped pairs (their images die with work/)
    hist, edges = np.histogram(scores, bins=HIST_BINS, range=(-1.0, 1.0)) if len(scores) else (np.zeros(0), [])
    summary = {"scored": int(len(scores)), "rejected": int(len(drop)), "threshold": round(thr, 6)}
    summary |= {"keep_fraction": cfg.keep_fraction, "hist": hist.tolist(), "hist_edges": [float(e) for e in edges]}
    write_summary(run.uri.join("dedup", "clip_filter.json"), summary, run.s3)
    return uri


class ListedRejectConfig(StrictModel):
    """A reject list (`LIST_SCHEMA`) and the reason its rows get."""

    path: str
    reason: str
    s3: S3Options | None = None


class ListedRejectStage:
    """Rejects live rows whose uid a barrier listed, with the listed detail. Each actor holds the list (dropped
    rows only)."""

    name = "listed"
    resources: Resources = CPU_LIGHT

    def __init__(self, config: ListedRejectConfig) -> None:
        t = read_parquet_uri(config.path, config.s3)
        self.reason, self.uids, self.details = config.reason, t["uid"].combine_chunks(), t["detail"].combine_chunks()

    def __call__(self, batch: pa.Table) -> pa.Table:
        found = pc.index_in(batch["uid"], value_set=self.uids)
        hit = live_mask(batch) & pc.is_valid(found).to_numpy(zero_copy_only=False)
        at = pc.fill_null(found, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        reasons = pa.array(np.where(hit, self.reason, None), pa.string())
        # an empty list (nothing below the threshold, no semantic duplicate) has no row 0 to take
        listed = self.details.take(pa.array(at)) if len(self.details) else pa.nulls(len(at), pa.string())
        details = pc.if_else(pa.array(hit), listed, pa.scalar(None, pa.string()))
        return mark_rejected(batch, reasons, stage=self.name, details=details)


class ClipFilterStage(ListedRejectStage):
    """Rejects `low_clip_score` rows (the list `clip_filter_barrier` wrote)."""

    name = "clip_filter"
