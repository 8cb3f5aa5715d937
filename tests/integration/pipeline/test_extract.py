"""`clipforge extract` on real local Ray: the synthetic web's WATs give exactly their answers (collapsed with a
`pages` count), the same from the local S3 server and through a `wat.paths.gz` listing, and `clipforge build` reads
the output as it is (keeping the extraction funnel for its report)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.wat import collapse_pairs
from pipeline.build import build
from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config
from pipeline.core.storage import filesystem, write_bytes
from pipeline.extract import extract
from pipeline.extract_config import ExtractConfig
from pipeline.report import write_report

ROW = ["url", "caption", "caption_source", "page_url", "pages"]


def config(inputs, out, **extract_keys) -> ExtractConfig:
    data = {"input": [str(i) for i in inputs], "output": str(out), "extract": extract_keys}
    return validate_config(ExtractConfig, data, "test")


def rows(table: pa.Table) -> set[tuple]:
    return set(zip(*[table[c].to_pylist() for c in ROW], strict=True))


@pytest.fixture(scope="module")
def expected(web) -> set[tuple]:
    answers = pq.read_table(web / "wat" / "answers.parquet")
    return rows(collapse_pairs(answers.drop_columns(["file"])))


@pytest.fixture(scope="module")
def local_run(ray_local, web, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "out"
    return out, extract(config([web / "wat"], out), say=lambda m: None)


def test_candidates_equal_the_answers(web, local_run, expected):
    out, manifest = local_run
    got = pq.read_table(out / "candidates")
    assert rows(got) == expected and got.num_rows == len(expected)
    assert manifest["status"] == "complete" and manifest["counts"]["candidates"] == len(expected)
    stats = json.loads((out / "stats" / "extract.json").read_text())
    n_answers = pq.read_metadata(web / "wat" / "answers.parquet").num_rows
    assert stats["pairs"] == n_answers and stats["duplicates_collapsed"] == n_answers - len(expected) > 0
    assert stats["dropped"]["bad_record"] == 1 and stats["truncated_files"] == [
        str(web / "wat" / "web-00002.warc.wat.gz")
    ]
    assert all(stats["dropped"][k] > 0 for k in ("no_text", "bad_scheme", "bad_url"))
    assert stats["files"] == stats["files_committed"] == 3 and stats["errors"] == []
    assert max(got["pages"].to_pylist()) > 1
    assert not (out / "work").exists()  # removed after the manifest
    again = extract(config([web / "wat"], out), say=lambda m: None)  # complete: nothing to do
    assert again == manifest


def test_s3_prefix_and_listing_extract_the_same(ray_local, local_s3, s3_bucket, web, tmp_path, expected):
    names = sorted(p.name for p in (web / "wat").glob("*.warc.wat.gz"))
    for name in names:
        write_bytes(f"{s3_bucket}/crawl/segments/1/wat/{name}", (web / "wat" / name).read_bytes(), local_s3.options())
    listing = tmp_path / "wat.paths.gz"
    listing.write_bytes(gzip.compress("".join(f"segments/1/wat/{n}\n" for n in names).encode()))
    s3 = local_s3.options().model_dump()
    for inputs, keys in (([f"{s3_bucket}/crawl/segments"], {}), ([listing], {"base_url": f"{s3_bucket}/crawl/"})):
        data = {"input": [str(i) for i in inputs], "output": f"{s3_bucket}/out-{len(keys)}", "extract": keys, "s3": s3}
        cfg = validate_config(ExtractConfig, data, "test")
        manifest = extract(cfg, say=lambda m: None)
        fs, path = filesystem(f"{cfg.output}/candidates", cfg.s3)
        assert rows(pq.read_table(path, filesystem=fs)) == expected, inputs
        assert manifest["counts"]["files"] == 3


def test_a_local_listing_with_a_local_base(ray_local, web, tmp_path, expected):
    listing = tmp_path / "wat.paths"
    listing.write_text("# synthetic\nweb-00000.warc.wat.gz\nweb-00001.warc.wat.gz\n\nweb-00002.warc.wat.gz\n")
    out = tmp_path / "out"
    extract(config([listing], out, base_url=str(web / "wat")), say=lambda m: None)
    assert rows(pq.read_table(out / "candidates")) == expected


def test_build_reads_the_candidates_as_they_are(local_run, tmp_path):
    out, manifest = local_run
    data = {"input": {"path": str(out / "candidates")}, "output": str(tmp_path / "run"), "stages": ["text"]}
    run = build(validate_config(BuildConfig, data, "test"), say=lambda m: None)
    assert run["counts"]["input_rows"] == manifest["counts"]["candidates"]
    curated = pq.read_table(tmp_path / "run" / "curated")
    assert {"url", "caption", "caption_source", "page_url", "pages"} <= set(curated.column_names)
    assert curated.num_rows == run["counts"]["kept"] > 0
    # the build keeps the extraction funnel with the run; its report shows it ahead of the build's funnel
    stats = json.loads((out / "stats" / "extract.json").read_text())
    assert json.loads((tmp_path / "run" / "stats" / "extract.json").read_text()) == {"extract": str(out), **stats}
    assert run["input"] == {"kind": "wat_pairs", "extract": str(out), "stats": "stats/extract.json"}
    page = Path(write_report(str(tmp_path / "run"))).read_text()
    section = re.search(r'<section id="extraction">(.*?)</section>', page, re.S).group(1)
    assert page.index('<section id="extraction">') < page.index('<section id="funnel">')
    assert f"<b>IMG links</b> {stats['img_links']:,}" in section and f"<b>pairs</b> {stats['pairs']:,}" in section
    assert f"<b>candidates</b> {stats['candidates']:,}" in section and "bad_record 1" in section
