"""One record per URL within a block of whole uid groups: which caption represents a repeated URL, and that rows of
unique URLs and earlier rejections pass untouched."""

import pyarrow as pa

from pipeline.stages.base import mark_rejected
from pipeline.stages.text import pick_one_per_url_block


def block(rows):
    return pa.table({"uid": [r[0] for r in rows], "caption": [r[1] for r in rows]})


def test_unique_uids_pass_untouched():
    t = block([("a", "x"), ("b", "y")])
    assert pick_one_per_url_block(t) is t


def test_the_longest_stripped_caption_then_the_smallest_string_represents_a_url():
    t = block([("a", "short"), ("b", "only"), ("a", "  much longer   "), ("a", "much longer"), ("c", None), ("c", "")])
    out = pick_one_per_url_block(t)
    # "  much longer   " and "much longer" tie on stripped length: the smaller string ("  much…") wins; for c, the
    # empty string and null tie: the non-null one wins
    assert out["reject_reason"].to_pylist() == [
        "duplicate_url", None, None, "duplicate_url", "duplicate_url", None,
    ]  # fmt: skip
    assert out["reject_detail"].to_pylist()[0] == "kept another caption of a"
    assert out["reject_stage"].to_pylist() == ["text", None, None, "text", "text", None]
    for order in ([5, 4, 3, 2, 1, 0], [3, 0, 5, 1, 4, 2]):  # input order does not matter
        again = pick_one_per_url_block(t.take(order))
        live = again.filter(again["reject_reason"].is_null())
        assert set(zip(live["uid"].to_pylist(), live["caption"].to_pylist(), strict=True)) == {
            ("a", "  much longer   "), ("b", "only"), ("c", ""),
        }  # fmt: skip


def test_ties_on_the_caption_go_to_the_smallest_raw_url():
    t = block([("a", "same"), ("a", "same")]).append_column("url_raw", pa.array(["http://X.org/1", "http://x.org/1"]))
    for order in ([0, 1], [1, 0]):
        out = pick_one_per_url_block(t.take(order))
        assert out.filter(out["reject_reason"].is_null())["url_raw"].to_pylist() == ["http://X.org/1"]


def test_a_row_already_rejected_never_represents_its_url_and_keeps_its_reason():
    t = mark_rejected(block([("a", "the longest caption"), ("a", "short")]), ["bad_url", None], stage="text")
    out = pick_one_per_url_block(t)
    assert out["reject_reason"].to_pylist() == ["bad_url", None]
