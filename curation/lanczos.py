"""Pillow's 8-bit LANCZOS resize of grayscale images, bit for bit, as float64 matrix products (for pHash).

`imagehash.phash` is defined by `img.convert("L").resize((32, 32), LANCZOS)`: Pillow's fixed-point arithmetic
*is* the hash, so nothing but an exact reproduction may replace it. Pillow runs that resize as a scalar C loop
(one multiply-add per tap); this module runs the same integer sums through BLAS instead, about 2× faster from
256 px up and several times faster on batches of small images. Written by hand because no library reproduces
Pillow's rounding (OpenCV, scikit-image and torchvision all use other kernels or float arithmetic).

Why it is exact, step by step (Pillow 13 `src/libImaging/Resample.c`):
- Coefficients: `precompute_coeffs` evaluates the Lanczos-3 kernel in C doubles, normalises each output's taps to
  sum 1 and `normalize_coeffs_8bpc` rounds them to integers with 22 fractional bits. `_Axis` repeats the same
  double operations in the same order with NumPy (IEEE-rounded, unfused), the sines from the C library through
  `math.sin` and the tap sum as a left-to-right running sum, so it yields the same integers. They depend only on
  (input size, output size) and are cached.
- Sums: a pass computes `(2**21 + Σ k·pixel) >> 22`, clipped to 0..255. Every product k·pixel is an integer below
  2**31 and every partial sum is bounded by Σ|k|·255 < 2**31, so float64 (53-bit mantissa) holds every partial
  sum exactly in whatever order BLAS adds them; zeros outside a tap window add nothing. Dividing by 2**22 is exact
  and `floor` is the arithmetic shift.
- Passes: Pillow resamples horizontally then vertically, unless the height shrinks by more than twice as much as
  the width does (then vertically first); the intermediate image is rounded to 8 bits in between. A horizontal
  first pass only covers the rows the vertical pass reads. `_horizontal_first` is Pillow's test.
- A Pillow that computes otherwise is caught, not trusted: `exact()` compares this module with the installed
  Pillow on shapes that exercise both pass orders, upscaling and untouched axes, once per process, and callers
  fall back to Pillow's own resize if they differ (constraints.txt pins the Pillow this was verified against).
"""

from __future__ import annotations

import functools
import math

import numpy as np

PRECISION_BITS = 22  # Pillow: 32 - 8 - 2
_HALF = float(1 << (PRECISION_BITS - 1))
_INV = 1.0 / (1 << PRECISION_BITS)
_SUPPORT = 3.0  # Lanczos-3
_DENSE_UP_TO = 128  # input sides up to this use one dense product; above, products over bands of outputs
_BAND = 8  # outputs per band: fewer multiplications by zero, products still large enough for BLAS


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
    """Fixed-point taps for resampling one axis from `n_in` to `n_out` samples, as a dense (n_in, n_out) matrix
    (zeros outside each output's window) plus the band split and the first/last input sample used.
    `precompute_coeffs` + `normalize_coeffs_8bpc`, vectorised over outputs and taps."""

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
        matrix = np.zeros((n_in, n_out), dtype=np.float64)
        rows, cols = np.nonzero(valid)
        matrix[tap[0, cols] + lo[rows], rows] = fixed[rows, cols]
        self.n_out = n_out
        self.first, self.last = int(lo[0]), int(hi[-1])
        step = n_out if n_in <= _DENSE_UP_TO else _BAND
        self.bands = []
        for b0 in range(0, n_out, step):
            b1 = min(b0 + step, n_out)
            a, b = int(lo[b0:b1].min()), int(hi[b0:b1].max())
            self.bands.append((b0, b1, a, b, np.ascontiguousarray(matrix[a:b, b0:b1])))
        self.matrix = matrix if len(self.bands) == 1 else None  # banded axes keep only their bands (cache memory)


@functools.lru_cache(maxsize=1024)  # ≤ ~100 KiB each: distinct image sides of a crawl, tens of MiB at most
def _axis(n_in: int, n_out: int) -> _Axis:
    return _Axis(n_in, n_out)


def _round(t: np.ndarray) -> np.ndarray:
    """`clip8`: (2**21 + sum) >> 22, clipped to 0..255, in place on exact-integer float64 sums."""
    np.add(t, _HALF, out=t)
    np.multiply(t, _INV, out=t)
    np.floor(t, out=t)
    return np.clip(t, 0.0, 255.0, out=t)


def _horizontal(a: np.ndarray, axis: _Axis) -> np.ndarray:
    """(n, rows, W) → (n, rows, W_out), each row resampled."""
    if len(axis.bands) == 1:
        return _round(a @ axis.matrix)
    out = np.empty(a.shape[:-1] + (axis.n_out,), dtype=np.float64)
    for b0, b1, lo, hi, m in axis.bands:
        np.matmul(a[..., lo:hi], m, out=out[..., b0:b1])
    return _round(out)


def _vertical(a: np.ndarray, axis: _Axis, offset: int = 0) -> np.ndarray:
    """(n, rows, W) → (n, H_out, W), each column resampled; row 0 of `a` is input row `offset`."""
    n_out = axis.n_out
    if len(axis.bands) == 1:
        return _round(np.matmul(axis.matrix[offset : offset + a.shape[1]].T, a))
    out = np.empty((a.shape[0], n_out, a.shape[2]), dtype=np.float64)
    for b0, b1, lo, hi, m in axis.bands:
        np.matmul(m.T, a[:, lo - offset : hi - offset], out=out[:, b0:b1])
    return _round(out)


def _horizontal_first(w_in: int, h_in: int, w_out: int, h_out: int) -> bool:
    """Pillow 13's pass order: vertical first iff the height shrinks by more than twice what the width does."""
    return not ((h_in - h_out) > 0 and (h_in - h_out) > (w_in - w_out) * 2)


def resize_stack(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`Image.fromarray(s).resize(size, LANCZOS)` for every (H, W) uint8 grayscale image of an (n, H, W) stack →
    (n, h_out, w_out) uint8, identical to Pillow's output (see the module docstring; check `exact()` first)."""
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(f"expected an (n, H, W) uint8 stack, got shape {stack.shape} dtype {stack.dtype}")
    w_out, h_out = size
    n, h_in, w_in = stack.shape
    if w_out < 1 or h_out < 1 or h_in < 1 or w_in < 1:
        raise ValueError(f"sizes must be positive: {w_in}×{h_in} → {w_out}×{h_out}")
    need_h, need_v = w_in != w_out, h_in != h_out
    if not (need_h or need_v):
        return stack.copy()
    if _horizontal_first(w_in, h_in, w_out, h_out):
        if need_h:
            v = _axis(h_in, h_out) if need_v else None
            y0, y1 = (v.first, v.last) if v is not None else (0, h_in)
            a = _horizontal(stack[:, y0:y1].astype(np.float64), _axis(w_in, w_out))
            if v is not None:
                a = _vertical(a, v, offset=y0)
        else:
            a = _vertical(stack.astype(np.float64), _axis(h_in, h_out))
    else:
        a = _vertical(stack.astype(np.float64), _axis(h_in, h_out))
        if need_h:
            a = _horizontal(a, _axis(w_in, w_out))
    return a.astype(np.uint8)


# Shapes that exercise both pass orders, upscaling, one untouched axis, tiny and banded inputs.
_CHECK_SHAPES = [(64, 64), (256, 171), (171, 256), (640, 427), (20, 54), (54, 20), (32, 300), (300, 32), (7, 5),
                 (1, 1), (1000, 33), (33, 1000)]


@functools.cache
def exact(size: tuple[int, int] = (32, 32)) -> bool:
    """True when `resize_stack` equals the installed Pillow's LANCZOS resize to `size` on a fixed set of random
    images (both pass orders, up- and downscaling); computed once per process."""
    from PIL import Image

    rng = np.random.default_rng(20260)
    for w, h in _CHECK_SHAPES:
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
        ref = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))
        if not np.array_equal(resize_stack(arr[None], size)[0], ref):
            return False
    return True
