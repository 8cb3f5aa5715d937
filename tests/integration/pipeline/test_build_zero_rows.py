"""Builds that keep nothing before download, on the session Ray: every caption rejected by the text filters
(text-only build) and no caption matching the metadata (image build: no row reaches download, so every step after
it runs on zero rows). Both complete with a manifest, every row in rejects/, and say why nothing was kept.
"""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.build import build
from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config

N = 12


def config(tmp_path, stages: list[str], captions: list[str]) -> BuildConfig:
    urls = [f"http://127.0.0.1:9/img/{i}.jpg" for i in range(N)]
    pq.write_table(pa.table({"url": urls, "caption": captions}), tmp_path / "candidates.parquet")
    (tmp_path / "metadata.json").write_text(json.dumps(["zebra", "giraffe"]))
    data = {
        "input": {"path": str(tmp_path / "candidates.parquet")},
        "output": str(tmp_path / "run"),
        "stages": stages,
        "match": {"metadata": str(tmp_path / "metadata.json")},
    }
    return validate_config(BuildConfig, data, "test")


def check_empty_run(tmp_path, manifest: dict, lines: list[str], stage: str, reason: str) -> dict:
    run = tmp_path / "run"
    assert manifest["status"] == "complete"
    assert (manifest["counts"]["input_rows"], manifest["counts"]["kept"], manifest["counts"]["rejected"]) == (N, 0, N)
    rejects = pq.read_table(run / "rejects")
    assert rejects.num_rows == N and set(rejects["stage"].to_pylist()) == {stage}
    funnel = json.loads((run / "stats" / "funnel.json").read_text())
    assert funnel["by_reason"] == [{"stage": stage, "reason": reason, "rows": N}]
    assert funnel["by_stage"] == [{"stage": stage, "rejected": N, "remaining": 0}]
    assert not np.load(run / "stats" / "entry_counts_post.npy").any()
    assert any(
        line.startswith(f"nothing kept: all {N} rows that reached {stage} were rejected as {reason}") for line in lines
    )
    return funnel


def test_text_only_build_with_every_caption_too_short(ray_local, tmp_path):
    lines: list[str] = []
    cfg = config(tmp_path, ["text", "match", "balance"], ["zebra"] * N)
    manifest = build(cfg, say=lines.append)
    funnel = check_empty_run(tmp_path, manifest, lines, "text", "too_short")
    assert "text.filters" in funnel["nothing_kept"]


def test_image_build_with_no_caption_matching(ray_local, tmp_path):
    lines: list[str] = []
    captions = [f"a small photo of a red kite number {i}" for i in range(N)]
    cfg = config(tmp_path, ["text", "match", "pre_balance", "download", "dedup", "balance"], captions)
    manifest = build(cfg, say=lines.append)
    funnel = check_empty_run(tmp_path, manifest, lines, "match", "no_match")
    assert "match.metadata" in funnel["nothing_kept"]
    assert manifest["shards"] == [] and manifest["counts"]["downloaded"] == 0
    dedup = json.loads((tmp_path / "run" / "dedup" / "exact.json").read_text())
    assert (dedup["rows"], dedup["dropped"]) == (0, 0)
    assert manifest["balance"]["matches_after_dedup"] == 0
