"""Reject annotation: stages mark, never drop; the first rejection wins; details travel with reasons."""

import pyarrow as pa

from pipeline.stages.base import live_mask, mark_rejected, with_reject_columns


def table(n=4):
    return pa.table({"uid": [f"u{i}" for i in range(n)]})


def test_with_reject_columns_adds_null_strings_once():
    t = with_reject_columns(with_reject_columns(table()))
    assert t.column_names == ["uid", "reject_stage", "reject_reason", "reject_detail"]
    assert t["reject_reason"].null_count == 4 and t["reject_reason"].type == pa.string()


def test_first_rejection_wins_and_rows_are_kept():
    t = mark_rejected(table(), [None, "too_short", None, "empty"], stage="text", details=[None, "2 words", None, None])
    t = mark_rejected(t, ["lang", "lang", None, None], stage="langid")
    assert t.num_rows == 4
    assert t["reject_stage"].to_pylist() == ["langid", "text", None, "text"]
    assert t["reject_reason"].to_pylist() == ["lang", "too_short", None, "empty"]
    assert t["reject_detail"].to_pylist() == [None, "2 words", None, None]
    assert live_mask(t).tolist() == [False, False, True, False]


def test_live_mask_without_columns_is_all_true():
    assert live_mask(table(3)).tolist() == [True, True, True]


def test_chunked_input():
    t = pa.concat_tables([table(2), table(2)])
    t = mark_rejected(t, pa.array([None, "x", "y", None]), stage="s")
    assert t["reject_reason"].to_pylist() == [None, "x", "y", None]
