"""The build's fast execution (class stages as tasks that keep their setup for the whole build, the V1 Parquet
reader, the pull-based sort shuffle; #19) writes exactly what the reference execution writes (an actor pool per
stage per phase, Ray Data's datasource V2 reader and SHUFFLE_V2 — the build before #19): same kept uids, sidecar
rows, shard bytes, rejects, entry counts and funnel, on the same web, config and seed.

The web has faults — slow URLs (always past the deadline) and 429s (their 1 s Retry-After always fits in it), so
which URLs fail does not depend on load — exact and near duplicates and eval-set copies: every step decides something.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.build import build
from pipeline.core.config import dump_config
from tests.fixtures.builds import text_metadata

ROOT = Path(__file__).resolve().parents[2]
N = 800
REFERENCE_ENV = {
    "CLIPFORGE_STAGE_COMPUTE": "actors",
    "RAY_DATA_USE_DATASOURCE_V2": "1",
    "RAY_DATA_DEFAULT_SHUFFLE_STRATEGY": "shuffle_v2",
}


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


@pytest.mark.timeout(900)
def test_fast_execution_writes_what_the_reference_execution_writes(ray_local, tmp_path):
    web = tmp_path / "web"
    generate(WebConfig(seed=5, n_candidates=N, slow_seconds=8.0, eval_per_concept=2), web)
    metadata = text_metadata(tmp_path / "metadata.json")
    fast, reference = tmp_path / "fast", tmp_path / "reference"
    with serve_in_thread(web, prewarm=N):
        manifest = build(_config(web, metadata, fast), say=lambda line: None)
        config = tmp_path / "reference.yaml"
        config.write_text(dump_config(_config(web, metadata, reference)))
        env = {**os.environ, "RAY_ADDRESS": "", **REFERENCE_ENV}
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "build", str(config), "-q"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=840,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert manifest["counts"]["kept"] > 50 and manifest["counts"]["shards"] >= 2
    compare = _compare_runs()
    a, b = compare.summary(fast), compare.summary(reference)
    assert a.keys() == b.keys()
    differ = [key for key in a if a[key] != b[key]]
    assert not differ, f"fast and reference builds differ in {differ}"
