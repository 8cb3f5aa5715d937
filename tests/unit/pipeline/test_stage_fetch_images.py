"""FetchImagesStage on literal bodies (called directly, as a Ray actor would, with a stub fetcher in place of the
network): fetch and image columns, nulls, reject stages, reasons and details."""

import hashlib
import io

import imagehash
import numpy as np
import pyarrow as pa
from PIL import Image

from curation.fetch_config import FetchConfig, FetchResult, FetchStatus
from curation.images import ImageConfig
from infra.localweb.faults import HTML_PAGE, bomb_png
from pipeline.stages.base import mark_rejected
from pipeline.stages.download import FETCH_COLUMNS, IMAGE_COLUMNS, DownloadConfig, FetchImagesConfig, FetchImagesStage


def jpeg(w: int, h: int) -> bytes:
    rng = np.random.default_rng(w * 1000 + h)
    img = Image.fromarray(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)).resize((w, h))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


class StubFetcher:
    """`fetch(url)` from a dict: bytes → an ok result with that body; a FetchResult → itself. Records the URLs."""

    def __init__(self, answers: dict) -> None:
        self.answers, self.asked = answers, []

    def fetch(self, url: str) -> FetchResult:
        self.asked.append(url)
        a = self.answers[url]
        if isinstance(a, FetchResult):
            return a
        ok = FetchStatus.ok
        return FetchResult(url, ok, final_url=url, http_status=200, content_type="image/x", body=a, attempts=1)


def stage(answers: dict, image: ImageConfig) -> FetchImagesStage:
    s = FetchImagesStage(FetchImagesConfig(download=DownloadConfig(fetch=FetchConfig(), threads=4), image=image))
    s.fetcher = StubFetcher(answers)
    return s


def test_fetch_images_columns_reasons_and_details():
    good, wide = jpeg(320, 240), jpeg(400, 100)
    not_found = FetchResult("u/1", FetchStatus.http_error, detail="404", final_url="u/1", http_status=404, attempts=1)
    bodies = [good, not_found, bomb_png(), tiny_png(), HTML_PAGE, good[: len(good) // 2], wide, b""]
    urls = [f"u/{i}" for i in range(8)]
    s = stage(dict(zip(urls, bodies, strict=True)), ImageConfig(image_size=128, max_aspect_ratio=3.0))
    out = s(pa.table({"uid": [f"u{i}" for i in range(8)], "url": urls}))
    assert "body" not in out.column_names and out.num_rows == 8
    assert [out.schema.field(c).type for c in FETCH_COLUMNS] == list(FETCH_COLUMNS.values())
    assert [out.schema.field(c).type for c in IMAGE_COLUMNS] == list(IMAGE_COLUMNS.values())
    assert out["reject_reason"].to_pylist() == [
        None,
        "http_error",
        "too_many_pixels",
        "too_small",
        "not_image",
        "truncated",
        "bad_aspect",
        "empty",
    ]
    assert out["reject_stage"].to_pylist() == [None, "download"] + ["images"] * 6
    assert out["reject_detail"][1].as_py() == "404" and "decompression bomb" in out["reject_detail"][2].as_py()
    assert out["fetch_status"].to_pylist() == ["ok", "http_error"] + ["ok"] * 6
    assert out["http_status"].to_pylist()[:2] == [200, 404]
    row = out.slice(0, 1).to_pylist()[0]
    assert (row["width"], row["height"], row["orig_width"], row["orig_height"]) == (128, 128, 320, 240)
    assert row["sha256"] == hashlib.sha256(good).hexdigest()
    assert f"{row['phash']:016x}" == str(imagehash.phash(Image.open(io.BytesIO(good))))
    assert row["phash_degenerate"] is False
    # nulls where there is no decoded image; header sizes and sha256 kept where they are known
    assert out["phash"].null_count == 7 and out["image"].null_count == 7 and out["width"].null_count == 7
    assert out["orig_width"].to_pylist()[1:4] == [None, None, 8]  # the bomb is refused by Pillow at open
    assert out["sha256"].to_pylist()[1] is None and out["sha256"].to_pylist()[3] is not None


def test_rejected_rows_are_not_fetched_and_keep_their_reason():
    batch = pa.table({"uid": ["a", "b"], "url": ["u/a", "u/b"]})
    batch = mark_rejected(batch, ["x", None], stage="text")
    s = stage({"u/b": jpeg(64, 64)}, ImageConfig(image_size=32, min_image_size=16))
    out = s(batch)
    assert s.fetcher.asked == ["u/b"]
    assert out["reject_reason"].to_pylist() == ["x", None] and out["reject_stage"].to_pylist() == ["text", None]
    assert out["image"][0].as_py() is None and out["fetch_status"][0].as_py() is None and out["width"][1].as_py() == 32


def test_without_live_rows():
    batch = mark_rejected(pa.table({"uid": ["a"], "url": ["u/a"]}), ["x"], stage="download")
    out = stage({}, ImageConfig())(batch)
    assert out["reject_reason"].to_pylist() == ["x"] and out["image"].to_pylist() == [None]
    assert set(FETCH_COLUMNS) | set(IMAGE_COLUMNS) <= set(out.column_names)


def test_the_opt_out_registry_rejects_listed_rows_before_any_request(tmp_path):
    """The stage reads download.opt_out_registry itself (once per worker) and hands it to its real Fetcher: listed
    URLs end as opt_out_registry (stage download) without DNS or a connection (the hosts do not exist)."""
    (tmp_path / "optout.txt").write_text("# opt-outs\nnot-for-training.invalid\nhttps://shop.invalid/private/\n")
    download = DownloadConfig(fetch=FetchConfig(), threads=2, opt_out_registry=str(tmp_path / "optout.txt"))
    s = FetchImagesStage(FetchImagesConfig(download=download, image=ImageConfig(image_size=64)))
    urls = ["http://img.not-for-training.invalid/a.jpg", "https://shop.invalid/private/b.png"]
    out = s(pa.table({"uid": ["a", "b"], "url": urls}))
    assert out["reject_reason"].to_pylist() == ["opt_out_registry"] * 2
    assert out["reject_stage"].to_pylist() == ["download"] * 2
    details = out["reject_detail"].to_pylist()
    assert "'not-for-training.invalid'" in details[0] and "optout.txt line 2" in details[0]
    assert "optout.txt line 3" in details[1]
    assert out["http_status"].to_pylist() == [0, 0]  # no response: nothing was requested
