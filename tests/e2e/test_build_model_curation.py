"""An image build with the model-based stages (#22) on CPU with a tiny open_clip model: embed → clip_filter →
semdedup between dedup and balance; embeddings stored per download part; the funnel and `--dry-run` show the stages;
a model whose width differs from the stored embeddings stops a resumed run before any work (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.build import build, plan, steps
from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config
from pipeline.core.errors import ClipforgeError
from pipeline.steps import reject_order
from tests.fixtures.builds import text_metadata

ROOT = Path(__file__).resolve().parents[2]
N = 240


def model_dir(path: Path, embed_dim: int = 64) -> Path:
    """A random clipforge-tiny (optionally another embedding width) exported as an open_clip local-dir."""
    from evaluation.models import MODELS_DIR, export_random_local_dir, register_model_configs

    cfg = json.loads((MODELS_DIR / "clipforge-tiny.json").read_text())
    name = f"clipforge-tiny-w{embed_dim}"
    (path.parent / "configs").mkdir(parents=True, exist_ok=True)
    (path.parent / "configs" / f"{name}.json").write_text(json.dumps({**cfg, "embed_dim": embed_dim}))
    register_model_configs(path.parent / "configs")
    return export_random_local_dir(name, path, seed=0)


def config_data(tmp: Path, web: Path, model: Path) -> dict:
    return {
        "input": {"path": str(web / "candidates.parquet"), "rows_per_block": 80},
        "output": str(tmp / "run"),
        "stages": ["text", "match", "download", "dedup", "embed", "clip_filter", "semdedup", "balance"],
        "match": {"metadata": str(text_metadata(tmp / "metadata.json"))},
        "balance": {"t": 10},
        "download": {"fetch": {"allow_cidrs": ["127.0.0.0/8"], "deadline_s": 3.0}, "threads": 8, "rows_per_part": 60},
        "image": {"image_size": 32, "min_image_size": 16, "max_aspect_ratio": 4.5},
        "embed": {"model": f"local-dir:{model}", "batch_size": 64},
        "clip_filter": {"keep_fraction": 0.9},
        "semdedup": {"eps": 0.02, "n_clusters": 4},
    }


@pytest.mark.timeout(1200)
def test_build_with_embed_clip_filter_and_semdedup(ray_local, tmp_path):
    web = tmp_path / "web"
    generate(WebConfig(seed=5, n_candidates=N, fault_rate=0.05, eval_per_concept=1), web)
    model = model_dir(tmp_path / "model")
    data = config_data(tmp_path, web, model)
    cfg = validate_config(BuildConfig, data, "test")
    lines = plan(cfg)
    assert any(line.startswith("embed: embed (local-dir:") for line in lines)
    assert any("clip_filter (barrier: cosine(image, caption), keep top 0.9" in line for line in lines)
    assert any("semdedup (barrier: k-means k=4" in line for line in lines)
    with serve_in_thread(web, prewarm=N):
        manifest = build(cfg, say=lambda line: None)
    run = tmp_path / "run"

    # embeddings: one float16 file per download part, every downloaded live row embedded once
    parts = sorted((run / "embeddings" / "parts").glob("part-*.parquet"))
    assert len(parts) == manifest["download"]["parts"] and manifest["outputs"]["embeddings"] == "embeddings/"
    emb = pa.concat_tables([pq.read_table(p) for p in parts])
    assert emb.schema.field("image_emb").type == pa.list_(pa.float16(), 64)
    assert emb.num_rows == manifest["embed"]["rows"] == len(set(emb["uid"].to_pylist())) > 50

    rejects = pq.read_table(run / "rejects").to_pandas()
    low = rejects[rejects.reason == "low_clip_score"]
    info = json.loads((run / "dedup" / "clip_filter.json").read_text())
    assert len(low) == info["rejected"] == emb.num_rows - int(np.ceil(0.9 * emb.num_rows)) > 0
    assert set(low.stage) == {"clip_filter"} and all(d.startswith("score=") for d in low.detail)
    assert set(low.uid) <= set(emb["uid"].to_pylist())
    sem = rejects[rejects.reason == "semantic_duplicate"]
    assert set(sem.stage) <= {"semdedup"}
    filtered = set(rejects[rejects.stage.isin(["dedup", "eval_dedup", "clip_filter", "semdedup"])].uid)
    for detail in sem.detail:  # each names the kept row of its group: embedded, not dropped by any filter
        kept = detail.split(" ")[0]
        assert kept in set(emb["uid"].to_pylist()) and kept not in filtered

    funnel = json.loads((run / "stats" / "funnel.json").read_text())
    order = [s["stage"] for s in funnel["by_stage"]]
    expected = reject_order(steps(cfg))
    assert expected.index("dedup") < expected.index("clip_filter") < expected.index("semdedup")
    assert expected.index("semdedup") < expected.index("balance")
    assert "clip_filter" in order and order == sorted(order, key=expected.index)

    # the report's model section: score histogram with the threshold, lowest-scoring dropped pairs with the images
    # the build stored for them (their rows never reach a shard), semantic-duplicate groups when there are any
    from pipeline.report import write_report
    from pipeline.stages.model_thumbs import CLIP_SHOWN, duplicate_groups

    page = Path(write_report(str(run))).read_text()
    block = page.split('<section id="model">')[1].split("</section>")[0]
    assert f"{info['threshold']:.4f} (top 0.9 of the run)" in block and "histogram with the threshold" in block
    lowest = block.split("Lowest-scoring dropped pairs")[1].split("<h3>")[0]
    assert lowest.count("data:image/jpeg") == min(CLIP_SHOWN, len(low)) > 0 and 'class="noimg"' not in lowest
    groups = block.split("Semantic duplicates")[1]
    shown = duplicate_groups(pq.read_table(run / "dedup" / "semdedup.parquet"))
    assert len(shown) == min(6, len({d.split(" ")[0] for d in sem.detail}))
    assert groups.count(" dropped") == len(shown) and groups.count("cos ") == sum(len(g["dropped"]) for g in shown)

    # a model of another width under the same path: the resumed run stops in preflight, before any work
    (run / "manifest.json").unlink()
    before = sorted(p.name for p in run.rglob("*"))
    import shutil

    shutil.rmtree(model)
    model_dir(tmp_path / "model", embed_dim=32)
    with pytest.raises(ClipforgeError, match="width 32.*width 64"):
        build(validate_config(BuildConfig, data, "test"), say=lambda line: None)
    assert sorted(p.name for p in run.rglob("*")) == before


def test_a_missing_model_exits_2_before_any_work(tmp_path):
    web = tmp_path / "web"
    generate(WebConfig(seed=5, n_candidates=40), web)
    data = config_data(tmp_path, web, tmp_path / "no-model")
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "build", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "does not exist" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
