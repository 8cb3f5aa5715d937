"""Dedup barriers and stages on a local Ray over the synthetic web: planted duplicate clusters and planted copies of
evaluation images are found (precision/recall against the answers file), artifacts are deterministic, no row is lost.
"""

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from curation.fetch_config import FetchConfig
from curation.images import ImageConfig
from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.dedup import (
    ARTIFACT_SCHEMA,
    DedupConfig,
    DedupRejectConfig,
    DedupRejectStage,
    EvalDedupConfig,
    EvalDedupStage,
    EvalSetConfig,
    eval_hashes,
    exact_dedup,
    near_dedup,
)
from pipeline.stages.base import StageSpec, run_stages
from pipeline.stages.download import DownloadConfig, FetchImagesConfig, FetchImagesStage

N = 500
IMAGE = ImageConfig(image_size=64, min_image_size=32, max_aspect_ratio=4.5)
WEB = WebConfig(
    seed=2,
    n_candidates=N,
    fault_rate=0.0,
    dup_exact_rate=0.15,
    dup_near_rate=0.15,
    eval_copy_rate=0.08,
    eval_per_concept=2,
)


def collect(ds) -> pa.Table:
    import ray

    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


@pytest.fixture(scope="module")
def run(ray_local, tmp_path_factory):
    """Download the web once (one row per URL, uid = sha224(url)[:24] as the text stage makes them), run the three
    barriers and both stages; return everything the tests look at."""
    import ray

    web, run_dir = tmp_path_factory.mktemp("web"), tmp_path_factory.mktemp("run")
    generate(WEB, web)
    rows = pq.read_table(web / "candidates.parquet")
    rows = rows.append_column("row_id", pa.array(np.arange(rows.num_rows), pa.int64()))
    uids = [hashlib.sha224(u.encode()).hexdigest()[:24] for u in rows["url"].to_pylist()]
    rows = rows.append_column("uid", pa.array(uids)).take(np.sort(np.unique(uids, return_index=True)[1]))
    fetch = FetchConfig(allow_cidrs=["127.0.0.0/8"], per_host_concurrency=64)
    stage = FetchImagesConfig(download=DownloadConfig(fetch=fetch, threads=64), image=IMAGE)
    with serve_in_thread(web, prewarm=N):
        ds = run_stages(ray.data.from_arrow(rows).repartition(4), [StageSpec(FetchImagesStage, stage, 100)])
        ds = ds.materialize()
    cfg = DedupConfig(eval_sets=[EvalSetConfig(name="synthetic", path=str(web / "eval" / "synthetic.parquet"))])
    paths = {
        "exact": exact_dedup(ds, cfg, str(run_dir)),
        "near": near_dedup(ds, cfg, str(run_dir)),
        "eval": eval_hashes(cfg.eval_sets, IMAGE, str(run_dir)),
    }
    specs = [
        StageSpec(DedupRejectStage, DedupRejectConfig(exact=paths["exact"], near=paths["near"])),
        StageSpec(EvalDedupStage, EvalDedupConfig(hashes=paths["eval"], k_eval=cfg.k_eval)),
    ]
    out = collect(run_stages(ds, specs).drop_columns(["image"]))
    answers = pq.read_table(web / "answers.parquet")
    return {
        "ds": ds,
        "cfg": cfg,
        "paths": paths,
        "run": Path(run_dir),
        "in": rows.num_rows,
        "out": out,
        "answers": {r["row_id"]: r for r in answers.to_pylist()},
    }


def pairs(groups: dict) -> set:
    return {p for members in groups.values() for p in itertools.combinations(sorted(members), 2)}


def test_every_row_comes_out_once_with_one_reason(run):
    out = run["out"]
    assert out.num_rows == run["in"] and len(set(out["uid"].to_pylist())) == run["in"]
    assert set(out["reject_reason"].drop_null().to_pylist()) <= {"exact_duplicate", "near_duplicate", "eval_duplicate"}
    assert all(d for d in out.filter(pc.is_valid(out["reject_reason"]))["reject_detail"].to_pylist())


def test_planted_duplicate_clusters_are_found(run):
    """Pairs of rows in one planted cluster (answers.dup_cluster) vs pairs the dedup put in one cluster."""
    rows = [r for r in run["out"].to_pylist() if r["phash"] is not None]
    keep = {
        r["uid"]: (r["reject_detail"] if r["reject_reason"] in ("exact_duplicate", "near_duplicate") else None)
        for r in rows
    }

    def root(uid):
        while keep.get(uid):
            uid = keep[uid]
        return uid

    truth, found = {}, {}
    for r in rows:
        cluster = run["answers"][r["row_id"]]["dup_cluster"]
        if cluster >= 0:
            truth.setdefault(cluster, []).append(r["uid"])
        found.setdefault(root(r["uid"]), []).append(r["uid"])
    t, f = pairs(truth), pairs(found)
    recall, precision = len(t & f) / len(t), len(t & f) / len(f)
    print(
        f"\ndedup vs planted clusters: {len(t)} true pairs, {len(f)} found, recall {recall:.3f}, "
        f"precision {precision:.3f}"
    )
    assert len(t) > 100
    assert recall >= 0.95 and precision >= 0.99  # misses: 1 % crops, whose pHash can move 6 bits (> k = 4)


def test_planted_eval_copies_are_dropped(run):
    rows = [r for r in run["out"].to_pylist() if r["phash"] is not None]
    copies = [r for r in rows if run["answers"][r["row_id"]]["eval_copy_of"] >= 0]
    leaked = [r for r in copies if r["reject_reason"] is None]
    flagged = [r for r in rows if r["reject_reason"] == "eval_duplicate"]
    wrong = [r for r in flagged if run["answers"][r["row_id"]]["eval_copy_of"] < 0]
    named = sum(
        r["reject_detail"].split()[0] == f"synthetic:{run['answers'][r['row_id']]['eval_copy_of']}" for r in flagged
    )
    print(f"\neval copies: {len(copies)} downloaded, {len(leaked)} leaked, {len(flagged)} flagged, {len(wrong)} wrong")
    assert len(copies) > 20
    assert 1 - len(leaked) / len(copies) >= 0.95 and not wrong
    assert named == len(flagged)  # the detail names the very image that was copied


def test_artifacts_and_summaries(run):
    for step in ("exact", "near"):
        art = pq.read_table(run["paths"][step])
        assert art.schema == ARTIFACT_SCHEMA and art.num_rows > 10
        assert art["uid"].to_pylist() == sorted(art["uid"].to_pylist())
        assert not set(art["representative"].to_pylist()) & set(art["uid"].to_pylist())  # representatives are kept
        summary = json.loads((run["run"] / "dedup" / f"{step}.json").read_text())
        assert summary["dropped"] == art.num_rows
    near = pq.read_table(run["paths"]["near"])
    assert 0 < min(near["distance"].to_pylist()) and max(near["distance"].to_pylist()) <= 8
    hashes = pq.read_table(run["paths"]["eval"])
    assert hashes.num_rows == 74 * WEB.eval_per_concept and hashes["phash"].null_count == 0


def test_exact_artifact_does_not_depend_on_row_order(run, tmp_path):
    shuffled = run["ds"].random_shuffle(seed=5).repartition(3).materialize()
    again = exact_dedup(shuffled, run["cfg"], str(tmp_path))
    assert pq.read_table(again).equals(pq.read_table(run["paths"]["exact"]))
