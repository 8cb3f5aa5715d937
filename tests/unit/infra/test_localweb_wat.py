"""The synthetic web's WAT files: extracted pairs equal the answers exactly; the malformed record and the truncated
file are counted, not fatal; every link form of wat.py appears. Its crawl (crawl_files) extracts to exactly its
candidate list."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.wat import collapse_pairs, extract_pairs
from infra.localweb.config import WebConfig
from infra.localweb.generate import generate

COLS = ["url", "caption", "caption_source", "page_url"]


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=5, n_candidates=400, eval_per_concept=1, crawl_files=3), out)
    return out


def rows(table) -> set[tuple]:
    return set(zip(*[table[c].to_pylist() for c in COLS], strict=True))


def test_extracted_pairs_equal_the_answers(web):
    answers = pq.read_table(web / "wat" / "answers.parquet")
    files = sorted((web / "wat").glob("*.warc.wat.gz"))
    assert [f.name for f in files] == ["web-00000.warc.wat.gz", "web-00001.warc.wat.gz", "web-00002.warc.wat.gz"]
    found, totals = set(), {}
    for f in files:
        table, counts = extract_pairs(f)
        assert rows(table) == rows(answers.filter(answers["file"].to_pandas().eq(f.name).to_numpy())), f.name
        found |= rows(table)
        for k, v in counts.as_dict().items():
            totals[k] = totals.get(k, 0) + v
    assert found == rows(answers)
    info = json.loads((web / "web.json").read_text())["counts"]["wat"]
    assert totals["bad_record"] == info["bad_record"] == 1 and totals["truncated"] == info["truncated"] == 1
    assert totals["pairs"] == answers.num_rows == info["pairs"]
    assert totals["no_text"] and totals["bad_scheme"] and totals["bad_url"]


def test_every_link_form_and_duplicate_kind_is_there(web):
    raw = b"".join(gzip.decompress(f.read_bytes()) for f in sorted((web / "wat").glob("*.gz"))[:2])
    for needle in (
        b'"url": "//127.0.0.1',
        b'"url": "../img/',
        b'"url": "/img/',
        b'"Base": "/img/',
        b"data:image",
        b"javascript:",
        b'"url": "\\t',
        b'"A@/href"',
        b"WARC-Type: warcinfo",
        b"WARC-Type: request",
    ):
        assert needle in raw, needle
    answers = pq.read_table(web / "wat" / "answers.parquet").to_pandas()
    assert set(answers["caption_source"]) == {"alt", "title", "data-image-title"}
    per_url = answers.groupby("url")
    assert (per_url["page_url"].nunique() > 1).any()  # an image on several pages
    assert (per_url["caption"].nunique() > 1).any()  # with different alts
    assert answers.duplicated(["url", "caption"]).any()  # and the same (url, caption) on several pages


def test_wat_pages_zero_writes_none(tmp_path):
    generate(WebConfig(seed=5, n_candidates=50, eval_per_concept=1, wat_pages=0), tmp_path)
    assert not (tmp_path / "wat").exists()
    assert not (tmp_path / "crawl").exists()  # crawl_files: 0 by default


def test_the_crawl_extracts_to_exactly_the_candidate_list(web):
    """Every candidate (url, caption) of the web is found in web/crawl/, its link resolved back to the served URL;
    nothing else is (set equality after the exact-duplicate collapse); the per-record answers are exact too."""
    files = sorted((web / "crawl").glob("*.warc.wat.gz"))
    assert len(files) == 3
    got = pa.concat_tables([extract_pairs(f)[0] for f in files])
    answers = pq.read_table(web / "crawl" / "answers.parquet")
    assert sorted(zip(*[got[c].to_pylist() for c in COLS], strict=True)) == sorted(
        zip(*[answers[c].to_pylist() for c in COLS], strict=True)
    )
    candidates = pq.read_table(web / "candidates.parquet")
    texts = [c.replace("\r", " ").replace("\n", " ").strip() for c in candidates["caption"].to_pylist()]
    expected = {(u, c) for u, c in zip(candidates["url"].to_pylist(), texts, strict=True) if c}
    collapsed = collapse_pairs(got)
    assert set(zip(collapsed["url"].to_pylist(), collapsed["caption"].to_pylist(), strict=True)) == expected
    assert collapsed.num_rows == len(expected) < got.num_rows  # a few exact duplicates collapsed
    assert set(got["caption_source"].to_pylist()) == {"alt", "title", "data-image-title"}
    per_url = collapsed.to_pandas().groupby("url")
    assert (per_url["caption"].nunique() > 1).any()  # a URL the web repeats: another alt on another page
    raw = b"".join(gzip.decompress(f.read_bytes()) for f in files)
    for needle in (b'"Base": "/img/"', b'"url": "//127.0.0.1', b'"url": "../img/', b'"url": "/img/', b"\\t"):
        assert needle in raw, needle
    info = json.loads((web / "web.json").read_text())["counts"]["crawl"]
    assert info == {"files": 3, "pages": 50, "pairs": got.num_rows}
