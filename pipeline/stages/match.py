"""Ray Data match stage: MetaCLIP substring matching of captions → `entry_ids`; no match → rejected.

The metadata list is read and the matcher built once per worker process per build (`__init__`, kept by
`stages.base.setup_scope`), never per batch.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa

from curation.matching import EntryMatcher
from curation.metadata import parse_metadata
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options, read_bytes
from pipeline.stages.base import CPU_HEAVY, Resources, live_mask, mark_rejected


class MatchReject(StrEnum):
    """Why the match stage rejects a caption."""

    NO_MATCH = "no_match"  # no metadata entry occurs in the caption (MetaCLIP: such texts are never sampled)


class MatchStageConfig(StrictModel):
    """Where the metadata is (the stage reads it itself: constructor arguments stay small)."""

    metadata: str
    s3: S3Options = S3Options()


def load_entries(uri: str, s3: S3Options | None = None) -> list[str]:
    """A MetaCLIP-format metadata list from a local path or s3:// URI."""
    return parse_metadata(read_bytes(uri, s3), repr(uri))


class MatchStage:
    """`caption` → `entry_ids` (`list<int32>`, sorted unique; null for rows already rejected)."""

    name = "match"
    resources: Resources = CPU_HEAVY

    def __init__(self, config: MatchStageConfig) -> None:
        self.matcher = EntryMatcher(load_entries(config.metadata, config.s3))

    def __call__(self, batch: pa.Table) -> pa.Table:
        live = np.flatnonzero(live_mask(batch))
        ids: list = [None] * batch.num_rows
        reasons: list = [None] * batch.num_rows
        if len(live):
            captions = batch["caption"].take(pa.array(live, pa.int64()))
            for i, found in zip(live.tolist(), self.matcher.match_batch(captions), strict=True):
                ids[i] = found
                if len(found) == 0:
                    reasons[i] = MatchReject.NO_MATCH
        batch = batch.append_column("entry_ids", pa.array(ids, pa.list_(pa.int32())))
        return mark_rejected(batch, reasons, stage=self.name)
