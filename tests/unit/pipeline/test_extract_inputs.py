"""`clipforge extract`'s checks before Ray: inputs resolved from files, directories, globs and listings; a run
directory is resumed, refused or left alone — no Ray, nothing written by a refusal. A build's input is recognised as
an extract output (its stats kept with the build) only when it is one."""

from __future__ import annotations

import gzip

import pytest

from infra.localweb.wat import warc_record
from pipeline.core.config import validate_config
from pipeline.core.errors import ClipforgeError
from pipeline.extract import extract_source, open_run, output_state, preflight, resolve_inputs
from pipeline.extract_config import ExtractConfig
from pipeline.rundir import RunDir

WARC = gzip.compress(warc_record("metadata", b"{}", "http://a/", 1, "application/json"))


def cfg(inputs, out, **keys) -> ExtractConfig:
    return validate_config(
        ExtractConfig, {"input": [str(i) for i in inputs], "output": str(out), "extract": keys}, "t"
    )


@pytest.fixture
def crawl(tmp_path):
    d = tmp_path / "crawl" / "segments" / "1" / "wat"
    d.mkdir(parents=True)
    for name in ("a.warc.wat.gz", "b.warc.wat.gz", "c.wat"):
        (d / name).write_bytes(WARC)
    (d / "README.txt").write_text("not a WAT")
    return tmp_path / "crawl"


def test_directories_globs_files_and_listings(crawl, tmp_path):
    wat = crawl / "segments" / "1" / "wat"
    assert resolve_inputs(cfg([crawl], tmp_path / "o")) == [
        str(wat / n) for n in ("a.warc.wat.gz", "b.warc.wat.gz", "c.wat")
    ]
    assert resolve_inputs(cfg([f"{wat}/*.gz", wat / "a.warc.wat.gz"], tmp_path / "o")) == [
        str(wat / "a.warc.wat.gz"),
        str(wat / "b.warc.wat.gz"),
    ]  # each file once, in order
    listing = tmp_path / "wat.paths.gz"
    listing.write_bytes(gzip.compress(f"segments/1/wat/a.warc.wat.gz\n\n{wat / 'c.wat'}\n".encode()))
    got = resolve_inputs(cfg([listing], tmp_path / "o", base_url=str(crawl)))
    assert got == [str(wat / "a.warc.wat.gz"), str(wat / "c.wat")]
    assert resolve_inputs(cfg([listing], tmp_path / "o"))[0] == "s3://commoncrawl/segments/1/wat/a.warc.wat.gz"
    assert preflight(cfg([listing], tmp_path / "o", base_url=str(crawl))) == got


def test_an_empty_listing_is_refused(tmp_path):
    (tmp_path / "x.paths").write_text("# nothing\n")
    with pytest.raises(ClipforgeError, match="lists no file"):
        resolve_inputs(cfg([tmp_path / "x.paths"], tmp_path / "o"))


def test_output_states(crawl, tmp_path):
    out = tmp_path / "out"
    first = cfg([crawl], out)
    assert output_state(first, RunDir(str(out)), False) == "new"
    assert open_run(first, say=lambda m: None) is None
    assert output_state(first, RunDir(str(out)), False) == "resume"
    other = cfg([crawl], out, prefilter=False)
    with pytest.raises(ClipforgeError, match="extract.prefilter"):
        output_state(other, RunDir(str(out)), False)
    assert output_state(other, RunDir(str(out)), True) == "overwrite"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ClipforgeError, match="is not a clipforge extract run"):
        output_state(cfg([crawl], tmp_path / "mine"), RunDir(str(tmp_path / "mine")), True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_extract_source_only_for_a_complete_extract_output(tmp_path):
    out = RunDir(str(tmp_path / "out"))
    out.write_json("candidates/part-0.parquet", {})
    out.write_json("stats/extract.json", {"files": 2, "candidates": 5})
    assert extract_source(str(tmp_path / "out" / "candidates")) is None  # no manifest yet
    out.write_json("manifest.json", {"status": "complete", "kind": "wat_pairs"})
    found = {"extract": str(tmp_path / "out"), "stats": {"files": 2, "candidates": 5}}
    for path in ("candidates", "candidates/", "candidates/part-0.parquet"):
        assert extract_source(f"{tmp_path / 'out'}/{path}") == found, path
    out.write_json("manifest.json", {"status": "complete", "kind": "curated_candidates"})
    assert extract_source(str(tmp_path / "out" / "candidates")) is None  # a build's output, not an extract's
    (tmp_path / "list.parquet").write_bytes(b"")
    for plain in (tmp_path / "list.parquet", tmp_path / "out", "/candidates"):
        assert extract_source(str(plain)) is None, plain
