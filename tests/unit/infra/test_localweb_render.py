"""Synthetic web images: deterministic bytes, sizes the answers can predict, near-duplicates near in pHash, distinct
images far apart, held-out digits, the tiny image and the decompression bomb."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys

import imagehash
import numpy as np
import pytest
from PIL import Image

from infra.localweb.concepts import CONCEPTS, EVAL_ID_BASE, concepts_of
from infra.localweb.config import WebConfig
from infra.localweb.faults import BOMB_SIDE, bomb_png
from infra.localweb.rand import hash64, randint, uniform
from infra.localweb.render import (
    N_NEAR_VARIANTS,
    VARIANTS,
    _digit_pools,
    encode_variant,
    image_bytes,
    image_sizes,
    load_digit_images,
    render_image,
    tiny_bytes,
    variant_sizes,
)

CFG = WebConfig(seed=3, n_candidates=1000)


def _phash(data: bytes) -> int:
    return int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)


def test_counter_randomness_is_pure_and_chunk_independent():
    ids = np.arange(10_000)
    whole = hash64(5, ids, 9)
    assert np.array_equal(whole, np.concatenate([hash64(5, ids[:3333], 9), hash64(5, ids[3333:], 9)]))
    assert not np.array_equal(whole, hash64(6, ids, 9)) and not np.array_equal(whole, hash64(5, ids, 10))
    u = uniform(5, ids, 9)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


def test_counter_randomness_is_pinned():
    """Literal values recorded before `rand` moved onto `curation.hashing`: the synthetic web must not change."""
    ids = np.array([0, 1, 2, 12345])
    assert [hex(int(v)) for v in hash64(7, ids, 3)] == [
        "0xc080fc4b9f341341",
        "0x885f789ff31f6f5f",
        "0x82bfdc046e1e84fb",
        "0xf3575264e4aaeaee",
    ]
    assert [hex(int(v)) for v in hash64(0, 5, 0)] == ["0x7179bc6fbef357f4"]
    assert uniform(7, ids, 3).tolist() == [
        0.7519681629775763,
        0.5327067747595017,
        0.5107400427642634,
        0.9505511757203454,
    ]
    assert randint(7, ids, 3, 10).tolist() == [7, 5, 5, 9]
    assert randint(11, np.arange(6), 99, np.array([1, 2, 3, 1000, 7, 2**31])).tolist() == [0, 0, 1, 483, 6, 262601874]
    big = np.arange(10_000)

    def digest(a: np.ndarray) -> str:
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]

    assert digest(hash64(123, big, 0xABC)) == "39681e7ff2c0adec"
    assert digest(uniform(9, big, 1)) == "4c2c47301c0fa828"
    assert digest(randint(9, big, 2, big % 97 + 1)) == "71a584705d8ef88c"


def test_same_id_same_bytes_in_another_process():
    ids = [0, 1, 2, 17, EVAL_ID_BASE + 5]
    here = [hashlib.sha256(image_bytes(CFG, i, v)).hexdigest() for i in ids for v in range(len(VARIANTS))]
    code = (
        "import hashlib; from infra.localweb.config import WebConfig; from infra.localweb.render import image_bytes\n"
        f"cfg = WebConfig(seed=3, n_candidates=1000)\n"
        f"n = {len(VARIANTS)}\n"
        f"print(' '.join(hashlib.sha256(image_bytes(cfg, i, v)).hexdigest() for i in {ids} for v in range(n)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == here


def test_other_seed_other_image():
    assert image_bytes(CFG, 4) != image_bytes(WebConfig(seed=4), 4)
    assert image_bytes(CFG, 4) != image_bytes(CFG, 5)


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_decoded_size_and_format_match_the_prediction(variant):
    ids = np.arange(40)
    widths, heights = variant_sizes(*image_sizes(CFG, ids), np.full(40, variant))
    for i in ids:
        img = Image.open(io.BytesIO(image_bytes(CFG, int(i), variant)))
        assert img.size == (widths[i], heights[i])
        assert img.format == {"jpg": "JPEG", "png": "PNG"}[VARIANTS[variant].ext]
        assert CFG.min_side * 0.69 <= min(img.size) and max(img.size) <= CFG.max_side


def test_near_duplicates_are_near_and_distinct_images_are_not():
    # measured on 150 images per variant: max Hamming 4 for re-encode/PNG/resize/darker, 6 for the 1 % crop;
    # over 1500 distinct images, no pair within 4 (6 pairs within 6)
    n, hashes = 80, []
    for i in range(n):
        img = render_image(CFG, i)
        h0 = _phash(encode_variant(img, 0))
        hashes.append(h0)
        for v in range(1, 1 + N_NEAR_VARIANTS):  # the semantic variants after them are far on purpose (plants.py)
            assert bin(h0 ^ _phash(encode_variant(img, v))).count("1") <= 8, (i, VARIANTS[v].name)
    hs = np.array(hashes, dtype=np.uint64)
    dist = np.unpackbits((hs[:, None] ^ hs[None, :]).view(np.uint8).reshape(n, n, 8), axis=2).sum(2)
    assert dist[np.triu_indices(n, 1)].min() > 4  # no two distinct images are near-duplicates at k <= 4
    popcount = np.unpackbits(hs.view(np.uint8).reshape(n, 8), axis=1).sum(1)
    assert (popcount == 32).all()  # pHash splits at the median: no degenerate (flat) hashes


def test_images_show_their_concept_colour():
    red_shapes = {c.index for c in CONCEPTS if c.colour == "red"}
    for i in range(300):
        if concepts_of(CFG, i)[0] in red_shapes:
            arr = np.asarray(render_image(CFG, i), dtype=np.int16)
            reddish = (arr[..., 0] > 150) & (arr[..., 1] < 110) & (arr[..., 2] < 110)
            assert reddish.mean() > 0.03
            return
    pytest.fail("no red shape among the first 300 images")


def test_eval_digits_come_from_held_out_samples():
    images, train, held_out = _digit_pools()
    assert images.shape == (1797, 8, 8) and images.max() == 1.0
    for d in range(10):
        assert set(train[d]).isdisjoint(held_out[d]) and len(train[d]) > 2.5 * len(held_out[d]) > 0


def test_no_digit_of_the_digits_benchmark_test_split_is_on_the_web():
    from evaluation.datasets import fixed_split

    _, train, held_out = _digit_pools()
    _, target = load_digit_images()
    test = set(np.flatnonzero(fixed_split(target)).tolist())
    used = {int(i) for pools in (train, held_out) for pool in pools for i in pool}
    assert used.isdisjoint(test) and len(used) + len(test) == len(target)
    for d in range(10):
        assert (target[train[d]] == d).all() and (target[held_out[d]] == d).all()


def test_digits_are_centred_and_come_in_both_polarities():
    digit_ids = [i for i in range(400) if CONCEPTS[int(concepts_of(CFG, i)[0])].digit >= 0][:40]
    dark_backgrounds = 0
    for i in digit_ids:
        grey = np.asarray(render_image(CFG, i).convert("L"), dtype=np.float32)
        h, w = grey.shape
        border = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
        dark_backgrounds += border < 100
        ink = np.abs(grey - border) > 60
        ys, xs = np.nonzero(ink)
        assert len(xs) > 0.02 * w * h
        s = min(w, h)  # the ink's centre sits in the middle of the image: a centre crop keeps the digit
        assert abs(xs.mean() - w / 2) < 0.2 * s and abs(ys.mean() - h / 2) < 0.2 * s
    assert 0.25 * len(digit_ids) < dark_backgrounds < 0.75 * len(digit_ids)


def test_eval_concepts_are_balanced():
    cfg = WebConfig(eval_per_concept=3)
    labels = concepts_of(cfg, EVAL_ID_BASE + np.arange(3 * len(CONCEPTS)))
    assert labels.tolist() == [c for c in range(len(CONCEPTS)) for _ in range(3)]


def test_tiny_is_8_by_8():
    assert Image.open(io.BytesIO(tiny_bytes(CFG, 3))).size == (8, 8)


def test_bomb_claims_400_megapixels_on_a_small_file():
    data = bomb_png()
    assert len(data) < 100_000
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (BOMB_SIDE, BOMB_SIDE) and width * height > 178_956_970
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
