"""Ray Data stage: `DedupRejectStage` rejects the rows the exact and near barriers' artifacts list (reasons:
`DedupReason`); no clustering here (`pipeline.dedup.barriers` decides, this stage only applies).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options
from pipeline.dedup.artifacts import read_parquet_uri
from pipeline.stages.base import CPU_LIGHT, Resources, live_mask, mark_rejected


class DedupReason(StrEnum):
    """Why the dedup stage rejected a row (`reject_detail` is the representative's uid)."""

    exact_duplicate = "exact_duplicate"  # same source bytes (sha256) or the same non-degenerate pHash
    near_duplicate = "near_duplicate"  # pHash within Hamming k of a kept row's (directly or through a chain)


class DedupRejectConfig(StrictModel):
    """The artifacts of the dedup barriers this stage applies (None: that step did not run)."""

    exact: str | None = None
    """RUN/dedup/exact.parquet from `pipeline.dedup.barriers.exact_dedup`."""
    near: str | None = None
    """RUN/dedup/near.parquet from `pipeline.dedup.barriers.near_dedup`."""
    s3: S3Options | None = None
    """How to reach S3 when the run directory is there (None: the environment's endpoint and credentials)."""


class DedupRejectStage:
    """Rejects live rows listed in the dedup artifacts: `exact_duplicate` / `near_duplicate`, detail = the uid kept.

    Each actor holds the listed uids (only dropped rows: ~60 B each, e.g. 0.6 GB for 10^7 duplicates).
    """

    name = "dedup"
    resources: Resources = CPU_LIGHT

    def __init__(self, config: DedupRejectConfig) -> None:
        self.lists = []
        for reason, uri in ((DedupReason.exact_duplicate, config.exact), (DedupReason.near_duplicate, config.near)):
            if uri:
                t = read_parquet_uri(uri, config.s3)
                self.lists.append((reason, t["uid"].combine_chunks(), t["representative"].combine_chunks()))

    def __call__(self, batch: pa.Table) -> pa.Table:
        live = live_mask(batch)
        for reason, uids, reps in self.lists:
            found = pc.index_in(batch["uid"], value_set=uids)
            hit = live & pc.is_valid(found).to_numpy(zero_copy_only=False)
            at = pc.fill_null(found, 0).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(hit)
            reasons = np.full(batch.num_rows, None, dtype=object)
            details = np.full(batch.num_rows, None, dtype=object)
            reasons[rows] = str(reason)
            details[rows] = reps.take(pa.array(at[rows].astype(np.int64))).to_pylist()
            batch = mark_rejected(batch, pa.array(reasons, pa.string()), stage=self.name, details=list(details))
            live &= ~hit
        return batch
