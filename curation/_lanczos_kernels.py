"""Numba kernels behind `curation.lanczos`: Pillow's 8-bit grayscale conversion and resampling passes, in Pillow's
own integer arithmetic. Imported lazily (numba costs ~0.4 s to import); compiled once and cached on disk.

Written by hand because no library reproduces Pillow's rounding, and Pillow's own loops are scalar C: here the
compiler vectorises them. Every sum is the integer sum of `src/libImaging/Resample.c` (`ss = 1 << 21;
ss += pixel * k; clip8(ss)`; it never reaches 2**31), so the result is Pillow's by construction, not by
tolerance. Two details keep the loops vectorisable: the tap loop reads a slice of the output's window (a
`row[lo + k]` index would carry Numba's negative-index wraparound check into the loop), and the vertical pass
accumulates a whole row of columns per tap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ROUND = np.int32(1 << 21)  # 1 << (PRECISION_BITS - 1)
_TOP = np.int32(255 << 22)  # clip8: at or above this the result is 255


@njit(cache=True, nogil=True)
def _clip8(s):
    if s <= 0:
        return np.uint8(0)
    if s >= _TOP:
        return np.uint8(255)
    return np.uint8(s >> 22)


@njit(cache=True, nogil=True)
def gray_from_rgbx(flat, h, w):
    """(h·w·4,) uint8 RGBX/RGBA bytes (Pillow's storage of RGB and RGBA) → (h, w) uint8, as `convert("L")`:
    `Convert.c` rgb2l, `(R·19595 + G·38470 + B·7471 + 0x8000) >> 16`."""
    out = np.empty((h, w), np.uint8)
    for y in range(h):
        px = flat[y * w * 4 : (y + 1) * w * 4]
        o = out[y]
        for x in range(w):
            v = (
                np.uint32(px[4 * x]) * np.uint32(19595)
                + np.uint32(px[4 * x + 1]) * np.uint32(38470)
                + np.uint32(px[4 * x + 2]) * np.uint32(7471)
                + np.uint32(0x8000)
            )
            o[x] = np.uint8(v >> np.uint32(16))
    return out


@njit(cache=True, nogil=True)
def horizontal(src, y0, y1, lo, ntap, kk):
    """Rows y0..y1 of (H, W) uint8 `src` resampled along x → (y1 − y0, n_out) uint8 (`ImagingResampleHorizontal`)."""
    n_out = lo.shape[0]
    out = np.empty((y1 - y0, n_out), np.uint8)
    for o in range(n_out):
        n = ntap[o]
        window = src[y0:y1, lo[o] : lo[o] + n]  # output o's taps, every row
        k = kk[o]
        for y in range(y1 - y0):
            px = window[y]
            s = _ROUND
            for t in range(n):
                s += np.int32(px[t]) * k[t]
            out[y, o] = _clip8(s)
    return out


@njit(cache=True, nogil=True)
def vertical(src, offset, lo, ntap, kk):
    """(rows, W) uint8 `src` whose row 0 is input row `offset`, resampled along y → (n_out, W) uint8
    (`ImagingResampleVertical`)."""
    n_out = lo.shape[0]
    w = src.shape[1]
    out = np.empty((n_out, w), np.uint8)
    acc = np.empty(w, np.int32)
    for o in range(n_out):
        for x in range(w):
            acc[x] = _ROUND
        k = kk[o]
        base = lo[o] - offset
        for t in range(ntap[o]):
            c = k[t]
            r = src[base + t]
            for x in range(w):
                acc[x] += np.int32(r[x]) * c
        o_row = out[o]
        for x in range(w):
            o_row[x] = _clip8(acc[x])
    return out
