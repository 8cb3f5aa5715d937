"""`clipforge extract` as a user runs it: bad input is exit 2 with a message naming it and nothing under OUT; a run
killed mid-way (SIGKILL to its process group) and re-run skips the committed files and writes the same candidates as
an uninterrupted extraction, without duplicate rows. (The re-run goes through the same `extract()` the command calls,
on the session's Ray: a second Ray start-up would double the test's time.)"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.wat import collapse_pairs, extract_pairs
from infra.localweb.wat import write_bulk_wat
from pipeline.core.config import validate_config
from pipeline.extract import extract
from pipeline.extract_config import ExtractConfig

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:8431"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ADDRESS": ""}
    cmd = [sys.executable, "-m", "pipeline.cli", "extract", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty").mkdir()
    (tmp / "notes").mkdir()
    (tmp / "notes" / "README.md").write_text("no WAT here")
    (tmp / "pairs.csv").write_text("url,caption\nhttp://a/b.jpg,a cat\n")
    (tmp / "fake.warc.wat.gz").write_bytes(gzip.compress(b"<html>not a warc</html>"))
    (tmp / "wat.paths").write_text("crawl/missing.warc.wat.gz\n")
    return {
        "missing": ([str(tmp / "nope.warc.wat.gz")], "nope.warc.wat.gz' does not exist"),
        "not-warc": ([str(tmp / "pairs.csv")], "pairs.csv' does not start as a WARC file"),
        "gzip-not-warc": ([str(tmp / "fake.warc.wat.gz")], "fake.warc.wat.gz' does not start as a WARC file"),
        "empty-dir": ([str(tmp / "empty")], "empty' is a directory with no WAT file"),
        "dir-without-wat": ([str(tmp / "notes")], "notes' is a directory with no WAT file"),
        "glob": ([str(tmp / "*.wat.gz.nothing")], "matches no file"),
        "listing": (
            [str(tmp / "wat.paths"), "--set", f"extract.base_url={tmp}"],
            "missing.warc.wat.gz' does not exist",
        ),
    }


def test_bad_input_is_exit_2_naming_it_and_nothing_is_written(tmp_path):
    args, message = bad_inputs(tmp_path)["missing"]
    res = cli(*args, "--output", str(tmp_path / "out"))  # the console script, once
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["not-warc", "gzip-not-warc", "empty-dir", "dir-without-wat", "glob", "listing"])
def test_each_bad_input_names_itself(tmp_path, capsys, case):
    from pipeline.cli import main

    args, message = bad_inputs(tmp_path)[case]
    with pytest.raises(SystemExit) as exit_:
        main(["extract", *args, "--output", str(tmp_path / "out")])  # in-process: the same code, no interpreter start
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_killed_extract_resumes_to_the_same_candidates(ray_local, tmp_path):
    wat = tmp_path / "wat"
    wat.mkdir()
    images = [(f"{BASE}/img/ok/{i}/0/{i}.jpg", f"a red circle number {i % 700}") for i in range(2000)]
    files = [wat / f"crawl-{i:03d}.warc.wat.gz" for i in range(12)]
    for i, f in enumerate(files):
        write_bulk_wat(f, BASE, images, range(i * 500, (i + 1) * 500), text_pages=2)
    reference = collapse_pairs(pa.concat_tables([extract_pairs(f)[0] for f in files]))
    out = tmp_path / "out"
    markers = out / "work" / "files"
    env = {**os.environ, "RAY_ADDRESS": ""}
    cmd = [sys.executable, "-m", "pipeline.cli", "extract", str(wat), "--output", str(out), "-q"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and len(list(markers.glob("*.json"))) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, "extract finished (or died) before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(2)  # a task in flight may still commit its file (atomically) as it goes down
    before = len(list(markers.glob("*.json")))
    print(f"\nkilled with {before} of {len(files)} files committed")
    assert 2 <= before < len(files) and not (out / "manifest.json").exists()
    said: list[str] = []  # the re-run: same command, in this process on the session's Ray
    extract(validate_config(ExtractConfig, {"input": [str(wat)], "output": str(out)}, "test"), say=said.append)
    assert "resuming the unfinished run" in said[0], said
    m = re.search(r"(\d+) committed by an earlier run, (\d+) to read", said[1])
    assert m and int(m.group(1)) >= before and int(m.group(1)) + int(m.group(2)) == len(files), said
    got = pq.read_table(out / "candidates").sort_by([("url", "ascending"), ("caption", "ascending")])
    assert got.num_rows == len(set(zip(got["url"].to_pylist(), got["caption"].to_pylist(), strict=True)))
    assert got.select(reference.column_names).equals(reference)
    stats = json.loads((out / "stats" / "extract.json").read_text())
    assert stats["files_committed"] == len(files) and stats["candidates"] == reference.num_rows
