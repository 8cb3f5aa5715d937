"""Malformed politeness settings stop `clipforge build` before anything runs: exit 2 with one line naming the file
and the line (the opt-out registry) or the file and the key (robots.txt and resolve settings) — never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("polite-errors")
    generate(WebConfig(seed=1, n_candidates=50, wat_pages=0), d / "web")
    (d / "meta.json").write_text(json.dumps(["red", "circle"]))
    return d


def _dry_run(d: Path, download: str) -> subprocess.CompletedProcess:
    cfg = d / "cfg.yaml"
    cfg.write_text(
        f"input: {{path: {d / 'web' / 'candidates.parquet'}}}\noutput: {d / 'run'}\n"
        f"stages: [text, match, download]\nmatch: {{metadata: {d / 'meta.json'}}}\ndownload:\n{download}"
    )
    cmd = [sys.executable, "-m", "pipeline.cli", "build", str(cfg), "--dry-run"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_malformed_registry_names_its_file_and_line(inputs):
    (inputs / "optout.txt").write_text("# do not train\nexample.com\nftp://bad.example/x\n")
    r = _dry_run(inputs, f"  opt_out_registry: {inputs / 'optout.txt'}\n")
    assert r.returncode == 2, r.stderr
    assert "optout.txt line 3" in r.stderr and "ftp://bad.example/x" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ('    resolve: {"*.web.test": localhost}\n', "key 'download.fetch.resolve': resolve entry '*.web.test'"),
        ("    max_crawl_delay_s: -1\n", "key 'download.fetch.max_crawl_delay_s'"),
        ("    robots_txt: sometimes\n", "key 'download.fetch.robots_txt'"),
    ],
)
def test_malformed_robots_and_resolve_settings_name_the_file_and_key(inputs, setting, says):
    r = _dry_run(inputs, "  fetch:\n" + setting)
    assert r.returncode == 2, r.stderr
    assert "cfg.yaml" in r.stderr and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
