"""One record per URL within a block of whole uid groups, after text filters, LID and matching (MetaCLIP 2's
curate.py): one matched caption drawn per URL with a hash of (uid, seed), the others rejected as `other_caption`
naming the chosen one; a URL with no matched caption counted once as `no_match`; unique URLs pass untouched."""

import pyarrow as pa

from pipeline.stages.base import mark_rejected
from pipeline.stages.text import pick_one_per_url_block


def block(rows, reasons=None):
    t = pa.table({"uid": [r[0] for r in rows], "caption": [r[1] for r in rows]})
    return t if reasons is None else mark_rejected(t, reasons, stage="match")


def live(out) -> set:
    kept = out.filter(out["reject_reason"].is_null())
    return set(zip(kept["uid"].to_pylist(), kept["caption"].to_pylist(), strict=True))


def test_unique_uids_pass_untouched():
    t = block([("a", "x"), ("b", "y")])
    assert pick_one_per_url_block(t) is t


def test_only_a_matched_caption_represents_a_url_and_the_others_name_it():
    # three captions of one URL, only the second matched: it is kept whatever the seed and order
    t = block([("u", "first"), ("u", "second"), ("u", "third"), ("v", "alone")], ["no_match", None, "no_match", None])
    for seed in range(5):
        for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
            out = pick_one_per_url_block(t.take(order), seed)
            assert live(out) == {("u", "second"), ("v", "alone")}
    out = pick_one_per_url_block(t, 0)
    assert out["reject_reason"].to_pylist() == ["other_caption", None, "other_caption", None]
    assert out["reject_stage"].to_pylist() == ["match", None, "match", None]
    assert out["reject_detail"][0].as_py() == "another caption of u was chosen: 'second'; own reason: match/no_match"


def test_the_draw_among_matched_captions_is_seeded_and_order_free():
    rows = [("u", f"caption {i}") for i in range(8)]
    t = block(rows)
    chosen = {}
    for seed in range(12):
        picks = {
            frozenset(live(pick_one_per_url_block(t.take(order), seed))) for order in ([*range(8)], [*range(8)][::-1])
        }
        assert len(picks) == 1  # the same caption whatever the input order
        chosen[seed] = next(iter(next(iter(picks))))[1]
    assert len(set(chosen.values())) > 2  # the seed changes the draw: not always the first or the longest
    out = pick_one_per_url_block(t, 3)
    assert out["reject_reason"].to_pylist().count("other_caption") == 7


def test_a_url_with_no_matched_caption_is_no_match_once():
    t = block([("u", "too short"), ("u", "no entry here"), ("u", "nor here")], ["too_short", "no_match", "no_match"])
    out = pick_one_per_url_block(t, 0)
    reasons = out["reject_reason"].to_pylist()
    assert reasons.count("no_match") == 1 and reasons.count("other_caption") == 2
    assert reasons[0] == "other_caption"  # the no_match row represents it, not the text-filtered one
    assert "own reason: match/too_short" in out["reject_detail"][0].as_py()
