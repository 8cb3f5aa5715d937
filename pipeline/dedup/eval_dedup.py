"""Ray Data stage: reject training rows whose pHash is within Hamming k_eval of a configured benchmark image (test-set
leakage, as DataComp and MetaCLIP remove), plus the per-batch hashing of benchmark images; no search algorithm here
(`curation.neardup.eval_set_matches`) and no driver work (`pipeline.dedup.barriers.eval_hashes` is the barrier).

Benchmark images are hashed with the download stage's own `ImageConfig` (same decoder, same draft reduction), so
the two sides' pHashes are comparable; only its size and aspect checks are switched off for them.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.images import ImageConfig, process_images
from curation.neardup import eval_set_matches
from curation.phash import hamming
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options
from pipeline.dedup.artifacts import EVAL_HASH_SCHEMA, read_parquet_uri
from pipeline.dedup.config import EvalSetConfig
from pipeline.stages.base import CPU_HEAVY, CPU_LIGHT, Resources, live_mask, mark_rejected


class EvalDedupReason(StrEnum):
    """Why the eval-dedup stage rejected a row (`reject_detail`: "SET:IMAGE_ID d=DISTANCE" of the closest image)."""

    eval_duplicate = "eval_duplicate"


class EvalHashConfig(StrictModel):
    """What `hash_eval_images` needs: which set it reads and the download stage's image settings."""

    source: EvalSetConfig
    image: ImageConfig


def hash_eval_images(batch: pa.Table, config: EvalHashConfig) -> pa.Table:
    """Benchmark rows → `EVAL_HASH_SCHEMA` rows; phash is null where the image does not decode. Flagged on purpose
    as heavy: this is the decode of every benchmark image."""
    relaxed = config.image.model_copy(update={"min_image_size": 1, "max_aspect_ratio": 1e9})
    cols = process_images(batch[config.source.image_column].to_pylist(), relaxed)
    ok = np.asarray(cols["status"]) == "ok"
    ids = [None if v is None else str(v) for v in batch[config.source.id_column].to_pylist()]
    return pa.table(
        [
            pa.array([config.source.name] * batch.num_rows, pa.string()),
            pa.array(ids, pa.string()),
            pa.array(cols["phash"], pa.uint64(), mask=~ok),
        ],
        schema=EVAL_HASH_SCHEMA,
    )


hash_eval_images.resources = CPU_HEAVY  # type: ignore[attr-defined]  # read by base.apply_stage


class EvalDedupConfig(StrictModel):
    """The eval-dedup stage: where the benchmark pHashes are and the radius."""

    hashes: str
    """RUN/dedup/eval_hashes.parquet written by `pipeline.dedup.barriers.eval_hashes`."""
    k_eval: int = Field(4, ge=0, le=8)
    """Reject rows within this Hamming distance of a benchmark image (degenerate pHashes never match)."""
    s3: S3Options | None = None
    """How to reach S3 when the run directory is there (None: the environment's endpoint and credentials)."""


class EvalDedupStage:
    """Rejects live rows whose pHash is within `k_eval` of a benchmark image's: reason `eval_duplicate`."""

    name = "eval_dedup"
    resources: Resources = CPU_LIGHT

    def __init__(self, config: EvalDedupConfig) -> None:
        self.config = config
        t = read_parquet_uri(config.hashes, config.s3)
        self.hashes = t["phash"].to_numpy().astype(np.uint64)
        self.labels = [f"{s}:{i}" for s, i in zip(t["set"].to_pylist(), t["image_id"].to_pylist(), strict=True)]

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = np.flatnonzero(live_mask(batch) & pc.is_valid(batch["phash"]).to_numpy(zero_copy_only=False))
        if not len(rows) or not len(self.hashes):
            return mark_rejected(batch, [None] * batch.num_rows, stage=self.name)
        train = batch["phash"].take(pa.array(rows, pa.int64())).to_numpy().astype(np.uint64)
        hit, matched = eval_set_matches(train, self.hashes, self.config.k_eval)
        reasons = np.full(batch.num_rows, None, dtype=object)
        details = np.full(batch.num_rows, None, dtype=object)
        at, which = rows[hit], matched[hit]
        reasons[at] = str(EvalDedupReason.eval_duplicate)
        dist = hamming(train[hit], self.hashes[which])
        details[at] = [f"{self.labels[w]} d={d}" for w, d in zip(which.tolist(), dist.tolist(), strict=True)]
        return mark_rejected(batch, pa.array(reasons, pa.string()), stage=self.name, details=list(details))
