"""The build's download stages on a local Ray over a synthetic web with every fault kind: each row ends at the outcome
the answers file expects, through `FetchImagesStage` alone (`fused`) and through `DownloadPartStage` as the build runs
it (`parts`: rows grouped into download parts by uid, each part fetched and committed as one parquet file)."""

import io
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.fetch_config import FetchConfig
from curation.images import ImageConfig
from curation.text import url_uids
from infra.localweb.config import WebConfig
from infra.localweb.faults import EXPECTED_OUTCOME
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.stages.base import StageSpec, apply_group_stage, run_stages
from pipeline.stages.download import FETCH_COLUMNS, IMAGE_COLUMNS, DownloadConfig, FetchImagesConfig, FetchImagesStage
from pipeline.stages.download_parts import (
    PART_SUMMARY,
    DownloadPartsConfig,
    DownloadPartStage,
    add_part_column,
    committed_parts,
)

# answers.expected_outcome -> (reject_stage, reject_reason); None, None = a live row with an image
EXPECTED = {
    "ok": (None, None),
    "ok_after_retry": (None, None),  # 429 + Retry-After: 1, honoured
    "error_http_404": ("download", "http_error"),
    "error_http_500": ("download", "http_5xx"),  # after the retries
    "error_timeout": ("download", "timeout"),  # the total deadline stops a drip-feeding server
    "error_connection": ("download", "connection_error"),
    "error_truncated": ("download", "truncated"),
    "error_not_an_image": ("download", "bad_content_type"),
    "error_decompression_bomb": ("images", "too_many_pixels"),
    "error_too_small": ("images", "too_small"),
    "skipped_noai": ("download", "opt_out"),
    "error_too_many_redirects": ("download", "too_many_redirects"),
    "error_forbidden_address": ("download", "forbidden_address"),
}
FETCH = FetchConfig(allow_cidrs=["127.0.0.0/8"], deadline_s=3.0, backoff_base_s=0.1, per_host_concurrency=64)
# Synthetic images have aspect ratios up to 4:1 and sides down to 45 px (a 0.7× resize of 64 px); tiny is 8 px.
IMAGE = ImageConfig(image_size=64, min_image_size=32, max_aspect_ratio=4.5)
N = 260
PARTS = 5


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=1, n_candidates=N, fault_rate=0.7, slow_seconds=8, eval_per_concept=1), out)
    return out


FETCH_IMAGES = FetchImagesConfig(download=DownloadConfig(fetch=FETCH, threads=64), image=IMAGE)


def candidates(web):
    import ray

    rows = pq.read_table(web / "candidates.parquet")
    rows = rows.append_column("row_id", pa.array(np.arange(rows.num_rows), pa.int64()))
    rows = rows.append_column("uid", url_uids(rows["url"]))
    return ray.data.from_arrow(rows).repartition(4)


def by_row_id(out: pa.Table) -> pa.Table:
    return out.take(pa.compute.sort_indices(out["row_id"]))


def run_fused(web, work) -> pa.Table:
    import ray

    ds = run_stages(candidates(web), [StageSpec(FetchImagesStage, FETCH_IMAGES, 70)])
    return by_row_id(pa.concat_tables(ray.get(ds.to_arrow_refs())))


def run_parts(web, work) -> pa.Table:
    ds = run_stages(candidates(web), [StageSpec(add_part_column, PARTS)])
    cfg = DownloadPartsConfig(fetch=FETCH_IMAGES, out_dir=str(work))
    summary = pa.Table.from_pylist(apply_group_stage(ds, "part", StageSpec(DownloadPartStage, cfg), 2).take_all())
    assert summary.schema == PART_SUMMARY and sorted(summary["part"].to_pylist()) == list(range(PARTS))
    assert committed_parts(str(work)) == set(range(PARTS))
    return by_row_id(pa.concat_tables(pq.read_table(work / f"part-{p:06d}.parquet") for p in range(PARTS)))


@pytest.fixture(scope="module")
def results(ray_local, web, tmp_path_factory):
    out = {}
    with serve_in_thread(web, prewarm=N) as server:
        for name, fn in (("fused", run_fused), ("parts", run_parts)):
            server.reset_state()  # the 429 URLs refuse their first request again
            t0 = time.monotonic()
            out[name] = fn(web, tmp_path_factory.mktemp(name))
            out[name + "_seconds"] = time.monotonic() - t0
    return out


def test_the_web_plants_every_fault(web):
    answers = pq.read_table(web / "answers.parquet")
    assert set(answers["expected_outcome"].to_pylist()) == set(EXPECTED) == set(EXPECTED_OUTCOME.values())


@pytest.mark.parametrize("name", ["fused", "parts"])
def test_every_row_reaches_its_expected_outcome(web, results, name):
    out, answers = results[name], pq.read_table(web / "answers.parquet")
    assert out["row_id"].to_pylist() == list(range(N))  # no row lost, none duplicated
    got = list(zip(out["reject_stage"].to_pylist(), out["reject_reason"].to_pylist(), strict=True))
    want = [EXPECTED[e] for e in answers["expected_outcome"].to_pylist()]
    wrong = Counter((w, g) for w, g in zip(want, got, strict=True) if w != g)
    assert not wrong, wrong
    assert results[name + "_seconds"] < 90  # the slow fault is cut at the 3 s deadline; nothing hangs
    details = dict(zip(out["reject_reason"].to_pylist(), out["reject_detail"].to_pylist(), strict=True))
    assert details["http_error"] == "404" and "decompression bomb" in details["too_many_pixels"]
    assert "body" not in out.column_names and "part" not in out.column_names
    for col, typ in {**FETCH_COLUMNS, **IMAGE_COLUMNS}.items():
        assert out.schema.field(col).type == typ


@pytest.mark.parametrize("name", ["fused", "parts"])
def test_live_rows_carry_a_resized_image_and_hashes(results, name):
    out = results[name]
    live = out.filter(pa.compute.is_null(out["reject_reason"]))
    assert live.num_rows > 50
    assert live["phash"].null_count == 0 and live["image"].null_count == 0
    for row in live.slice(0, 10).to_pylist():
        im = Image.open(io.BytesIO(row["image"]))
        assert im.format == "JPEG" and im.size == (64, 64) == (row["width"], row["height"])
        assert row["orig_width"] >= 32 and len(row["sha256"]) == 64 and 0 < row["phash"] < 2**64
    dead = out.filter(pa.compute.equal(out["reject_stage"], "download"))
    assert dead["image"].null_count == dead.num_rows and dead["sha256"].null_count == dead.num_rows


def test_parts_and_fused_agree_row_for_row(results):
    a, b = results["fused"], results["parts"]
    for col in ("reject_stage", "reject_reason", "phash", "sha256", "orig_width", "width", "image"):
        assert a[col].equals(b[col]), col
