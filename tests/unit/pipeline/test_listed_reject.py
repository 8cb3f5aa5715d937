"""`ListedRejectStage` (clip_filter's and semdedup's reject stage) on a list with rows and on an empty list (a run
where semdedup found no duplicate): listed live rows are rejected with their detail, nothing else changes. No Ray."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.stages.clip_filter import LIST_SCHEMA, ListedRejectConfig
from pipeline.stages.semdedup import SemDedupStage


def batch() -> pa.Table:
    return pa.table({"uid": ["a", "b", "c"], "reject_reason": pa.array([None, None, "http_404"], pa.string())})


def test_listed_rows_are_rejected_with_their_detail(tmp_path):
    path = tmp_path / "semdedup.parquet"
    pq.write_table(pa.table([["b", "c"], ["a cos=0.9990", "a cos=0.9980"]], schema=LIST_SCHEMA), path)
    out = SemDedupStage(ListedRejectConfig(path=str(path), reason="semantic_duplicate"))(batch()).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, "semantic_duplicate", "http_404"]  # c was already rejected
    assert out[1]["reject_stage"] == "semdedup" and out[1]["reject_detail"] == "a cos=0.9990"


def test_an_empty_list_rejects_nothing(tmp_path):
    path = tmp_path / "semdedup.parquet"
    pq.write_table(LIST_SCHEMA.empty_table(), path)
    out = SemDedupStage(ListedRejectConfig(path=str(path), reason="semantic_duplicate"))(batch()).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, None, "http_404"]
