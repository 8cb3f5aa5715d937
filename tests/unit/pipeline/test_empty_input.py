"""Zero rows everywhere: each stage's `__call__` on a zero-row table with its input schema returns a zero-row table
with its output columns; each dedup barrier and the entry count run on an empty dataset (session Ray); and the
"why nothing was kept" sentence names the stage, the reason and the fix.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.images import ImageConfig
from pipeline.build_config import TextConfig
from pipeline.dedup import (
    ARTIFACT_SCHEMA,
    EVAL_HASH_SCHEMA,
    DedupConfig,
    DedupRejectConfig,
    DedupRejectStage,
    EvalDedupConfig,
    EvalDedupStage,
    eval_hashes,
    exact_dedup,
    near_dedup,
)
from pipeline.dedup.buckets import (
    HASH_COLUMNS,
    BucketConfig,
    NodeConfig,
    NodeRows,
    band_rows,
    bucket_pairs,
    exact_edges,
    exact_keys,
    hash_rows,
)
from pipeline.nothing_kept import why_nothing_kept
from pipeline.rundir import RunDir
from pipeline.shards import add_shard_column
from pipeline.stages.balance import (
    BalanceStage,
    BalanceStageConfig,
    PreBalanceStage,
    count_entries,
    entry_count_block,
)
from pipeline.stages.base import REJECT_COLUMNS, StageChain, StageSpec
from pipeline.stages.download import FETCH_COLUMNS, IMAGE_COLUMNS, FetchImagesConfig, FetchImagesStage
from pipeline.stages.download_parts import DownloadPartsConfig, DownloadPartStage, add_part_column
from pipeline.stages.match import MatchStage, MatchStageConfig
from pipeline.stages.text import TextStage, canonicalize

REJECTS = [(c, pa.string()) for c in REJECT_COLUMNS]
CANDIDATES = pa.schema([("url", pa.string()), ("caption", pa.string())])
TEXT_IN = pa.schema([*CANDIDATES, ("url_raw", pa.string()), ("uid", pa.string()), *REJECTS])
MATCH_IN = pa.schema([*TEXT_IN, ("lang", pa.string()), ("lang_score", pa.float32())])
MATCHED = pa.schema([*MATCH_IN, ("entry_ids", pa.list_(pa.int32()))])
PART_IN = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("url_raw", pa.string()),
        ("caption", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float32()),
        ("entry_ids", pa.list_(pa.int32())),
    ]
)
DOWNLOADED = pa.schema([*PART_IN, *FETCH_COLUMNS.items(), *REJECTS, *IMAGE_COLUMNS.items()])
HASHED = pa.schema(
    [("uid", pa.string()), ("sha256", pa.string()), ("phash", pa.uint64()), ("phash_degenerate", pa.bool_()),
     ("pixels", pa.int64())]
)  # fmt: skip


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


@pytest.fixture
def metadata(tmp_path):
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(["red", "circle"]))
    return str(path)


@pytest.fixture
def counts(tmp_path):
    path = tmp_path / "counts.npy"
    np.save(path, np.array([3, 0], dtype=np.uint64))
    return str(path)


def test_canonicalize_on_zero_rows():
    out = canonicalize(empty(CANDIDATES))
    assert out.num_rows == 0 and {"url_raw", "uid", *REJECT_COLUMNS} <= set(out.column_names)


def test_text_stage_on_zero_rows():
    out = TextStage(TextConfig())(empty(TEXT_IN))
    assert out.num_rows == 0 and out.schema.field("lang_score").type == pa.float32()


def test_match_stage_on_zero_rows(metadata):
    out = MatchStage(MatchStageConfig(metadata=metadata))(empty(MATCH_IN))
    assert out.num_rows == 0 and out.schema.field("entry_ids").type == pa.list_(pa.int32())


def test_entry_count_block_and_balance_stages_on_zero_rows(counts):
    block = entry_count_block(empty(MATCHED), config=2)
    assert np.frombuffer(block["counts"][0].as_py(), np.uint64).tolist() == [0, 0]
    cfg = BalanceStageConfig(counts=counts, t=1.0)
    assert BalanceStage(cfg)(empty(MATCHED)).schema.field("keep_prob").type == pa.float32()
    out = PreBalanceStage(cfg)(empty(MATCHED))
    assert out.num_rows == 0 and "keep_prob_pre" in out.column_names


def test_fetch_stage_and_part_commit_on_zero_rows(tmp_path):
    out = FetchImagesStage(FetchImagesConfig())(empty(PART_IN))
    assert out.num_rows == 0 and out.schema.equals(DOWNLOADED)
    stage = DownloadPartStage(DownloadPartsConfig(fetch=FetchImagesConfig(), out_dir=str(tmp_path / "download")))
    stage.commit(0, empty(PART_IN))
    part = pq.read_table(tmp_path / "download" / "part-000000.parquet")
    assert part.num_rows == 0 and part.schema.equals(DOWNLOADED)


def test_part_and_shard_columns_on_zero_rows():
    assert add_part_column(empty(PART_IN), config=4)["part"].type == pa.int64()
    assert add_shard_column(empty(PART_IN), config=4)["shard"].type == pa.int64()


def test_dedup_per_batch_steps_on_zero_rows(tmp_path):
    rows = hash_rows(empty(DOWNLOADED))
    assert rows.num_rows == 0 and rows.column_names == list(HASH_COLUMNS)
    keys = exact_keys(empty(HASHED), BucketConfig(shards=2))
    assert keys.num_rows == 0 and exact_edges(keys).num_rows == 0
    bands = band_rows(empty(HASHED), BucketConfig(k=2))
    assert bands.num_rows == 0 and bucket_pairs(bands, BucketConfig(k=2)).num_rows == 0
    nodes = tmp_path / "nodes.parquet"
    pq.write_table(pa.table({"phash": pa.array([], pa.uint64())}), nodes)
    assert NodeRows(NodeConfig(nodes=str(nodes)))(empty(HASHED)).column_names == ["phash", "uid", "pixels"]


def test_dedup_reject_stages_on_zero_rows_and_empty_artifacts(tmp_path):
    exact, hashes = tmp_path / "exact.parquet", tmp_path / "eval.parquet"
    pq.write_table(ARTIFACT_SCHEMA.empty_table(), exact)
    pq.write_table(EVAL_HASH_SCHEMA.empty_table(), hashes)
    dedup = DedupRejectStage(DedupRejectConfig(exact=str(exact), near=str(exact)))
    evald = EvalDedupStage(EvalDedupConfig(hashes=str(hashes)))
    for stage in (dedup, evald):
        assert stage(empty(DOWNLOADED)).num_rows == 0
    chain = StageChain([StageSpec(DedupRejectStage, DedupRejectConfig(exact=str(exact))), StageSpec(hash_rows)])
    assert chain(empty(DOWNLOADED)).num_rows == 0


# --- on the session Ray: barriers and the count over empty datasets ---------------------------------------------
def all_rejected(n: int) -> pa.Table:
    """`n` downloaded rows, every one rejected by download (what a crawl refused as forbidden_address leaves)."""
    cols = {f.name: pa.nulls(n, f.type) for f in DOWNLOADED}
    cols["uid"] = pa.array([f"u{i}" for i in range(n)])
    cols["reject_stage"], cols["reject_reason"] = pa.array(["download"] * n), pa.array(["forbidden_address"] * n)
    return pa.table(cols, schema=DOWNLOADED)


@pytest.mark.parametrize("rows", [0, 5], ids=["no-rows", "all-rejected"])
def test_dedup_barriers_on_an_empty_dataset(ray_local, tmp_path, rows):
    import ray

    (tmp_path / "in").mkdir()
    pq.write_table(all_rejected(rows), tmp_path / "in" / "part-000000.parquet")
    ds = ray.data.read_parquet(str(tmp_path / "in"))
    run = str(tmp_path / "run")
    for barrier, name in ((exact_dedup, "exact"), (near_dedup, "near")):
        uri = barrier(ds, DedupConfig(), run)
        assert pq.read_table(uri).num_rows == 0
        summary = json.loads((tmp_path / "run" / "dedup" / f"{name}.json").read_text())
        assert (summary["rows"], summary["dropped"], summary["edges"]) == (0, 0, 0)
    assert pq.read_table(eval_hashes([], ImageConfig(), run)).num_rows == 0


def test_count_entries_on_an_empty_dataset(ray_local, tmp_path):
    import ray

    pq.write_table(empty(MATCHED), tmp_path / "matched.parquet")
    counts = count_entries(ray.data.read_parquet(str(tmp_path / "matched.parquet")), 3)
    assert counts.dtype == np.uint64 and counts.tolist() == [0, 0, 0]


# --- why nothing was kept ----------------------------------------------------------------------------------------
def write_rejects(tmp_path, rows: list[tuple[str, str, str | None]]) -> RunDir:
    (tmp_path / "rejects").mkdir()
    t = pa.table({k: [r[i] for r in rows] for i, k in enumerate(("stage", "reason", "detail"))})
    t = t.append_column("uid", pa.array([f"u{i}" for i in range(len(rows))]))
    pq.write_table(t, tmp_path / "rejects" / "r.parquet")
    return RunDir(str(tmp_path))


def stats(by_stage: list[tuple[str, int]], by_reason: list[tuple[str, str, int]], kept: int = 0) -> dict:
    total = sum(n for _, n in by_stage) + kept
    left, stages = total, []
    for st, n in by_stage:
        left -= n
        stages.append({"stage": st, "rejected": n, "remaining": left})
    reasons = [{"stage": s, "reason": r, "rows": n} for s, r, n in by_reason]
    return {"input_rows": total, "kept": kept, "rejected": total - kept, "by_stage": stages, "by_reason": reasons}


def test_why_nothing_kept_names_stage_reason_detail_and_fix(tmp_path):
    detail = "127.0.0.1 -> 127.0.0.1: loopback"
    run = write_rejects(tmp_path, [("text", "too_short", None)] + [("download", "forbidden_address", detail)] * 3)
    s = stats([("text", 1), ("download", 3)], [("download", "forbidden_address", 3), ("text", "too_short", 1)])
    assert why_nothing_kept(run, s) == (
        f"nothing kept: all 3 rows that reached download were rejected as forbidden_address (e.g. {detail}); "
        "to crawl a local or private-network server set download.fetch.allow_cidrs "
        "(e.g. --set 'download.fetch.allow_cidrs=[127.0.0.0/8]')"
    )


def test_why_nothing_kept_with_several_reasons_and_none_when_kept(tmp_path):
    run = write_rejects(tmp_path, [("match", "no_match", None)] * 2 + [("langid", "lang", None)])
    s = stats([("langid", 1), ("match", 2)], [("match", "no_match", 2), ("langid", "lang", 1)])
    assert why_nothing_kept(run, s).startswith(
        "nothing kept: all 2 rows that reached match were rejected as no_match;"
    )
    s = stats([("text", 3)], [("text", "too_short", 2), ("text", "too_long", 1)])
    assert why_nothing_kept(run, s).startswith(
        "nothing kept: text rejected the last 3 rows, most (2) as too_short and the rest for 1 other reason(s); "
        "the captions fail text.filters"
    )
    assert why_nothing_kept(run, stats([("text", 3)], [("text", "too_short", 3)], kept=1)) is None
