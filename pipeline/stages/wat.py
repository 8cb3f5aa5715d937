"""Ray Data stages of `clipforge extract`: one WAT file per call → its pairs file and commit marker; the per-block
collapse of exact (url, caption) duplicates.

A file's work is committed in two steps: its pairs go to WORK/files/ID.parquet (whole or not at all, `open_write`),
then its marker WORK/files/ID.json (the counts) — the commit point. A re-run skips files that have a marker; a pairs
file without one is rewritten. ID is a hash of the file's URI, so names never depend on order or partitioning.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from curation.wat import collapse_pairs, extract_pairs
from pipeline.core.storage import S3Options, Uri, filesystem, local_path_or_none, open_write, write_bytes
from pipeline.stages.base import CPU_LIGHT, Resources

FILE_COLUMNS = pa.schema([("file", pa.string()), ("id", pa.string())])
RESULT_SCHEMA = pa.schema([("file", pa.string()), ("id", pa.string()), ("pairs", pa.int64()), ("error", pa.string())])


def file_id(uri: str) -> str:
    """The name a WAT file's outputs carry: sha1 of its canonical URI, 20 hex digits."""
    return hashlib.sha1(str(Uri.parse(uri)).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class WatFilesConfig:
    """Where a file task writes (WORK/files/), how it reads S3, and the prefilter switch."""

    work_dir: str
    s3: S3Options | None = None
    prefilter: bool = True


def extract_files(batch: pa.Table, config: WatFilesConfig) -> pa.Table:
    """For each (file, id) row: extract the file's pairs, write them and then its marker; one result row per file
    (pairs, or the error that stopped it: such a file gets no marker, so a re-run retries it)."""
    out = {name: [] for name in RESULT_SCHEMA.names}
    for uri, fid in zip(batch["file"].to_pylist(), batch["id"].to_pylist(), strict=True):
        try:
            n, error = extract_one(uri, fid, config), None
        except Exception as e:  # noqa: BLE001 — a file that cannot be read is reported, the others go on
            n, error = 0, f"{type(e).__name__}: {e}".splitlines()[0][:500]
            traceback.print_exc()
        for key, value in (("file", uri), ("id", fid), ("pairs", n), ("error", error)):
            out[key].append(value)
    return pa.table(out, schema=RESULT_SCHEMA)


extract_files.name = "extract_files"  # type: ignore[attr-defined]
extract_files.resources = Resources(1.0, max_actors=4096)  # type: ignore[attr-defined]  # one file per task


def extract_one(uri: str, fid: str, config: WatFilesConfig) -> int:
    """Extract one WAT file into WORK/files/ID.parquet, then commit WORK/files/ID.json; returns the pairs."""
    start = time.process_time()
    local = local_path_or_none(uri)
    if local is not None:
        table, counts = extract_pairs(local, prefilter=config.prefilter)
    else:
        fs, path = filesystem(uri, config.s3)
        with fs.open_input_stream(path, compression=None) as stream:  # sequential reads, pyarrow's read-ahead
            table, counts = extract_pairs(_Counting(stream), prefilter=config.prefilter)
    work = Uri.parse(config.work_dir)
    with open_write(work.join("files", f"{fid}.parquet"), config.s3) as f:
        pq.write_table(table, f)
    marker = {"file": uri, **counts.as_dict(), "cpu_s": round(time.process_time() - start, 3)}
    write_bytes(work.join("files", f"{fid}.json"), json.dumps(marker).encode(), config.s3)
    return table.num_rows


class _Counting:
    """A forward-only stream that knows its position: FastWARC asks a Python stream for `tell()`, which pyarrow's
    S3 input stream (not seekable) refuses."""

    def __init__(self, stream) -> None:
        self._stream, self._pos = stream, 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n) if n is not None and n >= 0 else self._stream.read()
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True


def collapse_block(block: pa.Table, config: None = None) -> pa.Table:
    """`curation.wat.collapse_pairs` on one block that holds whole (url, caption) groups (after the shuffle)."""
    return collapse_pairs(block)


collapse_block.name = "dedup_pairs"  # type: ignore[attr-defined]
collapse_block.resources = CPU_LIGHT  # type: ignore[attr-defined]
