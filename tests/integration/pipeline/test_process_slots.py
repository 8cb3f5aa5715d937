"""The fused download + image stage lets at most `download.process_slots` threads decode at once, whatever its
download thread count; the rest keep downloading. Real loopback web server, real images, no Ray needed."""

import os
import threading
import time

import pyarrow as pa
import pytest

import pipeline.stages.download as download_stage
from curation.fetch_config import FetchConfig
from curation.images import ImageConfig
from infra.localweb.config import WebConfig, load_web
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.stages.download import DownloadConfig, FetchImagesConfig, FetchImagesStage, process_slots

N = 24
ZERO = dict(fault_rate=0, dup_exact_rate=0, dup_near_rate=0, dup_url_rate=0, eval_copy_rate=0)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=3, n_candidates=N, min_side=96, max_side=160, eval_per_concept=1, **ZERO), out)
    return out


class Overlap:
    """Wraps the real `process_images`, counting how many threads are inside it at once (held ≥ 20 ms each)."""

    def __init__(self, real) -> None:
        self.real, self.inside, self.most = real, 0, 0
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            time.sleep(0.02)  # long enough that unlimited threads would overlap
            return self.real(*args, **kwargs)
        finally:
            with self.lock:
                self.inside -= 1


def run_stage(web, monkeypatch, slots: int) -> tuple[pa.Table, int]:
    overlap = Overlap(download_stage.process_images)
    monkeypatch.setattr(download_stage, "process_images", overlap)
    fetch = FetchConfig(allow_cidrs=["127.0.0.0/8"], per_host_concurrency=16, retries=0)
    cfg = FetchImagesConfig(
        download=DownloadConfig(fetch=fetch, threads=16, process_slots=slots),
        image=ImageConfig(image_size=32, min_image_size=16),
    )
    with serve_in_thread(web, prewarm=N):
        base = load_web(web)[0].base_url
        urls = [f"{base}/img/ok/{i}/0/{i}.jpg" for i in range(N)]
        out = FetchImagesStage(cfg)(pa.table({"url": urls}))
    return out, overlap.most


@pytest.mark.parametrize("slots", [1, 3])
def test_at_most_process_slots_threads_decode_at_once(web, monkeypatch, slots):
    out, most = run_stage(web, monkeypatch, slots)
    assert out.num_rows == N
    assert out["reject_reason"].null_count == N, out["reject_reason"].to_pylist()  # every image came through
    assert set(out["width"].to_pylist()) == set(out["height"].to_pylist()) == {32}
    assert 1 <= most <= slots
    if slots > 1:
        assert most > 1  # the slots are used: 16 threads with 24 downloads do overlap


def test_without_a_cap_threads_do_overlap_beyond_the_default(web, monkeypatch):
    # The instrument itself can see more overlap than a small cap allows (so the test above could fail).
    out, most = run_stage(web, monkeypatch, 16)
    assert out["reject_reason"].null_count == N
    assert most > 3


def test_zero_means_the_cores_this_process_may_use():
    assert process_slots(0) == len(os.sched_getaffinity(0))
    assert process_slots(5) == 5
