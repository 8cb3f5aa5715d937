"""Ray Data stage: safe download + decode → validate → resize → encode + sha256 + pHash of each live row's `url`, in
one I/O-bound task per download part; no algorithms here (`curation.fetch.Fetcher`, `curation.images.process_images`).

`FetchImagesStage` is the download the build runs (per download part, `pipeline.stages.download_parts`): each worker
thread fetches a URL and processes its bytes at once (at most `download.process_slots` threads at a time), so raw
bodies never enter the object store and decoding (Pillow releases the GIL) overlaps the other threads' network
waits. `benchmarks/bench_download.py` measures it against img2dataset (see docs/dedup.md and
benchmarks/RESULTS.md). It never raises for a row: failures are `reject_reason` values — a `FetchStatus` with stage
`download`, an `ImageStatus` with stage `images` — with the detail (e.g. the HTTP code) in `reject_detail`.

Columns added: `FETCH_COLUMNS`, then `IMAGE_COLUMNS` (nulls where the row is not a decoded image).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from pydantic import Field

from curation.fetch import Fetcher, fetch_robots, robots_fetch_config
from curation.fetch_config import FetchConfig, FetchResult, FetchStatus
from curation.images import ImageConfig, ImageStatus, process_images
from curation.optout import OptOutRegistry
from curation.robots import RobotsFile, RobotsPolicy, RobotsState
from pipeline.core.config import StrictModel
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, read_bytes
from pipeline.stages.base import IO_BOUND, Resources, live_mask, mark_rejected

DOWNLOAD = "download"
"""`reject_stage` of rows whose fetch failed (reason: a `curation.fetch_config.FetchStatus`)."""
IMAGES = "images"
"""`reject_stage` of rows whose bytes did not make an image (reason: a `curation.images.ImageStatus`)."""


class DownloadConfig(StrictModel):
    """The download stage: fetch policy plus how many downloads one task runs at once."""

    fetch: FetchConfig = FetchConfig()
    """Safety limits, politeness and retries (see curation.fetch_config.FetchConfig)."""
    threads: int = Field(16, ge=1, le=512)
    """Concurrent downloads per download task (I/O-bound: a task asks for a quarter of a CPU)."""
    process_slots: int = Field(0, ge=0, le=512)
    """`clipforge build` (fused download + image stage): at most this many of a task's threads decode, resize and
    encode at once; the others keep downloading. 0 = the CPU cores the worker process may run on."""
    opt_out_registry: str = ""
    """A do-not-train list (local path or s3://): domains, URL prefixes or globs, one a line (docs/build.md). A listed
    URL, or a redirect to one, is never requested: rejected as opt_out_registry. Empty: none."""
    rows_per_part: int = Field(1000, ge=1)
    """`clipforge build`: rows per download part, the unit of resume. Rows go to parts by a hash of their URL's host
    (a host larger than this is spread over up to `fetch.per_host_concurrency` parts, each allowed its share of the
    host's limit; docs/build.md), so per-host limits and Crawl-delay hold across the cluster; each part's result is
    committed atomically under RUN/work/download/, and a re-run downloads only uncommitted parts."""


class FetchImagesConfig(StrictModel):
    """The fused download + image stage: the download settings plus the image settings."""

    download: DownloadConfig = DownloadConfig()
    """Fetch policy and threads per task (each thread also decodes what it fetched)."""
    image: ImageConfig = ImageConfig()
    """Validation, resize and encoding (see curation.images.ImageConfig)."""
    s3: S3Options = S3Options()
    """Where `download.opt_out_registry` and `robots_file` are read from, if on S3."""
    host_slots: dict[str, int] = {}
    """Per-host concurrency below `download.fetch.per_host_concurrency` for hosts the build spreads over several
    download parts (`curation.host_parts`): their parts' shares add up to at most the limit."""
    robots_file: str = ""
    """The run's robots.txt table (work/robots.parquet, one row per origin, fetched before the downloads); with
    `download.fetch.robots_txt` on, origins not in it (redirect targets) are fetched on first use."""


ROBOTS_SCHEMA = pa.schema(
    [("origin", pa.string()), ("state", pa.string()), ("body", pa.string()), ("detail", pa.string())]
)
"""work/robots.parquet: one row per origin (`curation.robots.RobotsFile`)."""


def load_robots(uri: str, s3: S3Options | None = None) -> list[RobotsFile]:
    """The robots.txt table at `uri` (none for "")."""
    if not uri:
        return []
    import io

    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(read_bytes(uri, s3))).to_pylist()
    return [RobotsFile(r["origin"], RobotsState(r["state"]), r["body"] or "", r["detail"] or "") for r in rows]


def robots_table(files: list[RobotsFile]) -> pa.Table:
    cols = {"origin": [f.origin for f in files], "state": [str(f.state) for f in files]}
    cols |= {"body": [f.body for f in files], "detail": [f.detail for f in files]}
    return pa.table(cols, schema=ROBOTS_SCHEMA)


def load_opt_out(uri: str, s3: S3Options | None = None) -> OptOutRegistry:
    """The registry at `uri` (empty for ""); unreadable or malformed is a `ClipforgeError` naming file and line."""
    if not uri:
        return OptOutRegistry()
    try:
        text = read_bytes(uri, s3).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ClipforgeError(f"download.opt_out_registry {uri!r}: {e}") from None
    try:
        return OptOutRegistry.parse(text, source=uri)
    except ValueError as e:
        raise ClipforgeError(f"download.opt_out_registry: {e}") from None


FETCH_COLUMNS = {
    "final_url": pa.string(),
    "fetch_status": pa.string(),
    "http_status": pa.int32(),
    "content_type": pa.string(),
    "attempts": pa.int32(),
    "elapsed_s": pa.float32(),
}
"""What the fetch adds for every row it tried (null for rows that were already rejected); the body is not kept."""
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
"""What image processing adds. pHash is Arrow uint64 (parquet: INT64 with the unsigned annotation): the same bits as
`curation.phash`, no sign games; `f"{h:016x}"` is imagehash's hex string."""
_IMAGE_OUTPUT = (*IMAGE_COLUMNS, "status", "detail")  # the keys of `process_images` output


def process_slots(configured: int) -> int:
    """`DownloadConfig.process_slots` resolved: 0 means the CPU cores this process may run on (its affinity)."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


class FetchImagesStage:
    """`url` → `FETCH_COLUMNS` + `IMAGE_COLUMNS`; one thread fetches and then processes each URL.

    Rejections carry stage `download` (a `FetchStatus`) or `images` (an `ImageStatus`). I/O-bound profile: a
    download is mostly waiting, and decode time shows up as threads, not as a reserved core; on a 2-core box the
    autoscaler can then run several such tasks beside readers and writers.

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
        registry = load_opt_out(config.download.opt_out_registry, config.s3)
        robots = None
        if config.download.fetch.robots_txt:
            robots_fetcher = Fetcher(robots_fetch_config(config.download.fetch))
            robots = RobotsPolicy(
                config.download.fetch.robots_ua_tokens,
                load_robots(config.robots_file, config.s3),
                lambda origin: fetch_robots(origin, robots_fetcher),
            )
        self.fetcher = Fetcher(config.download.fetch, opt_out=registry, robots=robots, host_limits=config.host_slots)
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
        batch = append_fetch_columns(batch, rows, [r for r, _ in results])
        done = [(i, c) for i, (_, c) in zip(rows.tolist(), results, strict=True) if c is not None]
        cols = {name: [c[name][0] for _, c in done] for name in _IMAGE_OUTPUT}
        return append_image_columns(batch, np.array([i for i, _ in done], dtype=np.int64), cols)


def append_fetch_columns(batch: pa.Table, rows: np.ndarray, results: list[FetchResult]) -> pa.Table:
    """Append `FETCH_COLUMNS` from `results` for batch rows `rows`; reject failed fetches (stage `download`)."""
    n = batch.num_rows
    cols: dict[str, list] = {name: [None] * n for name in FETCH_COLUMNS}
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    for i, r in zip(rows.tolist(), results, strict=True):
        values = (r.final_url, str(r.status), r.http_status, r.content_type, r.attempts, r.elapsed_s)
        for name, value in zip(FETCH_COLUMNS, values, strict=True):
            cols[name][i] = value
        if r.status != FetchStatus.ok:
            reasons[i], details[i] = str(r.status), r.detail or None
    for name, typ in FETCH_COLUMNS.items():
        batch = batch.append_column(name, pa.array(cols[name], typ))
    return mark_rejected(batch, reasons, stage=DOWNLOAD, details=details)


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
    return mark_rejected(batch, reasons, stage=IMAGES, details=details)
