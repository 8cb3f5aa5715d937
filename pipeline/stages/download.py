"""Ray Data stage: safe download of each live row's `url` with a thread pool inside an I/O-bound actor.

Wraps `curation.fetch.Fetcher` (one per actor, so the per-host cap spans the actor's threads). Adds the fetch
columns; rows whose download did not succeed are rejected with the `FetchStatus` as reason and the detail
(e.g. the HTTP code) in `reject_detail`. Never raises for a URL.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import Field

from curation.fetch import Fetcher
from curation.fetch_config import FetchConfig, FetchStatus
from pipeline.core.config import StrictModel
from pipeline.stages.base import IO_BOUND, Resources, live_mask, mark_rejected


class DownloadConfig(StrictModel):
    """The download stage: fetch policy plus how many downloads one actor runs at once."""

    fetch: FetchConfig = FetchConfig()
    """Safety limits, politeness and retries (see curation.fetch_config.FetchConfig)."""
    threads: int = Field(16, ge=1, le=512)
    """Concurrent downloads per actor (I/O-bound: an actor asks for a quarter of a CPU)."""
    process_slots: int = Field(0, ge=0, le=512)
    """`clipforge build` (fused download + image stage): at most this many of an actor's threads decode, resize and
    encode at once; the others keep downloading. 0 = the CPU cores the actor's process may run on."""
    rows_per_part: int = Field(1000, ge=1)
    """`clipforge build`: rows per download part, the unit of resume. Rows go to parts by a hash of their uid; each
    part's result is committed atomically under RUN/work/download/, and a re-run downloads only uncommitted parts."""


FETCH_COLUMNS = {
    "final_url": pa.string(),
    "fetch_status": pa.string(),
    "http_status": pa.int32(),
    "content_type": pa.string(),
    "body": pa.binary(),
    "attempts": pa.int32(),
    "elapsed_s": pa.float32(),
}


class DownloadStage:
    """`url` → fetch columns + `body` (bytes of the image as served); failures rejected with their status."""

    name = "download"
    resources: Resources = IO_BOUND

    def __init__(self, config: DownloadConfig) -> None:
        self.config = config
        self.fetcher = Fetcher(config.fetch)

    def __call__(self, batch: pa.Table) -> pa.Table:
        live = np.flatnonzero(live_mask(batch))
        urls = batch["url"].take(pa.array(live, pa.int64())).to_pylist() if len(live) else []
        results = self.fetcher.fetch_many(urls, self.config.threads)
        n = batch.num_rows
        cols: dict[str, list] = {name: [None] * n for name in FETCH_COLUMNS}
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        for i, r in zip(live.tolist(), results, strict=True):
            ok = r.status == FetchStatus.ok
            row = (r.final_url, str(r.status), r.http_status, r.content_type, r.body, r.attempts, r.elapsed_s)
            for name, value in zip(FETCH_COLUMNS, row, strict=True):
                cols[name][i] = value
            if not ok:
                reasons[i], details[i] = str(r.status), r.detail or None
        for name, typ in FETCH_COLUMNS.items():
            batch = batch.append_column(name, pa.array(cols[name], typ))
        return mark_rejected(batch, reasons, stage=self.name, details=details)
