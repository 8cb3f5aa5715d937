"""`curation.lanczos`: Pillow's 8-bit LANCZOS resize, bit for bit, on every kind of shape; and the fallback when
the installed Pillow computes otherwise."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import curation.phash as ph
from curation import lanczos
from curation.lanczos import _horizontal_first, resize_gray

LANCZOS = Image.Resampling.LANCZOS


def pil(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize(size, LANCZOS))


def test_installed_pillow_is_reproduced():
    assert lanczos.exact((32, 32)) and lanczos.exact((17, 45))


def test_both_pass_orders_and_edge_shapes_to_32():
    rng = np.random.default_rng(7)
    shapes = [(h, w) for h in (1, 2, 31, 32, 33, 54, 100, 129, 427, 1500) for w in (1, 3, 20, 32, 64, 128, 640, 2000)]
    orders = set()
    for h, w in shapes:
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
        orders.add(_horizontal_first(w, h, 32, 32))
        assert np.array_equal(resize_gray(arr, (32, 32)), pil(arr, (32, 32))), (h, w)
    assert orders == {True, False}


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 700),
    w=st.integers(1, 700),
    out_w=st.integers(1, 80),
    out_h=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
    flat=st.booleans(),
)
def test_random_shapes_and_sizes_match_pillow(h, w, out_w, out_h, seed, flat):
    rng = np.random.default_rng(seed)
    arr = np.full((h, w), rng.integers(0, 256), np.uint8) if flat else rng.integers(0, 256, (h, w), dtype=np.uint8)
    assert np.array_equal(resize_gray(arr, (out_w, out_h)), pil(arr, (out_w, out_h)))


def test_extreme_contrast_saturates_like_pillow():
    """Lanczos lobes overshoot on hard edges: the clip to 0..255 must match."""
    arr = np.zeros((300, 300), np.uint8)
    arr[:, ::2] = 255
    arr[::3] = 0
    assert np.array_equal(resize_gray(arr, (32, 32)), pil(arr, (32, 32)))
    assert np.array_equal(resize_gray(arr, (500, 41)), pil(arr, (500, 41)))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="uint8"):
        resize_gray(np.zeros((4, 4), np.float32), (2, 2))
    with pytest.raises(ValueError, match="uint8"):
        resize_gray(np.zeros((1, 4, 4), np.uint8), (2, 2))  # one image, not a stack
    with pytest.raises(ValueError, match="positive"):
        resize_gray(np.zeros((4, 4), np.uint8), (0, 2))


def test_phash_falls_back_to_pillow_when_it_is_not_reproduced(monkeypatch):
    rng = np.random.default_rng(9)
    images = [Image.fromarray(rng.integers(0, 256, (50 + i, 80, 3), dtype=np.uint8)) for i in range(6)]
    monkeypatch.setattr(lanczos, "exact", lambda size=(32, 32): False)
    monkeypatch.setattr(lanczos, "gray_exact", lambda: False)
    monkeypatch.setattr(lanczos, "resize_gray", lambda *a: pytest.fail("must not be used"))
    monkeypatch.setattr(lanczos, "gray", lambda *a: pytest.fail("must not be used"))
    assert ph.to_hex(ph.phash64(images)) == [str(imagehash.phash(im)) for im in images]


def test_gray_is_pillows_convert_in_every_mode():
    """RGB/RGBA/RGBX/L read Pillow's memory through the kernel or a view; other modes go through Pillow itself."""
    assert lanczos.gray_exact()
    rng = np.random.default_rng(11)
    rgb = Image.fromarray(rng.integers(0, 256, (261, 197, 3), dtype=np.uint8))  # above _GRAY_KERNEL_FROM
    cases = [rgb, rgb.convert("RGBA"), rgb.convert("RGBX"), rgb.convert("L"), rgb.convert("P"), rgb.convert("CMYK"),
             rgb.convert("LA"), rgb.convert("1"), rgb.convert("I;16"), rgb.convert("YCbCr")]
    for extreme in (0, 255):  # saturation: the largest sum, 255 · 65536 + 0x8000, must still shift to 255
        cases.append(Image.new("RGB", (300, 200), (extreme,) * 3))
    for im in cases:
        got = lanczos.gray(im)
        assert got.dtype == np.uint8 and np.array_equal(got, np.asarray(im.convert("L"))), im.mode


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 700), st.integers(1, 700), st.integers(0, 2**32 - 1))
def test_gray_matches_pillow_on_any_rgb_size(w, h, seed):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lanczos, "_GRAY_KERNEL_FROM", 1)  # the kernel on every size, down to 1×1
        assert np.array_equal(lanczos.gray(im), np.asarray(im.convert("L")))


def test_gray_of_a_non_contiguous_image_falls_back(monkeypatch):
    """When Pillow cannot export the image (older Pillow, or storage in several blocks), `convert("L")` is used."""
    import pyarrow as pa

    im = Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8))

    def refuse(*a, **k):
        raise ValueError("image is in multiple blocks")

    monkeypatch.setattr(pa, "array", refuse)
    assert np.array_equal(lanczos.gray(im), np.asarray(im.convert("L")))


def test_phash_uses_pillow_when_the_kernels_cannot_load(monkeypatch):
    """A broken Numba (or no writable cache directory) must not break hashing: both checks say no, with a
    warning, and `phash64` computes through Pillow, still equal to imagehash."""
    rng = np.random.default_rng(12)
    images = [Image.fromarray(rng.integers(0, 256, (260 + i, 230, 3), dtype=np.uint8)) for i in range(3)]

    def broken():
        raise RuntimeError("cannot cache function 'horizontal': no locator available")

    lanczos.exact.cache_clear()
    lanczos.gray_exact.cache_clear()
    try:
        monkeypatch.setattr(lanczos, "_kernels", broken)
        with pytest.warns(UserWarning, match="pHash kernels unavailable"):
            assert not lanczos.exact((32, 32)) and not lanczos.gray_exact()
        assert ph.to_hex(ph.phash64(images)) == [str(imagehash.phash(im)) for im in images]
    finally:
        lanczos.exact.cache_clear()
        lanczos.gray_exact.cache_clear()
