"""Dedup, all of it (DESIGN.md §4): the `dedup.*` config, the whole-dataset barriers that decide which rows are
duplicates, and the Ray Data stages that reject them. Pure algorithms (pHash, block-permutation tables,
union-find, eval-set search) live in `curation/`; this package only runs them on Ray Data and stores the results.

    config       DedupConfig, EvalSetConfig                      the `dedup.*` keys of `clipforge build`
    barriers     exact_dedup, near_dedup, eval_hashes             driver steps; each writes RUN/dedup/NAME.parquet
    buckets      hash_rows, exact_keys, band_rows, …              per-batch explode/verify steps the barriers run
    artifacts    ARTIFACT_SCHEMA, EVAL_HASH_SCHEMA, read/write    the files under RUN/dedup/
    reject       DedupRejectStage (stage `dedup`)                 rejects exact_duplicate / near_duplicate rows
    eval_dedup   EvalDedupStage (stage `eval_dedup`)              rejects eval_duplicate rows (test-set leakage)

The build (`pipeline.build_images.dedup_artifacts`) runs the barriers over the downloaded rows, then the two stages
over every row; reject reasons are the `StrEnum`s beside each stage (`DedupReason`, `EvalDedupReason`).
"""

from pipeline.dedup.artifacts import ARTIFACT_SCHEMA, EVAL_HASH_SCHEMA
from pipeline.dedup.barriers import DedupError, clusters_to_artifact, eval_hashes, exact_dedup, near_dedup
from pipeline.dedup.config import DedupConfig, EvalSetConfig
from pipeline.dedup.eval_dedup import EvalDedupConfig, EvalDedupReason, EvalDedupStage
from pipeline.dedup.reject import DedupReason, DedupRejectConfig, DedupRejectStage

__all__ = [
    "ARTIFACT_SCHEMA",
    "EVAL_HASH_SCHEMA",
    "DedupConfig",
    "DedupError",
    "DedupReason",
    "DedupRejectConfig",
    "DedupRejectStage",
    "EvalDedupConfig",
    "EvalDedupReason",
    "EvalDedupStage",
    "EvalSetConfig",
    "clusters_to_artifact",
    "eval_hashes",
    "exact_dedup",
    "near_dedup",
]
