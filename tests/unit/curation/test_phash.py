"""pHash: bit-identical to imagehash.phash on >1,000 varied images, including the exact-tie cases."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits, load_sample_images

import curation.phash as ph
from curation.phash import (
    degenerate_mask,
    from_hex,
    hamming,
    pack_bits,
    phash64,
    phash64_from_pixels,
    phash_pixels,
    popcount,
    to_hex,
)


def _photo_crops(rng: np.random.Generator, n: int) -> list[Image.Image]:
    photos = [Image.fromarray(a) for a in load_sample_images().images]  # 640x427 china.jpg, flower.jpg
    out = []
    for i in range(n):
        im = photos[i % 2]
        w, h = im.size
        cw, ch = int(rng.integers(8, w)), int(rng.integers(8, h))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch))
        if i % 3 == 0:
            crop = crop.resize((int(rng.integers(4, 300)), int(rng.integers(4, 300))), Image.Resampling.BILINEAR)
        out.append(crop)
    return out


def _digits(n: int) -> list[Image.Image]:
    digits = load_digits().images[:n]  # 8x8 floats in 0..16
    sizes = [8, 16, 24, 32, 48, 64, 100]
    return [
        Image.fromarray((d * 15.9).astype(np.uint8), "L").resize((sizes[i % 7],) * 2, Image.Resampling.NEAREST)
        for i, d in enumerate(digits)
    ]


def _renders(rng: np.random.Generator, n: int) -> list[Image.Image]:
    out = []
    for i in range(n):
        w, h = int(rng.integers(16, 160)), int(rng.integers(16, 160))
        im = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(1, 5))):
            x0, x1 = sorted(int(v) for v in rng.integers(0, w, 2))
            y0, y1 = sorted(int(v) for v in rng.integers(0, h, 2))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            [draw.rectangle, draw.ellipse][i % 2]((x0, y0, x1, y1), fill=fill)
        out.append(im)
    return out


def _symmetric(n: int) -> list[Image.Image]:
    """Centred shapes and stripes: their DCT blocks have exact zeros, i.e. ties at the median."""
    out = []
    for i in range(n):
        s = 32 + 8 * (i % 8)
        im = Image.new("L", (s, s), 20 + i)
        draw = ImageDraw.Draw(im)
        r = 4 + i % 12
        if i % 3 == 0:
            draw.ellipse((s // 2 - r, s // 2 - r, s // 2 + r - 1, s // 2 + r - 1), fill=230)
        elif i % 3 == 1:
            draw.rectangle((0, s // 2 - r, s - 1, s // 2 + r - 1), fill=200)  # horizontal band: no x-variation
        else:
            arr = np.tile((np.arange(s) * (i + 3) % 256).astype(np.uint8), (s, 1))  # vertical stripes
            im = Image.fromarray(arr, "L")
        out.append(im)
    return out


def _modes_and_edges(rng: np.random.Generator) -> list[Image.Image]:
    base = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), "RGB")
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8), "L"))
    out = [
        base,
        rgba,
        base.convert("P"),
        base.quantize(16),
        base.convert("L"),
        base.convert("LA"),
        base.convert("1"),
        base.convert("CMYK"),
        base.convert("I"),
        base.convert("F"),
        base.convert("I;16"),
    ]
    out += [
        Image.new("RGB", s, c)
        for s in [(1, 1), (2, 3), (5, 5), (31, 33), (300, 7)]
        for c in [(0, 0, 0), (255, 255, 255), (12, 200, 99)]
    ]
    out += [Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L") for h, w in [(1, 40), (3, 3), (32, 32)]]
    out += [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(40)]
    return out


@pytest.fixture(scope="module")
def corpus() -> list[Image.Image]:
    rng = np.random.default_rng(20240601)
    images = _photo_crops(rng, 420) + _digits(300) + _renders(rng, 200) + _symmetric(64) + _modes_and_edges(rng)
    assert len(images) >= 1000
    return images


def test_bit_identical_to_imagehash(corpus):
    ours = to_hex(phash64(corpus))
    ref = [str(imagehash.phash(im)) for im in corpus]
    mismatches = [
        (i, corpus[i].mode, corpus[i].size, a, b) for i, (a, b) in enumerate(zip(ours, ref, strict=True)) if a != b
    ]
    assert mismatches == []


def test_ties_take_the_reference_path_and_it_matters(corpus, monkeypatch):
    """Symmetric images tie at the median; a matrix product alone gets some of their bits wrong."""
    sym = _symmetric(64)
    pixels = np.stack([phash_pixels(im) for im in sym])
    calls = []
    real = ph._bits_reference
    monkeypatch.setattr(ph, "_bits_reference", lambda p: calls.append(1) or real(p))
    exact = phash64_from_pixels(pixels)
    assert len(calls) > 0
    c8 = ph._dct_rows(8, 32)
    low = (c8 @ pixels.astype(np.float64) @ c8.T).reshape(len(sym), 64)
    naive = pack_bits(low > np.median(low, axis=1, keepdims=True))
    assert (naive != exact).any()  # without the fallback this test would catch a mismatch
    assert to_hex(exact) == [str(imagehash.phash(im)) for im in sym]


def test_bit_order_matches_imagehash_hex():
    bits = np.zeros((1, 64), dtype=bool)
    bits[0, [0, 9, 63]] = True  # element (0,0) is the MSB, (1,1) is bit 54, (7,7) the LSB
    assert to_hex(pack_bits(bits)) == [str(imagehash.ImageHash(bits.reshape(8, 8)))] == ["8040000000000001"]


def test_hex_roundtrip_and_utilities():
    h = from_hex(["8000000000000000", "ffffffffffffffff", "00000000ffffffff"])
    assert h.dtype == np.uint64 and to_hex(h) == ["8000000000000000", "ffffffffffffffff", "00000000ffffffff"]
    assert popcount(h).tolist() == [1, 64, 32]
    assert degenerate_mask(h).tolist() == [True, True, False]
    assert hamming(h[0], h).tolist() == [0, 63, 33]
    assert imagehash.hex_to_hash("ffffffffffffffff") - imagehash.hex_to_hash("00000000ffffffff") == hamming(h[1], h[2])
    with pytest.raises(ValueError, match="16 characters"):
        from_hex(["abc"])


def test_input_validation_and_empty():
    assert phash64([]).shape == (0,) and phash64_from_pixels(np.zeros((0, 32, 32), np.uint8)).dtype == np.uint64
    with pytest.raises(ValueError, match=r"\(n, 32, 32\) uint8.*\(2, 16, 16\)"):
        phash64_from_pixels(np.zeros((2, 16, 16), np.uint8))
