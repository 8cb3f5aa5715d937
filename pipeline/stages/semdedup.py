"""Semantic dedup stage (#22; SemDeDup over the stored image embeddings): `semdedup_barrier` runs
`curation.semdedup.semantic_duplicate_pairs` over every embedded row the CLIP filter kept (sorted by uid, so the
smallest uid of a duplicate group is kept) and writes RUN/dedup/semdedup.parquet (uid, detail: the kept uid and the
cosine) + semdedup.json + semdedup_thumbs.parquet (the report's duplicate groups: `pipeline.stages.model_thumbs`);
`SemDedupStage` rejects those rows as `semantic_duplicate`.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.semdedup import semantic_duplicate_pairs
from pipeline.dedup.artifacts import read_parquet_uri, write_summary, write_table
from pipeline.rundir import RunDir
from pipeline.stages.clip_filter import LIST_SCHEMA, ListedRejectStage, vectors
from pipeline.stages.embed import read_embeddings
from pipeline.stages.model_configs import SemDedupConfig
from pipeline.stages.model_thumbs import write_thumbs


class SemDedupReason(StrEnum):
    """Why the semdedup stage rejected a row (`reject_detail`: "KEPT_UID cos=C")."""

    semantic_duplicate = "semantic_duplicate"


def semdedup_barrier(run: RunDir, cfg: SemDedupConfig, after: str | None = None) -> str:
    """SemDeDup over the embedded rows not listed in `after` (the CLIP filter's reject list); returns the URI of
    the reject list. Reused as it is when a killed earlier run wrote the summary (written last)."""
    uri = run.path("dedup", "semdedup.parquet")
    if run.exists("dedup", "semdedup.json"):
        return uri
    emb = read_embeddings(run, ["uid", "image_emb"])
    if after:
        gone = read_parquet_uri(after, run.s3)["uid"]
        emb = emb.filter(pc.invert(pc.is_in(emb["uid"], value_set=gone.combine_chunks())))
    x = vectors(emb["image_emb"]) if emb.num_rows else np.zeros((0, 1), np.float32)
    res = semantic_duplicate_pairs(x, eps=cfg.eps, n_clusters=cfg.n_clusters, seed=cfg.seed)
    drop = np.flatnonzero(res.dropped)
    uids = emb["uid"].combine_chunks()
    kept = uids.take(pa.array(res.kept[drop])).to_pylist()
    details = [f"{k} cos={c:.4f}" for k, c in zip(kept, res.cosine[drop], strict=True)]
    table = pa.table([uids.take(pa.array(drop, pa.int64())), pa.array(details, pa.string())], schema=LIST_SCHEMA)
    write_table(run.uri.join("dedup", "semdedup.parquet"), table, run.s3)
    write_thumbs(run, "semdedup", table)  # the report's duplicate groups (dropped rows' images die with work/)
    sizes = np.bincount(res.cluster) if len(res.cluster) else np.zeros(0, np.int64)
    summary = {"embedded": int(emb.num_rows), "rejected": int(len(drop)), "eps": cfg.eps, "clusters": int(len(sizes))}
    summary["largest_cluster"] = int(sizes.max()) if len(sizes) else 0
    write_summary(run.uri.join("dedup", "semdedup.json"), summary, run.s3)
    return uri


class SemDedupStage(ListedRejectStage):
    """Rejects `semantic_duplicate` rows (the list `semdedup_barrier` wrote)."""

    name = "semdedup"
