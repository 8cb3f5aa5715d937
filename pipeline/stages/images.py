"""Ray Data stages: decode → validate → resize → encode + sha256 + pHash of downloaded images; no algorithms here.

`ImagesStage` wraps `curation.images.process_images` for the live rows of a batch that the download stage filled
(`body`). `FetchImagesStage` is the same work fused into the download actor: each worker thread fetches a URL and
processes its bytes at once (at most `download.process_slots` threads at a time), so raw bodies never enter the
object store and decoding (Pillow releases the GIL) overlaps the other threads' network waits. `clipforge build`
runs the fused stage per download part (`DownloadPartStage`); `benchmarks/bench_download.py` measures it against
img2dataset (see docs/dedup.md and benchmarks/RESULTS.md).
Neither stage raises for a row: failures are `reject_reason` values (`FetchStatus` from stage `download`,
`ImageStatus` from stage `images`).

Columns added (nulls where the row is not a decoded image, see `IMAGE_COLUMNS`); the raw `body` column is dropped.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from curation.fetch import Fetcher
from curation.fetch_config import FetchResult, FetchStatus
from curation.images import ImageConfig, ImageStatus, process_images
from pipeline.core.config import StrictModel
from pipeline.stages.base import CPU_HEAVY, IO_BOUND, Resources, live_mask, mark_rejected
from pipeline.stages.download import FETCH_COLUMNS, DownloadConfig

IMAGE_COLUMNS = {
    "image": pa.binary(),  # re-encoded image (ImageConfig.encode_format); null unless ok
    "width": pa.int32(),  # output size; null unless ok
    "height": pa.int32(),
    "orig_width": pa.int32(),  # from the file header; null when the header could not be read
    "orig_height": pa.int32(),
    "sha256": pa.string(),  # hex digest of the source bytes; null when there were none
    "phash": pa.uint64(),  # 64-bit pHash, bit-identical to imagehash.phash (MSB = DCT [0, 0]); null unless ok
    "phash_degenerate": pa.bool_(),  # popcount != 32 (flat images): never near-matched; null unless ok
}
"""What the image stages add. pHash is Arrow uint64 (parquet: INT64 with the unsigned annotation): the same bits as
`curation.phash`, no sign games; `f"{h:016x}"` is imagehash's hex string."""
_NO_ROWS: dict[str, list] = {name: [] for name in (*IMAGE_COLUMNS, "status", "detail")}  # process_images of []


def _scatter(n: int, at: np.ndarray, cols: dict, ok: np.ndarray) -> dict[str, pa.Array]:
    """Full-length Arrow columns from `process_images` output for rows `at` (null elsewhere and where not ok)."""
    out = {}
    for name, typ in IMAGE_COLUMNS.items():
        values = np.asarray(cols[name], dtype=object)
        valid = ok.copy()
        if name in ("orig_width", "orig_height"):
            valid = np.asarray(cols[name]) > 0
        elif name == "sha256":
            valid = np.array([v is not None for v in values], dtype=bool)
        full = np.full(n, None, dtype=object)
        full[at[valid]] = [v.item() if isinstance(v, np.generic) else v for v in values[valid]]
        out[name] = pa.array(full, typ)
    return out


def append_image_columns(batch: pa.Table, rows: np.ndarray, cols: dict) -> pa.Table:
    """Append `IMAGE_COLUMNS` from `process_images` output `cols` for batch rows `rows`; reject the failures.

    Rows outside `rows` get nulls and keep their reject state. Failed rows are rejected (stage `images`) with the
    `ImageStatus` value as reason and its detail (e.g. "20000x20000 = 400000000 px > max_pixels …").
    """
    n = batch.num_rows
    status = np.asarray(cols["status"], dtype=object)
    ok = status == str(ImageStatus.ok)
    for name, arr in _scatter(n, rows, cols, ok).items():
        batch = batch.append_column(name, arr)
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    for i, s, d in zip(rows.tolist(), status.tolist(), cols["detail"], strict=True):
        if s != str(ImageStatus.ok):
            reasons[i], details[i] = s, d or None
    return mark_rejected(batch, reasons, stage=ImagesStage.name, details=details)


class ImagesStage:
    """`body` → `IMAGE_COLUMNS` for live rows; `body` dropped; failures rejected with their `ImageStatus`."""

    name = "images"
    resources: Resources = CPU_HEAVY

    def __init__(self, config: ImageConfig) -> None:
        self.config = config

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = np.flatnonzero(live_mask(batch))
        bodies = batch["body"].take(pa.array(rows, pa.int64())).to_pylist() if len(rows) else []
        cols = process_images(bodies, self.config) if bodies else _NO_ROWS
        return append_image_columns(batch.drop_columns(["body"]), rows, cols)


class FetchImagesConfig(StrictModel):
    """The fused download + image stage: the download stage's settings plus the image stage's."""

    download: DownloadConfig = DownloadConfig()
    """Fetch policy and threads per actor (each thread also decodes what it fetched)."""
    image: ImageConfig = ImageConfig()
    """Validation, resize and encoding (see curation.images.ImageConfig)."""


def process_slots(configured: int) -> int:
    """`DownloadConfig.process_slots` resolved: 0 means the CPU cores this process may run on (its affinity)."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


class FetchImagesStage:
    """`url` → fetch columns (no `body`) + `IMAGE_COLUMNS`; one thread fetches and then processes each URL.

    Rejections carry stage `download` (a `FetchStatus`) or `images` (an `ImageStatus`), as the two separate stages
    would. I/O-bound profile: a download is mostly waiting, and decode time shows up as threads, not as a reserved
    core; on a 2-core box the autoscaler can then run several such actors beside readers and writers.

    At most `process_slots(config.download.process_slots)` threads process at once (the rest keep downloading or
    wait with their body). Two reasons: memory — each decode holds a full-size image (up to `max_pixels` × 4
    bytes), so 32 threads decoding at once could hold 32 of them; and CPU — 32 decodes time-sliced over 2 cores
    cost cache misses and context switches: in bench_download's same-run ablation (`parts` vs `parts-ungated`, see
    benchmarks/RESULTS.md) CPU per image fell ~20 % on 256–768 px sources and ~5 % on 512–2048 px ones.
    """

    name = "fetch_images"
    resources: Resources = IO_BOUND

    def __init__(self, config: FetchImagesConfig) -> None:
        self.config = config
        self.fetcher = Fetcher(config.download.fetch)
        self._slots = threading.BoundedSemaphore(process_slots(config.download.process_slots))

    def _one(self, url: str) -> tuple[FetchResult, dict | None]:
        r = self.fetcher.fetch(url)
        if r.status != FetchStatus.ok:
            return r, None
        # The body is processed here, in the fetching thread, and only the re-encoded image is kept.
        with self._slots:
            cols = process_images([r.body], self.config.image)
        return dataclasses.replace(r, body=None), cols

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = np.flatnonzero(live_mask(batch))
        urls = batch["url"].take(pa.array(rows, pa.int64())).to_pylist() if len(rows) else []
        threads = max(1, min(self.config.download.threads, len(urls)))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(self._one, urls))
        batch = _fetch_columns(batch, rows, [r for r, _ in results])
        done = [(i, c) for i, (_, c) in zip(rows.tolist(), results, strict=True) if c is not None]
        cols = {name: [c[name][0] for _, c in done] for name in _NO_ROWS}
        return append_image_columns(batch, np.array([i for i, _ in done], dtype=np.int64), cols)


def _fetch_columns(batch: pa.Table, rows: np.ndarray, results: list[FetchResult]) -> pa.Table:
    """Append the download stage's columns except `body`; reject failed fetches as the download stage does."""
    n = batch.num_rows
    names = [name for name in FETCH_COLUMNS if name != "body"]
    cols: dict[str, list] = {name: [None] * n for name in names}
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    for i, r in zip(rows.tolist(), results, strict=True):
        values = (r.final_url, str(r.status), r.http_status, r.content_type, r.attempts, r.elapsed_s)
        for name, value in zip(names, values, strict=True):
            cols[name][i] = value
        if r.status != FetchStatus.ok:
            reasons[i], details[i] = str(r.status), r.detail or None
    for name in names:
        batch = batch.append_column(name, pa.array(cols[name], FETCH_COLUMNS[name]))
    return mark_rejected(batch, reasons, stage="download", details=details)
