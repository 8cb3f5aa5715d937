"""The report's pure pieces (funnel numbers, rank-plot data, head entries, dedup picks), escaping of untrusted text,
and a run that has only some artifacts: every absent section says "Not in this run", nothing raises, no Ray."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest

from pipeline.core.errors import ClipforgeError
from pipeline.dedup import ARTIFACT_SCHEMA
from pipeline.report import SECTIONS, render, write_report
from pipeline.report_inputs import ReportInputs, load_inputs
from pipeline.report_plots import thumbnail_uri
from pipeline.report_summaries import (
    cluster_sizes,
    funnel_problems,
    funnel_steps,
    head_entries,
    http_details,
    log_spaced_indices,
    pick_pairs,
    pick_rows,
    rank_curves,
    reasons_for,
    value_counts,
    word_counts,
)

FUNNEL = {
    "input_rows": 100,
    "kept": 40,
    "rejected": 60,
    "by_reason": [
        {"stage": "balance", "reason": "balanced_out", "rows": 20},
        {"stage": "download", "reason": "http_error", "rows": 12},
        {"stage": "text", "reason": "too_short", "rows": 10},
        {"stage": "langid", "reason": "lang", "rows": 8},
        {"stage": "download", "reason": "timeout", "rows": 5},
        {"stage": "zzz_custom", "reason": "odd", "rows": 3},
        {"stage": "text", "reason": "other_caption", "rows": 2},
    ],
}


def test_funnel_steps_follow_pipeline_order_and_add_up():
    steps = funnel_steps(FUNNEL)
    assert [s["stage"] for s in steps] == ["text", "langid", "download", "balance", "zzz_custom"]
    assert [(s["before"], s["dropped"], s["after"]) for s in steps] == [
        (100, 12, 88),
        (88, 8, 80),
        (80, 17, 63),
        (63, 20, 43),
        (43, 3, 40),
    ]
    assert steps[0]["reasons"] == [("too_short", 10), ("other_caption", 2)]
    assert steps[2]["reasons"] == [("http_error", 12), ("timeout", 5)]
    assert funnel_problems(FUNNEL) == []


def test_funnel_explicit_stage_order_and_problems():
    f = {**FUNNEL, "stages": ["zzz_custom", "balance"]}
    assert [s["stage"] for s in funnel_steps(f)][:2] == ["zzz_custom", "balance"]
    assert funnel_problems({**FUNNEL, "kept": 41}) == ["input 100 − rejected 60 ≠ kept 41"]
    assert funnel_problems({**FUNNEL, "rejected": 59})[0] == "per-reason rows sum to 60, but rejected = 59"


def test_reasons_and_http_details():
    assert reasons_for(FUNNEL, ("download",)) == [("http_error", 12), ("timeout", 5)]
    rejects = pa.table(
        {
            "stage": ["download", "download", "download", "download", "text"],
            "reason": ["http_error", "http_error", "http_5xx", "timeout", "http_error"],
            "detail": ["404", "404", None, None, "404"],
        }
    )
    assert http_details(rejects) == [("HTTP 404", 2), ("HTTP ?", 1)]
    assert http_details(rejects.slice(0, 0)) == []


def test_rank_curves_order_ties_and_zeros():
    pre = np.array([5, 0, 9, 5, 1], np.uint64)
    post = np.array([3, 0, 4, 5, 1], np.uint64)
    ids, a, b = rank_curves(pre, post)
    assert ids.tolist() == [2, 0, 3, 4] and a.tolist() == [9, 5, 5, 1] and b.tolist() == [4, 3, 5, 1]
    with pytest.raises(ValueError, match="differ in length"):
        rank_curves(pre, post[:3])


def test_log_spaced_indices():
    assert log_spaced_indices(5).tolist() == [0, 1, 2, 3, 4]
    idx = log_spaced_indices(500_000, max_points=300)
    assert idx[0] == 0 and idx[-1] == 499_999 and len(idx) <= 302 and np.all(np.diff(idx) > 0)
    assert idx[:10].tolist() == list(range(10))  # dense at the head, sparse in the tail


def test_head_entries_names_and_caps():
    pre, post = np.array([10, 50, 0, 7]), np.array([6, 12, 0, 7])
    head = head_entries(pre, post, t=8.0, names=["cat", "dog", "emu", "<b>owl</b>"], n=3)
    assert head == [
        {"id": 1, "name": "dog", "pre": 50, "cap": 8.0, "post": 12},
        {"id": 0, "name": "cat", "pre": 10, "cap": 8.0, "post": 6},
        {"id": 3, "name": "<b>owl</b>", "pre": 7, "cap": 7.0, "post": 7},
    ]
    assert head_entries(pre, post, None, None, n=1) == [{"id": 1, "name": None, "pre": 50, "cap": None, "post": 12}]


def _artifact(rows):
    return pa.table(list(map(list, zip(*rows, strict=True))), schema=ARTIFACT_SCHEMA)


def test_cluster_sizes_and_pairs():
    art = _artifact([("a", "r1", 0, 3), ("b", "r1", 2, 3), ("c", "r2", 4, 2), ("d", "r3", 2, 2)])
    assert cluster_sizes(art) == [(2, 2), (3, 1)]
    assert cluster_sizes(art.slice(0, 0)) == []
    pairs = pick_pairs(art, reachable={"r3"}, k=2, seed=0)
    assert pairs[0]["representative"] == "r3" and len(pairs) == 2
    assert len({p["representative"] for p in pick_pairs(art, set(), k=10, seed=1)}) == 3  # one per cluster
    assert pick_pairs(art, set(), k=3, seed=7) == pick_pairs(art, set(), k=3, seed=7)


def test_small_counters():
    assert value_counts(["en", "de", "en", None, "fr"], top=2) == [("en", 2), ("(unknown)", 1), ("(other)", 2)]
    assert word_counts(["a b  c", None, ""]).tolist() == [3, 0, 0]
    assert pick_rows(10, 3, seed=1) == pick_rows(10, 3, seed=1) and len(pick_rows(2, 5, seed=0)) == 2
    assert thumbnail_uri(b"not an image") is None and thumbnail_uri(None) is None


HOSTILE = '<script>alert("x")</script><img src=http://evil.invalid/a.png onerror=alert(1)>'


def test_untrusted_text_is_escaped():
    side = pa.table({"uid": ["u1"], "url": [HOSTILE], "caption": [HOSTILE], "lang": ['"><script>']})
    x = ReportInputs(uri='/runs/<x>"', manifest={"status": HOSTILE, "versions": {"<v>": "1"}}, funnel=FUNNEL)
    x.sidecars, x.sidecar_kind = side.append_column("_file", pa.array([0])), "curated"
    x.files, x.n_files_total = ["f"], 1
    x.samples = [{"uid": "u1", "caption": HOSTILE, "lang": "en", "image": None}]
    x.pre, x.post, x.t, x.names = np.array([3, 1]), np.array([2, 1]), 2.0, [HOSTILE, "ok"]
    x.train = {"source": HOSTILE, "rows": [{"step": "1", "loss/contrastive": "2.0", "note": HOSTILE}], "summary": None}
    page = render(x)
    assert "<script" not in page and "<img src=http" not in page  # only as text: &lt;script&gt;
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 3  # caption, entry name, source
    assert re.findall(r"<(\w+)", page).count("script") == 0


def test_missing_inputs_each_section_says_so():
    page = render(ReportInputs(uri="/r", manifest={"status": "complete"}))
    for sid, _, _ in SECTIONS[1:]:
        block = re.search(f'<section id="{sid}">(.*?)</section>', page, re.S)
        if sid in ("extraction", "worldwide"):  # only for an extract output / a worldwide build; this run is neither
            assert block is None and f'href="#{sid}"' not in page
            continue
        assert block and "Not in this run" in block.group(1), sid
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page


def test_partial_local_run_and_errors(tmp_path):
    with pytest.raises(ClipforgeError, match="no manifest.json"):
        load_inputs(str(tmp_path))
    (tmp_path / "stats").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "complete", "counts": {"kept": 40}}))
    (tmp_path / "stats" / "funnel.json").write_text(json.dumps(FUNNEL))
    (tmp_path / "config.yaml").write_text("match:\n  metadata: /nonexistent/metadata.json\n")
    np.save(tmp_path / "stats" / "entry_counts_pre.npy", np.array([9, 4, 0], np.uint64))
    np.save(tmp_path / "stats" / "entry_counts_post.npy", np.array([3, 4, 0], np.uint64))
    out = write_report(str(tmp_path), str(tmp_path / "sub" / "r.html"))
    page = (tmp_path / "sub" / "r.html").read_text()
    assert out == str(tmp_path / "sub" / "r.html") and "<b>kept</b> 40" in page
    assert "entry names unavailable" in page and "Not in this run" in page


def test_cli_report_on_a_directory_without_manifest_exits_2(tmp_path, capsys):
    from pipeline.cli import main

    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "no manifest.json" in err and "Traceback" not in err


def test_training_section_draws_in_run_eval_curves():
    from pipeline.report import eval_curve_keys, training

    rows = [
        {"step": str(s), "loss/contrastive": "2.0", "eval/digits/acc1": "0.3" if s % 4 == 0 else "",
         "eval/digits/acc5": "0.6" if s % 4 == 0 else "", "eval/captions_val/image_retrieval_recall@1": ""}
        for s in range(2, 10, 2)
    ]  # fmt: skip
    assert eval_curve_keys(rows) == ["eval/captions_val/image_retrieval_recall@1", "eval/digits/acc1"]
    x = ReportInputs(uri="/r", manifest={"status": "complete"})
    x.train = {"source": "RUN", "rows": rows, "summary": None}
    with_eval = training(x)
    x.train = {
        "source": "RUN",
        "rows": [{k: r[k] for k in ("step", "loss/contrastive")} for r in rows],
        "summary": None,
    }
    assert len(with_eval) > len(training(x))  # two more panels in the figure
    assert "eval/digits/acc1" in with_eval  # the last-logged table shows the eval column
