"""Ray Data stage: resumable downloads. One call fetches one download part — the live rows whose URL's host hashes to
it (`curation.host_parts`: one host, one part, so per-host limits hold across the cluster; large hosts spread over a
few parts with a share of the limit each) — with `pipeline.stages.download.FetchImagesStage`, and commits the result
atomically as RUN/work/download/part-NNNNNN.parquet.

A part's file is its commit marker: it appears whole or not at all (`pipeline.core.storage.open_write`), so a re-run
of a killed build downloads only the parts without a file. Part membership is a pure function of (host, uid, the
`PartPlan`), never of partitioning or order. Rows are never dropped: failures are `reject_reason` values,
as in the fetch stage.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.hashing import splitmix64, uid_to_u64
from curation.host_parts import assign_parts, url_hosts
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options, Uri, list_uris, open_write
from pipeline.stages.base import CPU_LIGHT, IO_BOUND, Resources
from pipeline.stages.download import FetchImagesConfig, FetchImagesStage

PART_INPUT_COLUMNS = [
    "uid", "url", "url_raw", "caption", "lang", "lang_score", "metadata_lang", "entry_ids", "keep_prob_pre",
]  # fmt: skip
"""Columns a download part carries from the text phase (those present); the fetch and image columns are added."""
PART_NAME = re.compile(r"part-(\d{6})\.parquet$")
PART_SALT = 0x70617274  # "part": download parts and shards hash the uid differently


def uid_buckets(uids: pa.Array | pa.ChunkedArray | list[str], n: int, salt: int) -> np.ndarray:
    """`int64[len(uids)]` in [0, n): splitmix64(BLAKE2b-64(uid) ^ salt) mod n — a pure function of the uid."""
    if not len(uids):
        return np.zeros(0, dtype=np.int64)
    h = splitmix64(uid_to_u64(uids) ^ np.uint64(salt))
    return (h % np.uint64(max(1, n))).astype(np.int64)


def part_name(part: int) -> str:
    return f"part-{part:06d}.parquet"


def committed_parts(work_dir: str, s3: S3Options | None = None) -> set[int]:
    """Part numbers whose file exists under `work_dir` (RUN/work/download); temp files of killed writers skipped."""
    found = set()
    for u in list_uris(work_dir, s3):
        m = PART_NAME.search(u.path)
        if m:
            found.add(int(m.group(1)))
    return found


class PartPlan(StrictModel):
    """How rows go to download parts: `n_parts` in all, hosts in `split` spread over that many parts each."""

    n_parts: int
    split: dict[str, int] = {}


def add_part_column(batch: pa.Table, config: PartPlan | int) -> pa.Table:
    """Append `part` (int64): each row's download part by its URL's host (`curation.host_parts.assign_parts`).
    An int `config` is that many parts by uid hash, without regard to hosts (benchmarks and tests that exercise the
    download stage alone); `clipforge build` always plans by host."""
    if not isinstance(config, PartPlan):
        return batch.append_column("part", pa.array(uid_buckets(batch["uid"], config, PART_SALT), pa.int64()))
    plan = config
    hosts = url_hosts(batch["url"]) if "url" in batch.column_names else pa.array([""] * batch.num_rows)
    parts = assign_parts(hosts, batch["uid"], plan.n_parts, plan.split, PART_SALT)
    return batch.append_column("part", pa.array(parts, pa.int64()))


add_part_column.name = "assign_part"  # type: ignore[attr-defined]
add_part_column.resources = CPU_LIGHT  # type: ignore[attr-defined]


class DownloadPartsConfig(StrictModel):
    """Where parts are committed and how each row is fetched and processed."""

    fetch: FetchImagesConfig
    out_dir: str
    """RUN/work/download (local or s3://)."""
    s3: S3Options = S3Options()


PART_SUMMARY = pa.schema([("part", pa.int64()), ("rows", pa.int64()), ("ok", pa.int64()), ("seconds", pa.float64())])


class DownloadPartStage:
    """One whole part (a `map_groups` group) → fetched + processed rows, committed as one parquet file; returns a
    one-row summary (`PART_SUMMARY`). The file's rows are sorted by uid."""

    name = "download_part"
    resources: Resources = IO_BOUND

    def __init__(self, config: DownloadPartsConfig) -> None:
        self.config = config
        self.fetch = FetchImagesStage(config.fetch)

    def __call__(self, group: pa.Table) -> pa.Table:
        t0 = time.monotonic()
        part = int(group["part"][0].as_py())
        out = self.commit(part, group.drop_columns(["part"]))
        ok = int(pc.sum(pc.is_null(out["reject_reason"]).cast(pa.int64())).as_py() or 0)
        summary = [[part], [out.num_rows], [ok], [round(time.monotonic() - t0, 3)]]
        return pa.table(summary, schema=PART_SUMMARY)

    def commit(self, part: int, rows: pa.Table) -> pa.Table:
        """Fetch `rows` (sorted by uid first) and commit them as part `part`; returns the committed table. Zero rows
        give a zero-row file with the full schema (the build commits one when no row is left to download)."""
        rows = rows.take(pc.sort_indices(rows, [("uid", "ascending")]))
        out = self.fetch(rows)
        with open_write(Uri.parse(self.config.out_dir).join(part_name(part)), self.config.s3) as f:
            pq.write_table(out, f)
        return out
