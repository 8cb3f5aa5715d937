"""The shard writer: kept rows → WebDataset tars (`{key}.jpg`, `{key}.txt`, `{key}.json`) + one parquet sidecar per
shard, each published atomically, plus a per-shard ledger entry; it never decides which rows are kept.

A row's shard is a hash of its uid (`add_shard_column`); inside a shard rows are sorted by uid and keyed
`{shard:06d}{index:06d}` (img2dataset's shard × 10^6 + index). So a shard's bytes are a pure function of the rows
it holds, and re-writing it (a retried task, a resumed run) produces the same file. Write order per shard: sidecar,
tar, then the ledger entry RUN/work/shards/shard-NNNNNN.json ({path, sidecar, n, sha256, bytes}) — the commit
point a resumed run trusts. A shard's tar appears at its final name only complete (`pipeline.core.storage`); its
bytes come from the one deterministic tar writer, `pipeline.core.tar`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options, list_uris, open_write, read_bytes, write_bytes
from pipeline.core.tar import tar_bytes
from pipeline.ingest import input_columns
from pipeline.rundir import RunDir
from pipeline.stages.base import CPU_LIGHT
from pipeline.stages.download_parts import uid_buckets

SHARD_SALT = 0x7368617264  # "shard"
SIDECAR_COLUMNS = [
    "uid", "key", "url", "caption", "lang", "lang_score", "metadata_lang", "entry_ids", "keep_prob", "keep_prob_pre",
    "width", "height", "orig_width", "orig_height", "sha256", "phash", "final_url", "url_raw",
]  # fmt: skip
"""Sidecar columns (those present in the run: keep_prob_pre only with the pre_balance stage). Row i of a sidecar is
sample i of its tar, in order."""
JSON_FIELDS = ("uid", "url", "caption", "lang", "entry_ids", "keep_prob", "width", "height", "sha256")
LEDGER = re.compile(r"shard-(\d{6})\.json$")


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}"


def shard_count(n_kept: int, samples_per_shard: int) -> int:
    return max(1, -(-n_kept // samples_per_shard))


def add_shard_column(batch: pa.Table, config: int) -> pa.Table:
    """Append `shard` (int64): the shard of each row's uid, `config` shards in all."""
    return batch.append_column("shard", pa.array(uid_buckets(batch["uid"], config, SHARD_SALT), pa.int64()))


add_shard_column.name = "assign_shard"  # type: ignore[attr-defined]
add_shard_column.resources = CPU_LIGHT  # type: ignore[attr-defined]


class ShardWriteConfig(StrictModel):
    """What a shard-writing task needs: the run directory and the image file extension."""

    run: str
    image_ext: str = "jpg"
    s3: S3Options = S3Options()


def _members(rows: pa.Table, keys: list[str], ext: str) -> Iterator[tuple[str, bytes]]:
    """Each row's `{key}.{ext}` (image), `{key}.txt` (caption, "" when null), `{key}.json` (JSON_FIELDS present +
    the kept input columns + key + phash as 16 hex digits or null), in key order."""
    images = rows["image"].to_pylist()
    fields = [f for f in JSON_FIELDS if f in rows.column_names] + input_columns(rows.column_names)
    meta = {f: rows[f].to_pylist() for f in fields}
    phash = rows["phash"].to_pylist() if "phash" in rows.column_names else [None] * rows.num_rows
    for i, key in enumerate(keys):
        doc = {f: v[i] for f, v in meta.items()} | {"key": key}
        doc["phash"] = None if phash[i] is None else f"{phash[i]:016x}"
        yield f"{key}.{ext}", images[i]
        yield f"{key}.txt", (doc.get("caption") or "").encode()
        yield f"{key}.json", json.dumps(doc, sort_keys=True, default=str).encode()  # input columns: any type


def write_shard(group: pa.Table, config: ShardWriteConfig) -> pa.Table:
    """One shard's rows (a `map_groups` group with a `shard` column and `image` bytes) → sidecar, tar, ledger entry;
    returns the ledger entry as a one-row table (shard, path, n, sha256, bytes)."""
    run = RunDir(config.run, config.s3)
    shard = int(group["shard"][0].as_py())
    rows = group.take(pc.sort_indices(group, [("uid", "ascending")]))
    keys = [f"{shard:06d}{i:06d}" for i in range(rows.num_rows)]
    cols = [c for c in SIDECAR_COLUMNS if c in rows.column_names and c != "key"] + input_columns(rows.column_names)
    sidecar = rows.select(cols).add_column(1, "key", pa.array(keys, pa.string()))
    name = shard_name(shard)
    with open_write(run.path("shards", f"{name}.parquet"), config.s3) as f:
        pq.write_table(sidecar, f)
    data = tar_bytes(_members(rows, keys, config.image_ext))
    write_bytes(run.path("shards", f"{name}.tar"), data, config.s3)
    entry = {
        "shard": shard,
        "path": f"shards/{name}.tar",
        "sidecar": f"shards/{name}.parquet",
        "n": rows.num_rows,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    run.write_json(f"work/shards/{name}.json", entry)
    return pa.table({k: [v] for k, v in entry.items()})


write_shard.name = "write_shard"  # type: ignore[attr-defined]
write_shard.resources = CPU_LIGHT  # type: ignore[attr-defined]


def committed_shards(run: RunDir) -> dict[int, dict]:
    """Ledger entries of shards a run (this one or a killed earlier one) finished: {shard: entry}."""
    out = {}
    for u in list_uris(run.path("work", "shards"), run.s3):
        m = LEDGER.search(u.path)
        if m:
            out[int(m.group(1))] = json.loads(read_bytes(u, run.s3))
    return out


def read_sidecars(run: RunDir, columns: list[str]) -> pa.Table:
    """`columns` of every shard sidecar of a run (shards/*.parquet), concatenated; an empty table when none."""
    fs, _ = run.fs("shards")
    files = [u for u in list_uris(run.path("shards"), run.s3) if u.path.endswith(".parquet")]
    if not files:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    paths = [run.fs(*(["shards", u.path.rsplit("/", 1)[-1]]))[1] for u in files]
    return pads.dataset(paths, filesystem=fs, format="parquet").to_table(columns=columns)
