"""Image decode/validate/resize/encode: bombs refused from the header, draft decode, exact output sizes."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageFile

from curation.images import (
    ImageConfig,
    ImageStatus,
    decode_image,
    process_image,
    process_images,
    target_size,
)
from curation.phash import to_hex


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of all-zero rows: ~1 KB of deflate per 1 MB of pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    rows_per_step = 256
    idat = b"".join(z.compress(row * rows_per_step) for _ in range(height // rows_per_step))
    idat += z.compress(row * (height % rows_per_step)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encode(im: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth, non-flat RGB test image (gradients + a little noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    b = ((x + y) % 256).astype(np.uint8)
    arr = np.stack([r, g, b], axis=-1) + rng.integers(0, 8, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


@pytest.fixture
def load_calls(monkeypatch):
    """Record every ImageFile.load() — i.e. every time pixel decoding starts."""
    calls = []
    original = ImageFile.ImageFile.load

    def spy(self):
        calls.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def test_bomb_png_is_a_few_kb():
    assert len(bomb_png(14_000, 14_000)) < 40_000


def test_bomb_over_pillow_limit_refused_at_open(load_calls):
    d = decode_image(bomb_png(14_000, 14_000), ImageConfig())  # 196 M px > Pillow's 178,956,970
    assert d.status == ImageStatus.too_many_pixels and load_calls == []


def test_bomb_over_our_cap_refused_from_header(load_calls):
    d = decode_image(bomb_png(8_000, 8_000), ImageConfig(max_pixels=50_000_000))  # 64 M px: under Pillow's cap
    assert (d.status, d.orig_size) == (ImageStatus.too_many_pixels, (8000, 8000))
    assert "64000000 px > max_pixels" in d.detail and load_calls == []


def test_bomb_rejection_allocates_nothing_but_a_real_decode_would(tmp_path):
    """In a fresh process: refusing the bomb raises the RSS high-water mark < 20 MB; decoding it (control) > 80 MB.

    VmHWM (per address space) rather than ru_maxrss, which Linux carries over from the forking pytest process.
    """
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(10_000, 10_000))  # 100 M px, 12 KB; decoded as mode "1" it takes 100 MB
    code = textwrap.dedent(
        f"""
        import sys, warnings
        sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
        from curation.images import ImageConfig, decode_image
        warnings.simplefilter("ignore")  # Pillow warns above 89 M px in the control
        data = open({str(path)!r}, "rb").read()
        def hwm():
            line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
            return int(line.split()[1]) // 1024
        before = hwm()
        status = decode_image(data, ImageConfig()).status
        refused = hwm() - before
        control = decode_image(data, ImageConfig(max_pixels=10**9)).status
        print(status, refused, control, hwm() - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    status, refused_mb, control_status, control_mb = out.stdout.split()
    assert status == "too_many_pixels" and int(refused_mb) < 20
    assert control_status == "ok" and int(control_mb) > 80


@pytest.mark.parametrize(
    ("size", "status"),
    [
        ((50, 400), ImageStatus.too_small),
        ((400, 50), ImageStatus.too_small),
        ((700, 200), ImageStatus.bad_aspect),
        ((200, 700), ImageStatus.bad_aspect),
        ((300, 100), ImageStatus.ok),
    ],
)
def test_size_and_aspect_checked_from_header(load_calls, size, status):
    d = decode_image(encode(photo(*size), "PNG"), ImageConfig(min_image_size=64, max_aspect_ratio=3.0))
    assert d.status == status and d.orig_size == size
    assert (load_calls != []) == (status == ImageStatus.ok)


def test_draft_decode_used_for_big_jpegs():
    data = encode(photo(2048, 1536), quality=90)
    d = decode_image(data, ImageConfig(image_size=256, resize_mode="center_crop"))
    assert (d.status, d.reduction, d.image.size, d.orig_size) == (ImageStatus.ok, 4, (512, 384), (2048, 1536))
    full = decode_image(data, ImageConfig(image_size=256, draft=False))
    assert (full.reduction, full.image.size) == (1, (2048, 1536))
    # Never reduced below what the resize needs: shortest side 384 ≥ 256, but 1/8 (192) would not be.
    assert process_image(data, ImageConfig(image_size=256)).size == (256, 256)


def test_draft_not_used_for_png_or_small_targets():
    assert decode_image(encode(photo(1024, 768), "PNG"), ImageConfig(image_size=128)).reduction == 1
    assert decode_image(encode(photo(600, 450)), ImageConfig(image_size=256)).reduction == 1


SIZES = [(640, 480), (480, 640), (300, 300), (1001, 333), (333, 1001), (257, 255), (100, 90)]
EXPECTED = {
    "center_crop": lambda w, h: (224, 224),
    "border": lambda w, h: (224, 224),
    "keep_ratio": lambda w, h: (224, round(h * 224 / w)) if w <= h else (round(w * 224 / h), 224),
    "keep_ratio_largest": lambda w, h: (224, round(h * 224 / w)) if w >= h else (round(w * 224 / h), 224),
    "no": lambda w, h: (w, h),
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
@pytest.mark.parametrize("size", SIZES)
def test_resize_modes_give_exact_sizes(mode, size):
    cfg = ImageConfig(image_size=224, resize_mode=mode, min_image_size=1, max_aspect_ratio=10)
    p = process_image(encode(photo(*size), quality=90), cfg)
    assert p.status == ImageStatus.ok
    assert p.size == EXPECTED[mode](*size) == Image.open(io.BytesIO(p.data)).size
    assert p.orig_size == size


def _img2dataset_resizer():
    """img2dataset's resizer.py loaded on its own: the package __init__ imports torch via webdataset (~10 s)."""
    spec = importlib.util.find_spec("img2dataset")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("img2dataset not installed")
    path = Path(spec.submodule_search_locations[0]) / "resizer.py"
    module_spec = importlib.util.spec_from_file_location("_img2dataset_resizer_for_tests", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # albumentations' PadIfNeeded(value=...)
def test_sizes_match_img2dataset_resizer():
    resizer_mod = _img2dataset_resizer()
    for mode in ["center_crop", "border", "keep_ratio", "keep_ratio_largest"]:
        resizer = resizer_mod.Resizer(image_size=224, resize_mode=mode, resize_only_if_bigger=False)
        cfg = ImageConfig(image_size=224, resize_mode=mode, min_image_size=1, max_aspect_ratio=10)
        for size in SIZES:
            data = encode(photo(*size), quality=90)
            ref = resizer(io.BytesIO(data))
            assert ref[5] is None and process_image(data, cfg).size == (ref[1], ref[2]), (mode, size)


def test_border_pads_white_and_alpha_is_matted_on_white():
    rgba = Image.new("RGBA", (200, 100), (255, 0, 0, 0))  # fully transparent red
    p = process_image(encode(rgba, "PNG"), ImageConfig(image_size=100, resize_mode="border", min_image_size=1))
    out = np.asarray(Image.open(io.BytesIO(p.data)).convert("RGB")).astype(int)
    assert out.shape == (100, 100, 3) and out.min() >= 250  # transparent → white, padding → white


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", ImageStatus.empty),
        (None, ImageStatus.empty),
        (b"<html>not an image</html>", ImageStatus.not_image),
        (encode(photo(100, 100), "TIFF"), ImageStatus.not_image),  # decodable by Pillow, but not allowed
        (encode(photo(100, 100), "BMP"), ImageStatus.not_image),
    ],
)
def test_not_images(data, status):
    assert process_image(data, ImageConfig()).status == status


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images(fmt):
    data = encode(photo(400, 300), fmt)
    p = process_image(data[: len(data) // 2], ImageConfig())
    assert p.status == ImageStatus.truncated and "truncated" in p.detail
    assert p.sha256 == hashlib.sha256(data[: len(data) // 2]).hexdigest()


def test_corrupt_data_is_a_decode_error():
    data = bytearray(encode(photo(400, 300), "PNG"))
    data[200:260] = b"\x00" * 60  # inside the IDAT stream
    assert process_image(bytes(data), ImageConfig()).status in (ImageStatus.decode_error, ImageStatus.truncated)


def test_webp_encode_and_quality():
    src = encode(photo(300, 300), quality=95)
    lo = process_image(src, ImageConfig(encode_format="webp", encode_quality=20))
    hi = process_image(src, ImageConfig(encode_format="webp", encode_quality=95))
    assert Image.open(io.BytesIO(lo.data)).format == "WEBP" and len(lo.data) < len(hi.data)


def test_target_size_rounds_like_albumentations():
    cfg = ImageConfig(image_size=100, resize_mode="keep_ratio")
    assert target_size((250, 100), cfg) == (250, 100)
    assert target_size((125, 100), cfg) == (125, 100)
    assert target_size((201, 200), cfg) == (100, 100)  # 100.5 → 100 (banker's rounding, as Python round)
    assert target_size((203, 200), cfg) == (102, 100)  # 101.5 → 102


def test_batch_columns_and_phash_of_the_decoded_image():
    small = encode(photo(320, 240, seed=1), quality=92)  # no draft: the decoded image is the full image
    big = encode(photo(1600, 1200, seed=2), quality=92)  # draft 1/8: the hash is of the reduced decode
    cols = process_images([small, b"junk", big, None], ImageConfig(image_size=128))
    table = pa.table(cols)
    assert table.num_rows == 4
    assert cols["status"] == ["ok", "not_image", "ok", "empty"]
    assert cols["sha256"] == [
        hashlib.sha256(small).hexdigest(),
        hashlib.sha256(b"junk").hexdigest(),
        hashlib.sha256(big).hexdigest(),
        None,
    ]
    assert cols["width"].tolist() == [128, 0, 128, 0] and cols["orig_width"].tolist() == [320, 0, 1600, 0]
    assert cols["decode_reduction"].tolist() == [1, 1, 8, 1]  # 1600x1200 → 200x150, still ≥ 171x128
    hexes = to_hex(cols["phash"])
    assert hexes[0] == str(imagehash.phash(Image.open(io.BytesIO(small))))
    big_decoded = Image.open(io.BytesIO(big))
    big_decoded.draft("RGB", (171, 128))
    assert hexes[2] == str(imagehash.phash(big_decoded))
    assert cols["phash"][1] == 0 and cols["phash_degenerate"].tolist() == [False, False, False, False]


def test_flat_image_hash_flagged_degenerate():
    cols = process_images([encode(Image.new("RGB", (200, 200), (30, 120, 200)), "PNG")], ImageConfig())
    assert to_hex(cols["phash"]) == ["8000000000000000"] and cols["phash_degenerate"].tolist() == [True]


def test_curation_image_modules_import_neither_ray_nor_cv2():
    code = (
        "import sys; import curation.fetch, curation.images, curation.phash, curation.neardup, curation.netrange; "
        "bad = [m for m in ('ray', 'cv2', 'albumentations', 'img2dataset', 'wandb') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
