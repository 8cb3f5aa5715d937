"""A build in which no image downloads, run as a user types it: a synthetic web on loopback, `clipforge build
configs/base.yaml` without `download.fetch.allow_cidrs` (so the SSRF guard refuses every URL as forbidden_address),
with pre_balance on (it leaves rows, download leaves none). The build must complete (exit 0), say why nothing was
kept and how to fix it, and leave a complete run: manifest with kept 0, every input row in rejects/, an accurate
funnel, zero kept entry counts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.text import canonicalize_urls, url_uids
from infra.localweb.concepts import COLOURS, SHAPES
from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
N = 300


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("empty")
    web = tmp / "web"
    generate(WebConfig(seed=5, n_candidates=N, eval_per_concept=1), web)
    meta = tmp / "metadata.json"
    meta.write_text(json.dumps(["a", "photo", "of", "the", *COLOURS, *SHAPES]))
    run = tmp / "run"
    args = [
        "build",
        str(ROOT / "configs" / "base.yaml"),
        "--set", f"input.path={web / 'candidates.parquet'}",
        "--set", f"output={run}",
        "--set", f"match.metadata={meta}",
        "--set", "stages=[text, match, pre_balance, download, dedup, balance]",
    ]  # fmt: skip
    with serve_in_thread(web):
        out = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "RAY_ADDRESS": ""},
        )
    return web, run, out


def test_exit_0_and_says_why(built):
    _, _, out = built
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = next(s for s in out.stdout.splitlines() if "nothing kept" in s)
    assert "were rejected as forbidden_address" in line and "loopback" in line
    assert "download.fetch.allow_cidrs" in line
    assert "Traceback" not in out.stderr


def test_manifest_and_rejects_hold_every_row(built):
    web, run, _ = built
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["shards"] == []
    c = manifest["counts"]
    assert (c["input_rows"], c["kept"], c["rejected"], c["shards"]) == (N, 0, N, 0)
    assert 0 < c["downloaded"] < N, "pre_balance and the text filters leave some rows, download none"
    rejects = pq.read_table(run / "rejects")
    assert rejects.num_rows == N
    urls = pq.read_table(web / "candidates.parquet", columns=["url"])["url"].to_pylist()
    canon, _ = canonicalize_urls(pa.array(urls, pa.string()))
    url = [c if c is not None else (u or "") for c, u in zip(canon.to_pylist(), urls, strict=True)]
    assert set(rejects["uid"].to_pylist()) == set(url_uids(pa.array(url, pa.string())).to_pylist())
    assert not (run / "work").exists()
    assert not list(run.glob("shards/*.tar"))


def test_funnel_is_accurate(built):
    _, run, _ = built
    manifest = json.loads((run / "manifest.json").read_text())
    funnel = json.loads((run / "stats" / "funnel.json").read_text())
    rejects = pq.read_table(run / "rejects", columns=["stage", "reason"]).to_pylist()
    assert (funnel["input_rows"], funnel["kept"], funnel["rejected"]) == (N, 0, N)
    for r in funnel["by_reason"]:
        assert r["rows"] == sum(1 for x in rejects if (x["stage"], x["reason"]) == (r["stage"], r["reason"]))
    downloaded = manifest["counts"]["downloaded"]
    assert {"stage": "download", "reason": "forbidden_address", "rows": downloaded} in funnel["by_reason"]
    stages = [s["stage"] for s in funnel["by_stage"]]
    assert stages.index("pre_balance") < stages.index("download") == len(stages) - 1
    assert funnel["by_stage"][-1] == {"stage": "download", "rejected": downloaded, "remaining": 0}
    assert "forbidden_address" in funnel["nothing_kept"]
    assert not np.load(run / "stats" / "entry_counts_post.npy").any()
    assert np.load(run / "stats" / "entry_counts_pre.npy").any()
