"""Pillow's 8-bit grayscale conversion and LANCZOS resize, bit for bit, in compiled integer loops (for pHash).

`imagehash.phash` is defined by `img.convert("L").resize((32, 32), LANCZOS)`: Pillow's fixed-point arithmetic
*is* the hash, so nothing but an exact reproduction may replace it. Pillow runs both steps as scalar C loops (one
multiply-add per tap); this module runs the same integer arithmetic in Numba kernels (`curation._lanczos_kernels`)
that the compiler vectorises, and reads RGB pixels straight from Pillow's memory (Arrow export, no copy): ~5×
faster than Pillow for the resize, up to ~3× for the conversion of large images. Written by hand because no
library reproduces Pillow's rounding (OpenCV, scikit-image and torchvision use other kernels or float arithmetic).
Until stop 12 the sums ran as float64 BLAS products (exact too, since every partial sum is an integer below
2**31); the kernels are 2–3× faster than that and need no banding.

Why it is exact, step by step (Pillow 13 `src/libImaging/Resample.c`):
- Coefficients: `precompute_coeffs` evaluates the Lanczos-3 kernel in C doubles, normalises each output's taps to
  sum 1 and `normalize_coeffs_8bpc` rounds them to integers with 22 fractional bits. `_Axis` repeats the same
  double operations in the same order with NumPy (IEEE-rounded, unfused), the sines from the C library through
  `math.sin` and the tap sum as a left-to-right running sum, so it yields the same integers. They depend only on
  (input size, output size) and are cached.
- Sums: a pass computes `(2**21 + Σ k·pixel) >> 22`, clipped to 0..255 (`clip8`), as Pillow's int32 loop does.
  Every partial sum is bounded by Σ|k|·255 < 2**31, so no order of additions can overflow or round.
- Grayscale: `Convert.c` rgb2l, `(R·19595 + G·38470 + B·7471 + 0x8000) >> 16`, for RGB, RGBA and RGBX (which
  Pillow stores as 4 bytes per pixel); every other mode goes through Pillow's own `convert("L")`.
- Passes: Pillow resamples horizontally then vertically, unless the height shrinks by more than twice as much as
  the width does (then vertically first); the intermediate image is rounded to 8 bits in between. A horizontal
  first pass only covers the rows the vertical pass reads. `_horizontal_first` is Pillow's test.
- A Pillow that computes otherwise is caught, not trusted: `exact()` and `gray_exact()` compare this module with
  the installed Pillow on shapes that exercise both pass orders, upscaling and untouched axes, and on RGB, RGBA
  and L images, once per process, and callers fall back to Pillow's own calls if they differ (constraints.txt pins
  the Pillow this was verified against).
"""

from __future__ import annotations

import functools
import math

import numpy as np

PRECISION_BITS = 22  # Pillow: 32 - 8 - 2
_SUPPORT = 3.0  # Lanczos-3
_GRAY_KERNEL_FROM = 40_000  # pixels: below, Pillow's convert("L") is faster than the export + kernel (~200²)


def _sin_pi(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x·π, sin(x·π)) elementwise, the sine from the C library (`math.sin`) as Pillow's C code calls it; NumPy's
    own vectorised sine may differ in the last bit on some CPUs, and a coefficient must not."""
    arg = x * math.pi
    return arg, np.fromiter(map(math.sin, arg.ravel().tolist()), dtype=np.float64, count=arg.size).reshape(arg.shape)


def _lanczos(x: np.ndarray) -> np.ndarray:
    """Pillow's `lanczos_filter` elementwise: sinc(x)·sinc(x/3) on [-3, 3), 0 elsewhere; sinc(0) = 1. Same double
    operations in the same order as the C code (NumPy's +, −, ×, ÷ are IEEE-rounded like C's, never fused)."""
    out = np.zeros_like(x)
    inside = (x >= -3.0) & (x < 3.0)
    v = x[inside]
    sinc = []
    for t in (v, v / 3):
        arg, s = _sin_pi(t)
        nonzero = t != 0.0
        sinc.append(np.where(nonzero, s / np.where(nonzero, arg, 1.0), 1.0))
    out[inside] = sinc[0] * sinc[1]
    return out


class _Axis:
    """Fixed-point taps for resampling one axis from `n_in` to `n_out` samples: output o reads inputs
    lo[o] .. lo[o] + ntap[o] − 1 with int32 weights kk[o, :ntap[o]] (zeros after). `precompute_coeffs` +
    `normalize_coeffs_8bpc`, vectorised over outputs and taps."""

    def __init__(self, n_in: int, n_out: int) -> None:
        scale = float(n_in) / n_out
        filterscale = max(scale, 1.0)
        support = _SUPPORT * filterscale
        ss = 1.0 / filterscale
        center = (np.arange(n_out, dtype=np.float64) + 0.5) * scale
        lo = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # C's (int): toward zero
        hi = np.minimum(np.trunc(center + support + 0.5), n_in).astype(np.int64)
        ksize = max(int((hi - lo).max(initial=0)), 1)
        tap = np.arange(ksize, dtype=np.int64)[None, :]
        valid = tap < (hi - lo)[:, None]
        w = _lanczos(((tap + lo[:, None]).astype(np.float64) - center[:, None] + 0.5) * ss)
        w[~valid] = 0.0
        ww = np.cumsum(w, axis=1)[:, -1]  # a running sum, left to right, as the C loop adds them (+0.0 is exact)
        k = np.where(ww[:, None] != 0.0, w / np.where(ww == 0.0, 1.0, ww)[:, None], w)
        scaled = k * float(1 << PRECISION_BITS)
        fixed = np.trunc(np.where(k < 0, -0.5 + scaled, 0.5 + scaled))  # C's (int) truncates toward zero
        self.n_out = n_out
        self.lo = lo.astype(np.int32)
        self.ntap = (hi - lo).astype(np.int32)
        self.kk = np.ascontiguousarray(np.where(valid, fixed, 0.0).astype(np.int32))
        self.first, self.last = int(lo[0]), int(hi[-1])


@functools.lru_cache(maxsize=1024)  # ≤ a few KiB each: the distinct image sides of a crawl
def _axis(n_in: int, n_out: int) -> _Axis:
    return _Axis(n_in, n_out)


def _kernels():
    from curation import _lanczos_kernels

    return _lanczos_kernels


def _horizontal_first(w_in: int, h_in: int, w_out: int, h_out: int) -> bool:
    """Pillow 13's pass order: vertical first iff the height shrinks by more than twice what the width does."""
    return not ((h_in - h_out) > 0 and (h_in - h_out) > (w_in - w_out) * 2)


def resize_gray(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`Image.fromarray(gray).resize(size, LANCZOS)` for one (H, W) uint8 image → (h_out, w_out) uint8, identical
    to Pillow's output (see the module docstring; check `exact()` first)."""
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 image, got shape {gray.shape} dtype {gray.dtype}")
    w_out, h_out = size
    h_in, w_in = gray.shape
    if w_out < 1 or h_out < 1 or h_in < 1 or w_in < 1:
        raise ValueError(f"sizes must be positive: {w_in}×{h_in} → {w_out}×{h_out}")
    need_h, need_v = w_in != w_out, h_in != h_out
    if not (need_h or need_v):
        return gray.copy()
    kern = _kernels()
    gray = np.ascontiguousarray(gray)
    if _horizontal_first(w_in, h_in, w_out, h_out):
        if need_h:
            h = _axis(w_in, w_out)
            v = _axis(h_in, h_out) if need_v else None
            y0, y1 = (v.first, v.last) if v is not None else (0, h_in)  # only the rows the vertical pass reads
            a = kern.horizontal(gray, y0, y1, h.lo, h.ntap, h.kk)
            if v is not None:
                a = kern.vertical(a, y0, v.lo, v.ntap, v.kk)
        else:
            v = _axis(h_in, h_out)
            a = kern.vertical(gray, 0, v.lo, v.ntap, v.kk)
    else:
        v = _axis(h_in, h_out)
        a = kern.vertical(gray, 0, v.lo, v.ntap, v.kk)
        if need_h:
            h = _axis(w_in, w_out)
            a = kern.horizontal(a, 0, h_out, h.lo, h.ntap, h.kk)
    return a


def gray(image) -> np.ndarray:
    """`np.asarray(image.convert("L"))` for a loaded PIL image, computed from Pillow's own pixel memory without a
    copy for RGB/RGBA/RGBX (Arrow export, Pillow ≥ 11.2) and Pillow's `rgb2l` arithmetic; other modes, and images
    Pillow cannot export in one block, go through `convert("L")` itself, as do images under `_GRAY_KERNEL_FROM`
    pixels (the export's fixed ~25 µs outweighs the faster loop there). Check `gray_exact()` first."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "RGBX", "L") and (mode == "L" or image.size[0] * image.size[1] >= _GRAY_KERNEL_FROM):
        try:
            import pyarrow as pa

            flat = pa.array(image).flatten().to_numpy(zero_copy_only=True)
        except Exception:  # an older Pillow, or an image stored in several blocks
            flat = None
        if flat is not None:
            w, h = image.size
            if mode == "L" and flat.size == w * h:
                return flat.reshape(h, w)
            if flat.size == w * h * 4:
                return _kernels().gray_from_rgbx(flat, h, w)
    return np.asarray(image.convert("L"))


# Shapes that exercise both pass orders, upscaling, one untouched axis, tiny and long inputs.
_CHECK_SHAPES = [(64, 64), (256, 171), (171, 256), (640, 427), (20, 54), (54, 20), (32, 300), (300, 32), (7, 5),
                 (1, 1), (1000, 33), (33, 1000)]


def _kernels_usable() -> bool:
    """False (with a warning) when the kernels cannot be loaded: Numba missing or broken, or no writable cache
    directory for `cache=True` (a read-only install without a home). Callers then use Pillow's own calls."""
    try:
        _kernels()
    except Exception as e:  # ImportError, Numba's "cannot cache function … no locator available", LLVM errors
        import warnings

        warnings.warn(f"clipforge: pHash kernels unavailable ({type(e).__name__}: {e}); using Pillow", stacklevel=3)
        return False
    return True


@functools.cache
def exact(size: tuple[int, int] = (32, 32)) -> bool:
    """True when `resize_gray` equals the installed Pillow's LANCZOS resize to `size` on a fixed set of random
    images (both pass orders, up- and downscaling); computed once per process."""
    from PIL import Image

    if not _kernels_usable():
        return False
    rng = np.random.default_rng(20260)
    for w, h in _CHECK_SHAPES:
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
        ref = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))
        if not np.array_equal(resize_gray(arr, size), ref):
            return False
    return True


@functools.cache
def gray_exact() -> bool:
    """True when `gray` equals the installed Pillow's `convert("L")` on random RGB, RGBA and L images (odd sizes
    included); computed once per process."""
    from PIL import Image

    if not _kernels_usable():
        return False
    rng = np.random.default_rng(20261)
    for mode, shape in (("RGB", (237, 253, 3)), ("RGBA", (300, 141, 4)), ("L", (5, 7)), ("RGB", (1, 1, 3))):
        im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        if not np.array_equal(gray(im), np.asarray(im.convert("L"))):
            return False
    return True
