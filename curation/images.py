"""Decode, validate, resize and re-encode downloaded images, plus sha256 and pHash; must not do I/O or raise per row.

One decode per image serves everything: the header is checked before any pixel is decoded (pixel cap against
decompression bombs, min side, aspect ratio), large JPEGs are decoded at 1/2, 1/4 or 1/8 scale with PIL's
`draft` when the target is small, and the pHash is computed from that same decoded image (see `phash`), so
nothing is decoded twice. Every failure is a row status (`ImageStatus`), never an exception.

Why not img2dataset's `Resizer` (whose mode names, white alpha matting/border and filter semantics this module
copies): it decodes with `cv2.imdecode` at full size before checking size limits (its `max_image_area` does not
protect memory), cannot do reduced-size decode, would force a second PIL decode for an imagehash-identical
pHash, swaps process-wide stdout/stderr file descriptors (not thread-safe), and costs 1.6 s of imports
(albumentations, cv2). A test checks that our output sizes equal img2dataset's for every shared mode.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import Field

from curation.phash import degenerate_mask, phash64_from_pixels, phash_pixels
from curation.strict import StrictModel

ResizeMode = Literal["center_crop", "keep_ratio", "keep_ratio_largest", "border", "no"]
_RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}
_WHITE = (255, 255, 255)


class ImageStatus(StrEnum):
    """Outcome of processing one image (stored as `reject_reason` when not ok)."""

    ok = "ok"
    empty = "empty"  # no bytes (the fetch failed or returned an empty body)
    not_image = "not_image"  # no allowed decoder recognises the bytes
    too_many_pixels = "too_many_pixels"  # header dimensions exceed the pixel cap (decompression bomb guard)
    too_small = "too_small"
    bad_aspect = "bad_aspect"
    truncated = "truncated"  # the file ends before the image data does
    decode_error = "decode_error"  # corrupt data or a decoder failure
    encode_error = "encode_error"


class ImageConfig(StrictModel):
    """How downloaded images are validated, resized and re-encoded."""

    image_size: int = Field(256, ge=8, le=8192)
    """Target size in pixels (the square side for center_crop/border, the shortest or longest side otherwise)."""
    resize_mode: ResizeMode = "center_crop"
    """center_crop: shortest side to image_size, then the central square (img2dataset's "center_crop"; what CLIP
    training consumes). keep_ratio: shortest side to image_size. keep_ratio_largest: longest side to image_size.
    border: longest side to image_size, padded to a white square. no: keep the decoded size."""
    resample: Literal["lanczos", "bicubic", "bilinear", "box"] = "bicubic"
    """PIL filter for resizing (antialiased when downscaling; "box" equals img2dataset's default "area")."""
    min_image_size: int = Field(64, ge=1)
    """Reject images whose shorter side (in the file header) is below this."""
    max_aspect_ratio: float = Field(3.0, ge=1.0)
    """Reject images whose long/short side ratio exceeds this (DataComp-style; img2dataset's default is inf)."""
    max_pixels: int = Field(50_000_000, ge=1)
    """Reject from header dimensions before decoding (decompression bombs). Pillow itself refuses > 178,956,970."""
    formats: list[Literal["JPEG", "PNG", "WEBP", "GIF"]] = ["JPEG", "PNG", "WEBP", "GIF"]
    """Decoders Pillow may try; everything else (TIFF, PSD, FITS, …) is `not_image`, shrinking the attack surface."""
    draft: bool = True
    """Decode large JPEGs at 1/2, 1/4 or 1/8 scale when the result is still at least the resize target."""
    encode_format: Literal["jpg", "webp"] = "jpg"
    encode_quality: int = Field(95, ge=1, le=100)
    """JPEG/WebP quality of the re-encoded image (img2dataset's default: 95)."""


@dataclass(frozen=True)
class Decoded:
    """One decoded image or the reason there is none. `image` is in the decoder's own mode (e.g. RGBA, P, L)."""

    status: ImageStatus
    detail: str = ""
    image: Image.Image | None = None
    orig_size: tuple[int, int] = (0, 0)  # (width, height) from the file header; (0, 0) when unknown
    reduction: int = 1  # JPEG draft scale actually used (1, 2, 4 or 8)


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of the source bytes (img2dataset's default `compute_hash`)."""
    return hashlib.sha256(data).hexdigest()


def _header_check(size: tuple[int, int], cfg: ImageConfig) -> tuple[ImageStatus, str] | None:
    """Reject from header dimensions alone: no pixel has been decoded yet."""
    w, h = size
    if w * h > cfg.max_pixels:
        return ImageStatus.too_many_pixels, f"{w}x{h} = {w * h} px > max_pixels {cfg.max_pixels}"
    if min(w, h) < cfg.min_image_size:
        return ImageStatus.too_small, f"{w}x{h}: shorter side < min_image_size {cfg.min_image_size}"
    if max(w, h) / min(w, h) > cfg.max_aspect_ratio:
        return ImageStatus.bad_aspect, f"{w}x{h}: aspect {max(w, h) / min(w, h):.2f} > {cfg.max_aspect_ratio}"
    return None


def target_size(size: tuple[int, int], cfg: ImageConfig) -> tuple[int, int]:
    """Output (width, height) for an image of `size` (original dimensions), before any crop or padding.

    Rounds as albumentations' SmallestMaxSize/LongestMaxSize do (Python `round`, at least 1), so sizes match
    img2dataset's for the same mode.
    """
    w, h = size
    if cfg.resize_mode == "no":
        return w, h
    side = min(w, h) if cfg.resize_mode in ("center_crop", "keep_ratio") else max(w, h)
    scale = cfg.image_size / side
    return max(1, round(w * scale)), max(1, round(h * scale))


def decode_image(data: bytes | None, cfg: ImageConfig) -> Decoded:
    """Open with the allowed decoders, check the header, optionally draft-reduce, and decode; never raises."""
    if not data:
        return Decoded(ImageStatus.empty, "no bytes")
    try:
        im = Image.open(io.BytesIO(data), formats=list(cfg.formats))
    except Image.DecompressionBombError as e:  # Pillow's own cap (2 × MAX_IMAGE_PIXELS), raised at open
        return Decoded(ImageStatus.too_many_pixels, str(e))
    except Image.UnidentifiedImageError:
        return Decoded(ImageStatus.not_image, f"not one of {','.join(cfg.formats)}")
    except Exception as e:  # a plugin choking on a malformed header
        return Decoded(ImageStatus.decode_error, f"{type(e).__name__}: {e}")
    orig = im.size
    rejected = _header_check(orig, cfg)
    if rejected:
        return Decoded(rejected[0], rejected[1], orig_size=orig)
    reduction = 1
    if cfg.draft and im.format == "JPEG" and cfg.resize_mode != "no":
        # draft() picks the largest 1/2^k scale whose result is still ≥ the requested size in both dimensions.
        if im.draft("RGB", target_size(orig, cfg)) is not None:
            reduction = max(1, round(orig[0] / im.size[0]))
    try:
        im.load()
    except OSError as e:
        status = ImageStatus.truncated if "truncated" in str(e) else ImageStatus.decode_error
        return Decoded(status, str(e), orig_size=orig)
    except Exception as e:  # SyntaxError, ValueError, EOFError… from corrupt streams
        return Decoded(ImageStatus.decode_error, f"{type(e).__name__}: {e}", orig_size=orig)
    return Decoded(ImageStatus.ok, image=im, orig_size=orig, reduction=reduction)


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB view of a decoded image; transparency is composited on white, as img2dataset's alpha matting does."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE + (255,)), rgba).convert("RGB")
    return im.convert("RGB")


def resize_image(im: Image.Image, orig_size: tuple[int, int], cfg: ImageConfig) -> Image.Image:
    """Resize an RGB image (possibly draft-reduced from `orig_size`) according to `cfg.resize_mode`.

    Output sizes: center_crop and border → (S, S); keep_ratio / keep_ratio_largest → `target_size(orig_size)`;
    no → unchanged. Geometry uses the original size so a draft-reduced decode gives the same output size.
    """
    if cfg.resize_mode == "no":
        return im
    resample = _RESAMPLE[cfg.resample]
    s = cfg.image_size
    if cfg.resize_mode == "center_crop":
        # One resample from a float crop box: the same geometry as "shortest side to S, then centre crop",
        # without materialising the intermediate image.
        w, h = im.size
        side = min(w, h)
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        return im.resize((s, s), resample, box=box, reducing_gap=3.0)
    out = im.resize(target_size(orig_size, cfg), resample, reducing_gap=3.0)
    if cfg.resize_mode == "border":
        canvas = Image.new("RGB", (s, s), _WHITE)
        canvas.paste(out, ((s - out.width) // 2, (s - out.height) // 2))  # albumentations PadIfNeeded offsets
        return canvas
    return out


def encode_image(im: Image.Image, cfg: ImageConfig) -> bytes:
    """Encode an RGB image as JPEG or WebP at `cfg.encode_quality`."""
    buf = io.BytesIO()
    if cfg.encode_format == "jpg":
        im.save(buf, format="JPEG", quality=cfg.encode_quality)
    else:
        im.save(buf, format="WEBP", quality=cfg.encode_quality)
    return buf.getvalue()


@dataclass(frozen=True)
class ProcessedImage:
    """One image through decode → validate → resize → encode, with what the columns of `process_images` hold."""

    status: ImageStatus
    detail: str = ""
    data: bytes | None = None  # re-encoded image, only when ok
    size: tuple[int, int] = (0, 0)  # output (width, height); (0, 0) unless ok
    orig_size: tuple[int, int] = (0, 0)  # header (width, height); (0, 0) when the header could not be read
    sha256: str | None = None  # of the source bytes; None when there were none
    phash_pixels: np.ndarray | None = None  # (32, 32) uint8 pHash input of the decoded image, only when ok
    reduction: int = 1


def process_image(data: bytes | None, cfg: ImageConfig) -> ProcessedImage:
    """Process one image's source bytes; every failure is a status, never an exception."""
    digest = sha256_hex(data) if data else None
    dec = decode_image(data, cfg)
    if dec.status != ImageStatus.ok:
        return ProcessedImage(dec.status, dec.detail, orig_size=dec.orig_size, sha256=digest)
    try:
        # pHash of the decoded image in its own mode, exactly what imagehash.phash(image) would hash.
        pixels = phash_pixels(dec.image)
        out = resize_image(to_rgb(dec.image), dec.orig_size, cfg)
    except Exception as e:  # late decoder errors surface here for some lazily decoded formats
        return ProcessedImage(
            ImageStatus.decode_error, f"{type(e).__name__}: {e}", orig_size=dec.orig_size, sha256=digest
        )
    try:
        encoded = encode_image(out, cfg)
    except Exception as e:
        return ProcessedImage(
            ImageStatus.encode_error, f"{type(e).__name__}: {e}", orig_size=dec.orig_size, sha256=digest
        )
    return ProcessedImage(ImageStatus.ok, "", encoded, out.size, dec.orig_size, digest, pixels, dec.reduction)


def process_images(blobs: Sequence[bytes | None], cfg: ImageConfig) -> dict[str, list | np.ndarray]:
    """Process a batch of source images into Arrow-friendly columns (one entry per input, same order).

    Columns: image (bytes | None), width, height, orig_width, orig_height (int32; 0 = unknown/not ok),
    sha256 (hex str | None), phash (uint64; 0 unless ok), phash_degenerate (bool; popcount ≠ 32, False unless
    ok), decode_reduction (int8: 1, 2, 4, 8), status (`ImageStatus` value), detail (str, "" when ok).
    `pa.table(process_images(...))` works as is.
    """
    rows = [process_image(b, cfg) for b in blobs]
    n = len(rows)
    ok = np.array([r.status == ImageStatus.ok for r in rows], dtype=bool)
    phash = np.zeros(n, dtype=np.uint64)
    if ok.any():
        phash[ok] = phash64_from_pixels(np.stack([r.phash_pixels for r in rows if r.status == ImageStatus.ok]))
    return {
        "image": [r.data for r in rows],
        "width": np.array([r.size[0] for r in rows], dtype=np.int32),
        "height": np.array([r.size[1] for r in rows], dtype=np.int32),
        "orig_width": np.array([r.orig_size[0] for r in rows], dtype=np.int32),
        "orig_height": np.array([r.orig_size[1] for r in rows], dtype=np.int32),
        "sha256": [r.sha256 for r in rows],
        "phash": phash,
        "phash_degenerate": degenerate_mask(phash) & ok,
        "decode_reduction": np.array([r.reduction for r in rows], dtype=np.int8),
        "status": [str(r.status) for r in rows],
        "detail": [r.detail for r in rows],
    }
