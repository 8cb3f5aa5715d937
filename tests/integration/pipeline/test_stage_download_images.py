"""Download + image stages on a local Ray over a synthetic web with every fault kind: each row ends at the outcome the
answers file expects, as the split stages (DownloadStage → ImagesStage) and as the fused FetchImagesStage."""

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
from infra.localweb.config import WebConfig
from infra.localweb.faults import EXPECTED_OUTCOME
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.stages.base import StageSpec, run_stages
from pipeline.stages.download import DownloadConfig, DownloadStage
from pipeline.stages.images import IMAGE_COLUMNS, FetchImagesConfig, FetchImagesStage, ImagesStage

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


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=1, n_candidates=N, fault_rate=0.7, slow_seconds=8, eval_per_concept=1), out)
    return out


def run(web, specs) -> pa.Table:
    import ray

    rows = pq.read_table(web / "candidates.parquet")
    rows = rows.append_column("row_id", pa.array(np.arange(rows.num_rows), pa.int64()))
    ds = run_stages(ray.data.from_arrow(rows).repartition(4), specs)
    out = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    return out.take(pa.compute.sort_indices(out["row_id"]))


SPLIT = [StageSpec(DownloadStage, DownloadConfig(fetch=FETCH, threads=64), 70), StageSpec(ImagesStage, IMAGE, 70)]
FUSED = [
    StageSpec(FetchImagesStage, FetchImagesConfig(download=DownloadConfig(fetch=FETCH, threads=64), image=IMAGE), 70)
]


@pytest.fixture(scope="module")
def results(ray_local, web):
    out = {}
    with serve_in_thread(web, prewarm=N) as server:
        for name, specs in (("split", SPLIT), ("fused", FUSED)):
            server.reset_state()  # the 429 URLs refuse their first request again
            t0 = time.monotonic()
            out[name] = run(web, specs)
            out[name + "_seconds"] = time.monotonic() - t0
    return out


def test_the_web_plants_every_fault(web):
    answers = pq.read_table(web / "answers.parquet")
    assert set(answers["expected_outcome"].to_pylist()) == set(EXPECTED) == set(EXPECTED_OUTCOME.values())


@pytest.mark.parametrize("name", ["split", "fused"])
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
    assert "body" not in out.column_names
    for col, typ in IMAGE_COLUMNS.items():
        assert out.schema.field(col).type == typ


@pytest.mark.parametrize("name", ["split", "fused"])
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


def test_fused_and_split_agree_row_for_row(results):
    a, b = results["split"], results["fused"]
    for col in ("reject_reason", "phash", "sha256", "orig_width", "width", "image"):
        assert a[col].equals(b[col]), col
