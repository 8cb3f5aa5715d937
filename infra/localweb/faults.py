"""Fault kinds of the synthetic web, the outcome a correct downloader reaches for each, and the decompression bomb;
no HTTP here (the server in `server.py` acts them out).

The fault name is the first path segment after /img/ in a candidate URL; a correct, safe downloader (DESIGN.md §5)
ends each row in `EXPECTED_OUTCOME[fault]`. The answers file records both.
"""

from __future__ import annotations

import struct
import zlib
from enum import StrEnum
from functools import lru_cache


class Fault(StrEnum):
    """What the server does for a candidate URL (`ok` is the absence of a fault)."""

    OK = "ok"
    HTTP_404 = "http_404"
    HTTP_500 = "http_500"
    HTTP_429 = "http_429"  # 429 + Retry-After: 1 on the first request for that URL, then the image
    SLOW = "slow"  # headers, then one body byte per slow_interval for slow_seconds: only a total deadline stops it
    RESET = "reset"  # TCP RST (SO_LINGER 0) before any response byte
    TRUNCATED = "truncated"  # Content-Length of the whole image, half the bytes, then close
    HTML = "html"  # 200 text/html page where an image was expected
    BOMB = "bomb"  # a tiny PNG whose header claims 20000 × 20000 pixels
    TINY = "tiny"  # a valid 8 × 8 PNG
    NOAI = "noai"  # a valid image with `X-Robots-Tag: noai`
    REDIRECT = "redirect"  # three 302 hops, then the image
    REDIRECT_LOOP = "redirect_loop"  # a 12-URL redirect cycle: more hops than any sane cap
    REDIRECT_FORBIDDEN = "redirect_forbidden"  # 302 to a link-local / private address a safe fetcher must refuse


FAULTS = tuple(f for f in Fault if f is not Fault.OK)
"""The fault kinds a row can be given, in a fixed order (fault_rate is split evenly over them)."""

EXPECTED_OUTCOME: dict[Fault, str] = {
    Fault.OK: "ok",
    Fault.HTTP_404: "error_http_404",
    Fault.HTTP_500: "error_http_500",
    Fault.HTTP_429: "ok_after_retry",
    Fault.SLOW: "error_timeout",
    Fault.RESET: "error_connection",
    Fault.TRUNCATED: "error_truncated",
    Fault.HTML: "error_not_an_image",
    Fault.BOMB: "error_decompression_bomb",
    Fault.TINY: "error_too_small",
    Fault.NOAI: "skipped_noai",
    Fault.REDIRECT: "ok",
    Fault.REDIRECT_LOOP: "error_too_many_redirects",
    Fault.REDIRECT_FORBIDDEN: "error_forbidden_address",
}
"""What a correct, safe downloader ends up with for each fault (the answers file's `expected_outcome`)."""

SERVES_IMAGE = frozenset({Fault.OK, Fault.HTTP_429, Fault.NOAI, Fault.REDIRECT, Fault.TINY, Fault.BOMB})
"""Faults whose URL eventually yields image bytes (the answers record their width and height)."""

REDIRECT_HOPS = 3
LOOP_LENGTH = 12
FORBIDDEN_TARGETS = ("http://169.254.169.254/latest/meta-data/", "http://10.11.12.13/internal/admin.jpg")
"""Where `redirect_forbidden` points: cloud metadata (link-local) and a private address. Only ever a header."""

BOMB_SIDE = 20000
"""The bomb's claimed side: 20000² = 4·10^8 pixels, over twice PIL's default MAX_IMAGE_PIXELS (89,478,485), so
`Image.open` raises DecompressionBombError; the file itself is about 50 KB."""

HTML_PAGE = (
    b"<!doctype html><html><head><title>Image not available</title></head>"
    b"<body><h1>Sorry!</h1><p>This image has moved. <a href='/'>Back to the gallery</a>.</p></body></html>"
)


@lru_cache(maxsize=1)
def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit greyscale PNG of side × side zeros, compressed row by row (never held uncompressed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale, no interlace
    comp = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0 + packed bits
    parts = [comp.compress(row) for _ in range(side)]
    idat = b"".join(parts) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
