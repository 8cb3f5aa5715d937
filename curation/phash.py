"""64-bit perceptual hashes of decoded images, batched, bit-identical to `imagehash.phash`; never decodes or does I/O.

Contract (the same as `imagehash.phash(img)` with its defaults hash_size=8, highfreq_factor=4):
`img.convert("L").resize((32, 32), LANCZOS)` → 2-D DCT-II (scipy.fftpack, unnormalised) → top-left 8×8 block
(DC included) → `coefficient > median(block)`. The 64 bits are packed row-major with element [0, 0] (the DC term)
as the most significant bit, so `f"{h:016x}" == str(imagehash.phash(img))` for every hash `h` returned here.

Why it is faster than calling imagehash in a loop: the two full 32×32 DCTs, the median and the `ImageHash` object
per image are replaced by one batched matrix product that computes only the 8×8 block, one vectorised median and
one `packbits`. The grayscale conversion and the 32×32 LANCZOS resize, whose fixed-point rounding *is* the definition
of the hash, are `curation.lanczos` (Pillow's integer arithmetic, bit for bit, in compiled loops), verified against
the installed Pillow once per process, else Pillow's own calls.

Why the matrix product is still bit-identical: it differs from scipy's FFT-based DCT only by float64 rounding
(measured ≤ 2e-10 on 32×32 uint8 inputs, whose coefficients are ≤ 1.05e6 in magnitude). A bit can only differ if
some coefficient lies within that error of the median, so every image whose closest coefficient is nearer than
`TIE_TOLERANCE` (1e-6, ~5000× the error) is recomputed with exactly imagehash's own scipy calls. That happens for
flat and mirror-symmetric images, whose coefficients tie exactly; natural photos practically never fall back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.fftpack
from PIL import Image

from curation import lanczos

HASH_SIDE = 8
PHASH_SIDE = 32  # HASH_SIDE * highfreq_factor (4), as imagehash
TIE_TOLERANCE = 1e-6
BALANCED_POPCOUNT = 32  # a median split of 64 distinct values sets exactly half the bits


def phash_pixels(image: Image.Image) -> np.ndarray:
    """The (32, 32) uint8 grayscale array that `imagehash.phash` hashes: `convert("L")` then 32×32 LANCZOS.

    This is the only per-image cost worth naming (it dominates hashing); callers that already hold a decoded image
    compute it once and pass the stacked arrays to `phash64_from_pixels`.
    """
    return _resize_gray(_gray(image))


def phash64(images: Iterable[Image.Image]) -> np.ndarray:
    """pHash of each PIL image as a (n,) uint64 array; bit i (MSB = 0) is DCT block element (i // 8, i % 8)."""
    pixels = [phash_pixels(im) for im in images]
    if not pixels:
        return np.zeros(0, dtype=np.uint64)
    return phash64_from_pixels(np.stack(pixels))


def _gray(image: Image.Image) -> np.ndarray:
    """`np.asarray(image.convert("L"))`, through `curation.lanczos.gray` when it is verified against this Pillow."""
    if lanczos.gray_exact():
        return lanczos.gray(image)
    return np.asarray(image.convert("L"))


def _resize_gray(gray: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grayscale → (32, 32) uint8, as `Image.resize((32, 32), LANCZOS)` (imagehash 4.3.2:
    ANTIALIAS == LANCZOS, no reducing_gap): `curation.lanczos` when it is verified against this Pillow, else
    Pillow's own resize."""
    size = (PHASH_SIDE, PHASH_SIDE)
    if lanczos.exact(size):
        return lanczos.resize_gray(gray, size)
    return np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.LANCZOS))


def _dct_rows(n_out: int, n_in: int) -> np.ndarray:
    """First `n_out` rows of the unnormalised DCT-II matrix scipy.fftpack uses: 2·cos(π·k·(2m+1) / (2·n_in))."""
    k = np.arange(n_out, dtype=np.float64)[:, None]
    m = np.arange(n_in, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * m + 1.0) / (2.0 * n_in))


def _bits_reference(pixels: np.ndarray) -> np.ndarray:
    """imagehash's exact arithmetic for one (32, 32) uint8 array → (8, 8) bool (used only near ties)."""
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = dct[:HASH_SIDE, :HASH_SIDE]
    return low > np.median(low)


def phash64_from_pixels(pixels: np.ndarray) -> np.ndarray:
    """pHash of a (n, 32, 32) uint8 stack from `phash_pixels` → (n,) uint64, same bit order as `phash64`."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[1:] != (PHASH_SIDE, PHASH_SIDE) or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be a (n, 32, 32) uint8 array, got shape {pixels.shape} dtype {pixels.dtype}")
    n = pixels.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    c8 = _dct_rows(HASH_SIDE, PHASH_SIDE)
    low = (c8 @ pixels.astype(np.float64) @ c8.T).reshape(n, HASH_SIDE * HASH_SIDE)
    med = np.median(low, axis=1, keepdims=True)
    bits = low > med
    near_tie = np.abs(low - med).min(axis=1) <= TIE_TOLERANCE
    for i in np.flatnonzero(near_tie):
        bits[i] = _bits_reference(pixels[i]).reshape(-1)
    return pack_bits(bits)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(n, 64) bool → (n,) uint64 with column 0 as the most significant bit (imagehash's hex order)."""
    packed = np.packbits(np.asarray(bits, dtype=bool), axis=1, bitorder="big")  # (n, 8) bytes, MSB first
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def popcount(hashes: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 hash → uint8 array of the same shape."""
    return np.bitwise_count(np.asarray(hashes, dtype=np.uint64))


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Hamming distance between uint64 hashes (broadcasting, like `imagehash` `h1 - h2`) → uint8 array."""
    return popcount(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def degenerate_mask(hashes: np.ndarray) -> np.ndarray:
    """True where a hash is degenerate (popcount ≠ 32): flat or near-flat images whose DCT block has ties.

    Such hashes (e.g. every solid colour hashes to 0x8000000000000000) collide across unrelated images, so
    near-duplicate search must not link them.
    """
    return popcount(hashes) != BALANCED_POPCOUNT


def to_hex(hashes: np.ndarray) -> list[str]:
    """uint64 hashes → 16-char lowercase hex strings, equal to `str(imagehash.phash(...))`."""
    return [f"{int(h):016x}" for h in np.asarray(hashes, dtype=np.uint64).reshape(-1)]


def from_hex(strings: Sequence[str]) -> np.ndarray:
    """16-char hex strings (e.g. `str(imagehash.ImageHash)`) → (n,) uint64; a wrong length raises ValueError."""
    bad = [s for s in strings if len(s) != 16]
    if bad:
        raise ValueError(f"pHash hex strings must have 16 characters, got {bad[0]!r}")
    return np.array([int(s, 16) for s in strings], dtype=np.uint64)
