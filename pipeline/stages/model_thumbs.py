"""What the report shows of the model-based filters (#22), picked at build time while the dropped rows' images still
exist (RUN/work/download is scratch; dropped rows never reach a shard).

`lowest_scores` (clip_filter's lowest-scoring dropped rows) and `duplicate_groups` (semdedup's largest groups: a kept
row and the rows dropped as its duplicates) pick from the barriers' reject lists (`LIST_SCHEMA`: uid, detail);
`write_thumbs` stores those rows' images (the stored, already resized JPEGs, at most a few dozen) and captions in
RUN/dedup/{clip_filter,semdedup}_thumbs.parquet. The report runs the same picks on the same lists, so it shows
exactly the rows whose images were stored.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from pipeline.dedup.artifacts import write_table
from pipeline.rundir import RunDir
from pipeline.stages.download_parts import committed_parts, part_name

CLIP_SHOWN = 12
"""Lowest-scoring dropped pairs the report shows."""
GROUPS_SHOWN = 6
"""Semantic-duplicate groups the report shows, each with at most `DROPPED_PER_GROUP` dropped rows."""
DROPPED_PER_GROUP = 4

THUMBS_SCHEMA = pa.schema([("uid", pa.string()), ("caption", pa.string()), ("image", pa.binary())])


def _field(detail: str, key: str) -> float:
    """The number after `key=` in a reject detail ("score=0.1 threshold=0.2", "UID cos=0.99")."""
    for token in detail.split():
        if token.startswith(key + "="):
            return float(token.split("=", 1)[1])
    raise ValueError(f"no {key}= in reject detail {detail!r}")


def lowest_scores(listed: pa.Table, k: int = CLIP_SHOWN) -> list[dict]:
    """The `k` lowest-scoring rows of clip_filter's reject list: [{uid, score, threshold}], lowest first (ties by
    uid)."""
    rows = [
        {"uid": u, "score": _field(d, "score"), "threshold": _field(d, "threshold")}
        for u, d in zip(listed["uid"].to_pylist(), listed["detail"].to_pylist(), strict=True)
    ]
    return sorted(rows, key=lambda r: (r["score"], r["uid"]))[:k]


def duplicate_groups(listed: pa.Table, k: int = GROUPS_SHOWN, per: int = DROPPED_PER_GROUP) -> list[dict]:
    """The `k` largest groups of semdedup's reject list: [{kept, n_dropped, dropped: [{uid, cos}] (at most `per`,
    most similar first)}], largest first (ties by kept uid)."""
    groups: dict[str, list[dict]] = {}
    for uid, detail in zip(listed["uid"].to_pylist(), listed["detail"].to_pylist(), strict=True):
        groups.setdefault(detail.split()[0], []).append({"uid": uid, "cos": _field(detail, "cos")})
    order = sorted(groups, key=lambda kept: (-len(groups[kept]), kept))[:k]
    return [
        {
            "kept": kept,
            "n_dropped": len(groups[kept]),
            "dropped": sorted(groups[kept], key=lambda r: (-r["cos"], r["uid"]))[:per],
        }
        for kept in order
    ]


def shown_uids(name: str, listed: pa.Table) -> list[str]:
    """The uids whose images the report shows for barrier `name` ("clip_filter" or "semdedup")."""
    if name == "clip_filter":
        return [r["uid"] for r in lowest_scores(listed)]
    return [u for g in duplicate_groups(listed) for u in (g["kept"], *(r["uid"] for r in g["dropped"]))]


def write_thumbs(run: RunDir, name: str, listed: pa.Table) -> int:
    """Store the images and captions of `shown_uids(name, listed)` from the committed download parts in
    RUN/dedup/NAME_thumbs.parquet (`THUMBS_SCHEMA`, by uid); returns the rows written."""
    uids = sorted(set(shown_uids(name, listed)))
    download = run.path("work", "download")
    parts = sorted(committed_parts(download, run.s3)) if uids and run.exists("work", "download") else []
    table = THUMBS_SCHEMA.empty_table()
    if parts:
        fs, base = run.fs("work", "download")
        ds = pads.dataset([f"{base}/{part_name(p)}" for p in parts], filesystem=fs, format="parquet")
        found = ds.to_table(columns=["uid", "caption", "image"], filter=pc.field("uid").isin(uids))
        found = found.filter(pc.is_valid(found["image"]))
        table = found.take(pc.sort_indices(found, [("uid", "ascending")])).cast(THUMBS_SCHEMA)
    write_table(run.uri.join("dedup", f"{name}_thumbs.parquet"), table, run.s3)
    return table.num_rows
