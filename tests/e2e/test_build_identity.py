"""The build's fast execution (class stages as tasks that keep their setup for the whole build, the V1 Parquet
reader, the pull-based sort shuffle; #19) writes exactly what the reference execution writes (an actor pool per
stage per phase, Ray Data's datasource V2 reader and SHUFFLE_V2 — the build before #19): same kept uids, sidecar
rows, shard bytes, rejects, entry counts and funnel, on the same web, config and seed.

The web has faults — slow URLs (always past the deadline) and 429s (their 1 s Retry-After always fits in it), so
which URLs fail does not depend on load — exact and near duplicates and eval-set copies: every step decides something.
The candidates carry DataComp-style columns of their own (`uid`, `score`): they reach the sidecars, the samples' .json
and the rejects (`input.keep_columns`, #18 item 5).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.build import build
from pipeline.core.config import dump_config
from pipeline.core.tar import iter_samples
from tests.fixtures.builds import RAY_HINTS, text_metadata

ROOT = Path(__file__).resolve().parents[2]
N = 800


def _compare_runs():
    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(web: Path, metadata: Path, out: Path):
    from pipeline.build_config import BuildConfig
    from pipeline.core.config import validate_config

    data = {
        "input": {"path": str(web / "candidates.parquet"), "rows_per_block": 200},
        "output": str(out),
        "stages": ["text", "match", "pre_balance", "download", "dedup", "balance"],
        "match": {"metadata": str(metadata)},
        "balance": {"oversample": 3.0},
        "download": {
            "fetch": {"allow_cidrs": ["127.0.0.0/8"], "deadline_s": 3.0, "backoff_base_s": 0.05},
            "threads": 16,
            "rows_per_part": 150,
        },
        "image": {"image_size": 32, "min_image_size": 16, "max_aspect_ratio": 4.5},
        "dedup": {"eval_sets": [{"name": "synthetic", "path": str(web / "eval" / "synthetic.parquet")}]},
        "shards": {"samples_per_shard": 60},
    }
    return validate_config(BuildConfig, data, "test")


@pytest.fixture
def reference_execution(monkeypatch):
    """Ray Data's defaults (datasource V2, SHUFFLE_V2) and an actor pool per class stage, in this process."""
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    ctx = DataContext.get_current()
    monkeypatch.setattr(ctx, "use_datasource_v2", True)
    monkeypatch.setattr(ctx, "shuffle_strategy", ShuffleStrategy.SHUFFLE_V2)
    monkeypatch.setenv("CLIPFORGE_STAGE_COMPUTE", "actors")


@pytest.mark.timeout(900)
def test_fast_execution_writes_what_the_reference_execution_writes(ray_local, reference_execution, tmp_path):
    web = tmp_path / "web"
    generate(WebConfig(seed=5, n_candidates=N, slow_seconds=8.0, eval_per_concept=2), web)
    cands = pq.read_table(web / "candidates.parquet")  # + DataComp-style columns of the input's own (#18 item 5)
    source = {f"dc{i:04d}": i / N for i in range(cands.num_rows)}
    cands = cands.append_column("uid", pa.array(list(source))).append_column("score", pa.array(list(source.values())))
    pq.write_table(cands, web / "candidates.parquet")
    metadata = text_metadata(tmp_path / "metadata.json")
    fast, reference = tmp_path / "fast", tmp_path / "reference"
    with serve_in_thread(web, prewarm=N):
        config = tmp_path / "fast.yaml"
        config.write_text(dump_config(_config(web, metadata, fast)))
        env = {**os.environ, "RAY_ADDRESS": ""}
        for name in ("CLIPFORGE_STAGE_COMPUTE", "RAY_DATA_USE_DATASOURCE_V2", "RAY_DATA_DEFAULT_SHUFFLE_STRATEGY"):
            env.pop(name, None)
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "build", str(config), "-q"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        manifest = build(_config(web, metadata, reference), say=lambda line: None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for noise in RAY_HINTS:  # #18 item 9: `-q` prints the kept count and the run directory, not Ray's hints
        assert noise not in proc.stdout + proc.stderr, noise
    assert manifest["counts"]["kept"] > 50 and manifest["counts"]["shards"] >= 2
    compare = _compare_runs()
    a, b = compare.summary(fast), compare.summary(reference)
    assert a.keys() == b.keys()
    differ = [key for key in a if a[key] != b[key]]
    assert not differ, f"fast and reference builds differ in {differ}"
    # the input's columns reach the sidecars, each sample's .json and the rejects, row for row
    sidecars = pa.concat_tables([pq.read_table(fast / e["sidecar"]) for e in manifest["shards"]])
    rejects = pq.read_table(fast / "rejects")
    for t in (sidecars, rejects):
        got = zip(t["input_uid"].to_pylist(), t["score"].to_pylist(), strict=True)
        assert all(source[u] == v for u, v in got)
    assert sorted(sidecars["input_uid"].to_pylist() + rejects["input_uid"].to_pylist()) == sorted(source)
    with (fast / manifest["shards"][0]["path"]).open("rb") as f:
        sample = next(iter_samples(f))
    meta = json.loads(sample["json"])
    assert source[meta["input_uid"]] == meta["score"]
