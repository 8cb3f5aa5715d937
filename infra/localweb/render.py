"""Deterministic image rendering for the synthetic web: (config, image_id, variant) -> encoded bytes; no I/O, no cache.

An image is a pure function of (seed, image_id): its concept and texture come from `concepts`, its size from
counter hashes (so the generator knows every size without rendering), and every drawing detail from
`numpy.random.default_rng([seed, image_id])`. Variant 0 is the canonical JPEG; variants 1.. are near-duplicates of
it (re-encoded, PNG, resized, cropped, darker). Digits are real scikit-learn handwritten digits, upscaled, centred,
tinted and noised, in dark ink on the light background or (half of them) light chalk on a dark slate. They never
use a sample of the `digits` benchmark's test split (evaluation.datasets.fixed_split), so zero-shot on `digits`
measures transfer to unseen handwriting: candidate images draw from the first 75 % of each class's remaining
samples, evaluation images from the rest.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageEnhance

from infra.localweb.concepts import (
    COLOUR_RGB,
    COLOURS,
    CONCEPTS,
    EVAL_ID_BASE,
    SHAPES,
    concepts_of,
    textures_of,
)
from infra.localweb.config import WebConfig
from infra.localweb.rand import randint

_SALT_W, _SALT_H = 201, 202
TINY_SIDE = 8
_DIGIT_TRAIN_FRACTION = 0.75
_NOISE_SIDE = 512
_BLOTCH = 28
_BIAS = 32  # offset that lets unsigned 8-bit images carry signed gradients and noise
_INKS = ((20, 20, 30), (25, 35, 120), (120, 25, 25), (25, 85, 35))
_CHALK_SHARE = 0.5  # digits drawn light-on-dark (a scanned slate / inverted scan) rather than dark ink on paper


class Variant(NamedTuple):
    """How a near-duplicate differs from the canonical image (variant 0)."""

    name: str
    ext: str
    scale: float  # resize factor of both sides
    crop: float  # fraction cut from each side
    brightness: float
    quality: int  # JPEG quality (ignored for PNG)
    mirror: bool = False  # left-right flip (semantic variants only)


VARIANTS = (
    Variant("canonical", "jpg", 1.0, 0.0, 1.0, 90),
    Variant("jpeg_q55", "jpg", 1.0, 0.0, 1.0, 55),
    Variant("png", "png", 1.0, 0.0, 1.0, 0),
    Variant("resize_0.7", "jpg", 0.7, 0.0, 1.0, 90),
    Variant("crop_1pct", "jpg", 1.0, 0.01, 1.0, 90),  # pHash is fragile to crops: 4 % moves it ~7 bits, 1 % ~1.4
    Variant("darker_0.85", "jpg", 1.0, 0.0, 0.85, 90),  # darker, not brighter: brightening clips the light background
)
N_NEAR_VARIANTS = 5
"""Variants 1..5 are pHash near-duplicates; those after them are semantic duplicates (plants.py)."""
SEMANTIC_VARIANTS = (
    Variant("mirror", "jpg", 1.0, 0.0, 1.0, 90, mirror=True),
    Variant("crop_12pct", "jpg", 1.0, 0.12, 1.0, 90),
    Variant("mirror_darker", "jpg", 1.0, 0.03, 0.8, 90, mirror=True),
)
"""What a CLIP model should still see as the same picture but pHash does not (#22): flips, a large crop."""
VARIANTS = VARIANTS + SEMANTIC_VARIANTS
FIRST_SEMANTIC_VARIANT = 1 + N_NEAR_VARIANTS


def image_sizes(cfg: WebConfig, image_ids: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """(width, height) int64 arrays of the canonical images: each side uniform in [min_side, max_side]."""
    span = cfg.max_side - cfg.min_side + 1
    return (
        cfg.min_side + randint(cfg.seed, image_ids, _SALT_W, span),
        cfg.min_side + randint(cfg.seed, image_ids, _SALT_H, span),
    )


def variant_sizes(width: np.ndarray, height: np.ndarray, variants: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(width, height) of each variant of canonical images of the given sizes (same rule as `encode_variant`)."""
    w, h = np.asarray(width, dtype=np.int64), np.asarray(height, dtype=np.int64)
    v = np.asarray(variants, dtype=np.int64)
    scale = np.array([x.scale for x in VARIANTS])[v]
    crop = np.array([x.crop for x in VARIANTS])[v]
    w2 = np.maximum(1, np.rint(w * scale)).astype(np.int64)
    h2 = np.maximum(1, np.rint(h * scale)).astype(np.int64)
    return w2 - 2 * np.floor(w2 * crop).astype(np.int64), h2 - 2 * np.floor(h2 * crop).astype(np.int64)


def encode_variant(img: Image.Image, variant: int) -> bytes:
    """Encode canonical `img` as near-duplicate `variant` (0: the canonical JPEG itself)."""
    v = VARIANTS[variant]
    if v.scale != 1.0:
        size = (max(1, round(img.width * v.scale)), max(1, round(img.height * v.scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    if v.crop:
        dx, dy = int(img.width * v.crop), int(img.height * v.crop)
        img = img.crop((dx, dy, img.width - dx, img.height - dy))
    if v.brightness != 1.0:
        img = ImageEnhance.Brightness(img).enhance(v.brightness)
    if v.mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    if v.ext == "png":
        img.save(buf, format="PNG", compress_level=3)
    else:
        img.save(buf, format="JPEG", quality=v.quality)
    return buf.getvalue()


def image_bytes(cfg: WebConfig, image_id: int, variant: int = 0) -> bytes:
    """Encoded bytes of `variant` of image `image_id`; identical for identical (config seed/sizes, id, variant)."""
    return encode_variant(render_image(cfg, image_id), variant)


def tiny_bytes(cfg: WebConfig, image_id: int) -> bytes:
    """An 8×8 PNG of image `image_id` (the `tiny` fault: valid, but below any sane minimum side)."""
    buf = io.BytesIO()
    render_image(cfg, image_id).resize((TINY_SIDE, TINY_SIDE), Image.Resampling.BOX).save(buf, format="PNG")
    return buf.getvalue()


def render_image(cfg: WebConfig, image_id: int) -> Image.Image:
    """The canonical RGB image of `image_id`: light gradient background, a textured shape or a digit, grey noise."""
    concept = CONCEPTS[int(concepts_of(cfg, image_id)[0])]
    w, h = (int(x[0]) for x in image_sizes(cfg, image_id))
    rng = np.random.default_rng([cfg.seed, image_id])
    img = _background(rng, w, h)
    if concept.digit >= 0:
        _draw_digit(img, rng, concept.digit, evaluation=image_id >= EVAL_ID_BASE)
    else:
        colour = COLOUR_RGB[COLOURS.index(concept.colour)]
        _draw_shape(img, rng, SHAPES.index(concept.shape), colour, int(textures_of(cfg, image_id)[0]))
    return _add_noise(img, rng)


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A light, slightly tinted RGB background with smooth random blotches (±_BLOTCH levels): a few random values
    on a coarse grid, upscaled bicubically. The blotches are what pHash sees of a background, so distinct images get
    distinct hashes instead of colliding on near-identical flat backgrounds."""
    base = np.rint(rng.uniform(195, 230) + rng.uniform(-10, 10, 3))
    gy, gx = (int(v) for v in rng.integers(2, 6, 2))
    coarse = rng.uniform(-_BLOTCH, _BLOTCH, (gy, gx)) + _BIAS
    field = Image.fromarray(np.rint(coarse).astype(np.uint8), "L").resize((w, h), Image.Resampling.BICUBIC)
    return ImageChops.add(Image.new("RGB", (w, h), _rgb(base)), field.convert("RGB"), 1.0, -_BIAS)  # in C, clipped


@lru_cache(maxsize=1)
def _noise_tile() -> Image.Image:
    """RGB (512, 512) grey noise, sigma 4, biased by +_BIAS, from a fixed seed: cropped at a random offset per
    image, which is far cheaper than drawing fresh normals for every pixel of every image."""
    noise = np.random.default_rng(0x5EED).normal(0, 4, (_NOISE_SIDE, _NOISE_SIDE))
    grey = np.clip(np.rint(noise) + _BIAS, 0, 2 * _BIAS).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def _add_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    oy, ox = int(rng.integers(0, max(1, _NOISE_SIDE - h + 1))), int(rng.integers(0, max(1, _NOISE_SIDE - w + 1)))
    tile = _noise_tile()
    if w > _NOISE_SIDE or h > _NOISE_SIDE:  # large images: repeat the tile (rare; max_side is 256 by default)
        big = Image.new("RGB", (max(w, _NOISE_SIDE), max(h, _NOISE_SIDE)))
        for x in range(0, big.width, _NOISE_SIDE):
            for y in range(0, big.height, _NOISE_SIDE):
                big.paste(tile, (x, y))
        tile = big
    return ImageChops.add(img, tile.crop((ox, oy, ox + w, oy + h)), 1.0, -_BIAS)


def _unit_shape(shape: int) -> np.ndarray:
    """(k, 2) polygon of a shape in unit coordinates (x right, y down), roughly inside the unit circle."""
    name = SHAPES[shape]
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if name == "square":
        return np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]])
    if name in ("triangle", "hexagon", "star"):
        k = {"triangle": 3, "hexagon": 6, "star": 10}[name]
        t = -np.pi / 2 + np.arange(k) * 2 * np.pi / k
        r = np.where(np.arange(k) % 2 == 1, 0.42, 1.0) if name == "star" else np.ones(k)
        return np.stack([r * np.cos(t), r * np.sin(t) + (0.15 if name == "triangle" else 0)], 1)
    if name == "cross":
        a, b = 0.3, 0.9
        top, right = [[-a, -b], [a, -b], [a, -a]], [[b, -a], [b, a], [a, a]]
        bottom, left = [[a, b], [-a, b], [-a, a]], [[-b, a], [-b, -a], [-a, -a]]
        return np.array(top + right + bottom + left)
    if name == "heart":
        t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x, y + 2], 1) / 17
    return np.array([[0, -1], [0.62, 0], [0, 1], [-0.62, 0]])  # diamond: a rhombus, never a rotated square


def _draw_shape(img: Image.Image, rng: np.random.Generator, shape: int, rgb: tuple, texture: int) -> None:
    """Paint a textured, outlined shape into `img` in place. Rotation stays within ±25° so that a square never
    turns into a diamond."""
    w, h = img.size
    r = rng.uniform(0.28, 0.45) * min(w, h)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    theta = np.deg2rad(rng.uniform(-25, 25))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    poly = [tuple(p) for p in (_unit_shape(shape) @ rot.T * r + [cx, cy]).tolist()]
    colour = np.clip(np.array(rgb) + rng.integers(-18, 19, 3), 0, 255)
    alt = colour + (255 - colour) * 0.55  # the texture's second tone: same hue, lighter
    period, phi = max(4.0, r * rng.uniform(0.25, 0.4)), rng.uniform(0, np.pi)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon(poly, fill=255)
    img.paste(_rgb(colour), mask=mask)
    if texture:
        # the second tone only inside the shape's bounding box: the pattern costs O(shape), not O(image)
        x0, y0, x1, y1 = mask.getbbox() or (0, 0, 1, 1)
        ys, xs = np.ogrid[y0:y1, x0:x1]
        second = _pattern(texture, xs, ys, period, phi) & (np.asarray(mask.crop((x0, y0, x1, y1))) > 127)
        img.paste(_rgb(alt), (x0, y0), mask=Image.fromarray(second.astype(np.uint8) * 255, "L"))
    ImageDraw.Draw(img).polygon(poly, outline=_rgb(colour * 0.6), width=max(1, round(min(w, h) / 100)))


def _pattern(texture: int, xs: np.ndarray, ys: np.ndarray, period: float, phi: float) -> np.ndarray:
    """Boolean mask of the texture's second tone: 1 striped, 2 dotted, 3 checkered (0 solid has none)."""
    if texture == 1:
        return ((xs * np.cos(phi) + ys * np.sin(phi)) // (period / 2)) % 2 == 1
    if texture == 2:
        return (xs % period - period / 2) ** 2 + (ys % period - period / 2) ** 2 < (0.3 * period) ** 2
    return ((xs // period) + (ys // period)) % 2 == 1


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(round(float(v))) for v in c)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _digit_pools() -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(images float32 (n, 8, 8) in 0..1, train indices per digit, eval indices per digit). Samples in the `digits`
    benchmark's test split are in neither pool."""
    from evaluation.datasets import fixed_split  # numpy + PIL only; the rule that defines the benchmark's test split

    images, target = load_digit_images()
    usable = ~fixed_split(target)
    train, evaluation = [], []
    for d in range(10):
        idx = np.flatnonzero((target == d) & usable)
        cut = int(len(idx) * _DIGIT_TRAIN_FRACTION)
        train.append(idx[:cut])
        evaluation.append(idx[cut:])
    return images, tuple(train), tuple(evaluation)


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits: (images float32 (n, 8, 8) in 0..1, labels int64). Read straight from
    the CSV that ships inside scikit-learn (what `load_digits` reads), which skips sklearn's seconds-long import."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        data = np.loadtxt(path, delimiter=",")
        pixels, target = data[:, :-1], data[:, -1]
    else:  # another layout: let sklearn find it
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels, target = bunch.data, bunch.target
    return (pixels.reshape(-1, 8, 8) / 16.0).astype(np.float32), target.astype(np.int64)


def _draw_digit(img: Image.Image, rng: np.random.Generator, digit: int, evaluation: bool) -> None:
    """Paint a real handwritten `digit` into `img` in place: upscaled to 70-95 % of the short side, centred (a few
    per cent of jitter, so a centre crop keeps it whole, as a scan would), slightly rotated; dark ink on the light
    background, or with probability `_CHALK_SHARE` light chalk on a dark slate that covers the image."""
    w, h = img.size
    images, train, held_out = _digit_pools()
    pool = (held_out if evaluation else train)[digit]
    sample = images[pool[rng.integers(len(pool))]]
    short = min(w, h)
    side = max(8, int(rng.uniform(0.7, 0.95) * short))
    glyph = Image.fromarray((sample * 255).astype(np.uint8), "L").resize((side, side), Image.Resampling.BICUBIC)
    glyph = glyph.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR)
    jitter = max(1, int(0.04 * short))
    x0 = min(max(0, (w - side) // 2 + int(rng.integers(-jitter, jitter + 1))), w - side)
    y0 = min(max(0, (h - side) // 2 + int(rng.integers(-jitter, jitter + 1))), h - side)
    ink = np.array(_INKS[rng.integers(len(_INKS))]) + rng.integers(-10, 11, 3)
    if rng.random() < _CHALK_SHARE:
        img.paste(_rgb(np.rint(rng.uniform(15, 60) + rng.uniform(-8, 8, 3))), (0, 0, w, h))
        ink = np.rint(rng.uniform(200, 250) + rng.uniform(-15, 15, 3))
    img.paste(_rgb(ink), (x0, y0), mask=glyph)  # the glyph's intensity is the ink's opacity
