"""ImagesStage on literal bodies (called directly, as a Ray actor would): columns, nulls and reject reasons."""

import hashlib
import io

import imagehash
import numpy as np
import pyarrow as pa
from PIL import Image

from curation.images import ImageConfig
from infra.localweb.faults import HTML_PAGE, bomb_png
from pipeline.stages.base import mark_rejected
from pipeline.stages.images import IMAGE_COLUMNS, ImagesStage


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


def test_images_stage_columns_and_reasons():
    good, wide = jpeg(320, 240), jpeg(400, 100)
    bodies = [good, None, bomb_png(), tiny_png(), HTML_PAGE, good[: len(good) // 2], wide, b""]
    batch = pa.table({"uid": [f"u{i}" for i in range(8)], "body": pa.array(bodies, pa.binary())})
    batch = mark_rejected(batch, [None, "http_error", None, None, None, None, None, None], stage="download")
    out = ImagesStage(ImageConfig(image_size=128, max_aspect_ratio=3.0))(batch)
    assert "body" not in out.column_names and out.num_rows == 8
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
    assert out["reject_stage"].to_pylist()[2:] == ["images"] * 6
    row = out.slice(0, 1).to_pylist()[0]
    assert (row["width"], row["height"], row["orig_width"], row["orig_height"]) == (128, 128, 320, 240)
    assert row["sha256"] == hashlib.sha256(good).hexdigest()
    assert f"{row['phash']:016x}" == str(imagehash.phash(Image.open(io.BytesIO(good))))
    assert row["phash_degenerate"] is False
    # nulls where there is no decoded image; header sizes and sha256 kept where they are known
    assert out["phash"].null_count == 7 and out["image"].null_count == 7 and out["width"].null_count == 7
    assert out["orig_width"].to_pylist()[1:4] == [None, None, 8]  # the bomb is refused by Pillow at open
    assert out["sha256"].to_pylist()[1] is None and out["sha256"].to_pylist()[3] is not None


def test_images_stage_without_live_rows():
    batch = mark_rejected(pa.table({"uid": ["a"], "body": pa.array([None], pa.binary())}), ["x"], stage="download")
    out = ImagesStage(ImageConfig())(batch)
    assert out["reject_reason"].to_pylist() == ["x"] and out["image"].to_pylist() == [None]
