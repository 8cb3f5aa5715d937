"""The files under RUN/dedup/: their schemas, where they live, and how they are read and written; no decisions here.

The barriers (`pipeline.dedup.barriers`) write them; the reject stages (`pipeline.dedup.reject`,
`pipeline.dedup.eval_dedup`) read them back on every actor.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.storage import S3Options, Uri, open_write, read_bytes, write_bytes

ARTIFACT_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),  # a row to drop
        ("representative", pa.string()),  # the uid its cluster keeps
        ("distance", pa.int8()),  # Hamming distance between the two pHashes (chains can exceed k)
        ("cluster_size", pa.int32()),  # members of the cluster, representative included
    ]
)
"""RUN/dedup/exact.parquet and near.parquet: one row per dropped uid, sorted by uid."""

EVAL_HASH_SCHEMA = pa.schema([("set", pa.string()), ("image_id", pa.string()), ("phash", pa.uint64())])
"""RUN/dedup/eval_hashes.parquet: one row per hashed benchmark image, sorted by (set, image_id)."""


def dedup_dir(run_dir: str) -> Uri:
    """RUN/dedup, where every dedup artifact lives."""
    return Uri.parse(run_dir).join("dedup")


def read_parquet_uri(uri: str, s3: S3Options | None = None) -> pa.Table:
    """A small parquet artifact, local or on S3, read whole (through `pipeline.core.storage`)."""
    return pq.read_table(pa.BufferReader(read_bytes(uri, s3)))


def write_table(uri: Uri, table: pa.Table, s3: S3Options | None) -> str:
    """Write `table` as parquet at `uri` (atomically: whole or not at all); return the URI as a string."""
    with open_write(uri, s3) as f:
        pq.write_table(table, f)
    return str(uri)


def write_summary(uri: Uri, summary: dict, s3: S3Options | None) -> None:
    """A barrier's `.json` summary (sorted keys), written after its artifact: its presence means the step finished."""
    write_bytes(uri, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(), s3)
