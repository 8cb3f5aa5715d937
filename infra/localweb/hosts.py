"""Virtual hosts of the synthetic web: which host serves each candidate URL, each host's robots.txt variant, and
what a polite downloader must end up with for a row because of it; pure numpy and strings, no HTTP.

With `virtual_hosts: N` the candidates live on `site-000.web.test` … `site-{N-1}.web.test` (one loopback server
tells them apart by the Host header; clients map the names to 127.0.0.1, e.g. `download.fetch.resolve:
{"*.web.test": "127.0.0.1"}`). Host sizes are skewed: row r (by the row whose URL it uses) is on host
floor(N · u^host_skew), u = uniform(seed, r), so site-000 is the largest. The robots.txt variants go to the
*last* (smallest) hosts, one each in `ROBOTS_VARIANTS` order from the end; every other host serves `plain`.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

import numpy as np

from infra.localweb.rand import uniform

HOST_SUFFIX = "web.test"
"""Virtual hosts are `site-NNN.web.test`: `.test` is reserved (RFC 2606), so no real name is ever shadowed."""
_SALT_HOST = 501


class Robots(StrEnum):
    """A virtual host's robots.txt. `expected` in `robots_expected` says which rows each variant refuses."""

    PLAIN = "plain"  # 200: "User-agent: *  Disallow: /private/" — nothing we fetch is refused
    CRAWL_DELAY = "crawl_delay"  # 200 with Crawl-delay: crawl_delay_s — everything allowed, but spaced out
    HTTP_404 = "http_404"  # 404: unavailable, everything allowed (RFC 9309 §2.3.1.3)
    ALLOW_OVERRIDE = "allow_override"  # Disallow: /img/ then Allow: /img/ok/ — only the `ok` URLs allowed
    DISALLOW = "disallow"  # "User-agent: clipforge  Disallow: /img/" (others may crawl): every image refused to us
    HTTP_500 = "http_500"  # 500: unreachable, the whole host disallowed (RFC 9309 §2.3.1.4)
    REDIRECT = "redirect"  # 301 to /robots/moved.txt, which disallows /img/: every image refused
    SLOW = "slow"  # trickles like the `slow` fault: the robots fetch times out, the host is disallowed
    OVERSIZED = "oversized"  # 200 with a body over the fetcher's 4 MiB robots cap: too_large, host disallowed
    CRAWL_DELAY_LONG = "crawl_delay_long"  # Crawl-delay: 3600, over max_crawl_delay_s: the host is not crawled


ROBOTS_VARIANTS = (
    Robots.CRAWL_DELAY,
    Robots.HTTP_404,
    Robots.ALLOW_OVERRIDE,
    Robots.DISALLOW,
    Robots.HTTP_500,
    Robots.REDIRECT,
    Robots.SLOW,
    Robots.OVERSIZED,
    Robots.CRAWL_DELAY_LONG,
)
"""The variants handed out from the last host backwards (the last host gets crawl_delay, so a demo's crawl-delay
host is its smallest one)."""

REFUSES_ALL = frozenset(
    {Robots.DISALLOW, Robots.HTTP_500, Robots.REDIRECT, Robots.SLOW, Robots.OVERSIZED, Robots.CRAWL_DELAY_LONG}
)
SKIPPED_ROBOTS = "skipped_robots"
"""`expected_outcome` of a row its host's robots.txt refuses (a downloader's `robots_disallowed`)."""
OVERSIZED_BYTES = 4 * 1024 * 1024 + 64 * 1024
"""Over `curation.robots.ROBOTS_MAX_BYTES` (4 MiB): the fetcher refuses it on its Content-Length."""
LONG_DELAY_S = 3600


def host_names(n: int) -> list[str]:
    """`site-000.web.test` … (3 digits, more when n > 1000)."""
    width = max(3, len(str(max(0, n - 1))))
    return [f"site-{k:0{width}d}.{HOST_SUFFIX}" for k in range(n)]


def host_of_rows(seed: int, url_rows: np.ndarray, n_hosts: int, skew: float) -> np.ndarray:
    """int64 host index per row, from the row whose URL it uses (a repeated URL stays on its host)."""
    u = uniform(seed, url_rows, _SALT_HOST)
    return np.minimum(np.floor(n_hosts * u**skew), n_hosts - 1).astype(np.int64)


def robots_of_hosts(n_hosts: int) -> list[Robots]:
    """The robots.txt variant of each host: `ROBOTS_VARIANTS` from the last host backwards, `plain` elsewhere (with
    fewer hosts than variants + 1, the first variants only: site-000 always stays plain)."""
    out = [Robots.PLAIN] * n_hosts
    for k, variant in enumerate(ROBOTS_VARIANTS[: max(0, n_hosts - 1)]):
        out[n_hosts - 1 - k] = variant
    return out


def robots_expected(variants: np.ndarray, faults: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Each row's `expected_outcome` with its host's robots.txt applied (object arrays of strings): `skipped_robots`
    where the variant refuses the URL (for the default user-agent tokens), else `expected` unchanged."""
    refused = np.isin(variants, [str(v) for v in REFUSES_ALL])
    refused |= (variants == Robots.ALLOW_OVERRIDE) & (faults != "ok")
    return np.where(refused, SKIPPED_ROBOTS, expected)


def robots_body(variant: Robots, crawl_delay_s: float) -> bytes:
    """The robots.txt a 200 variant serves (the redirect variant's target is `MOVED_BODY`)."""
    if variant is Robots.CRAWL_DELAY:
        return f"User-agent: *\nCrawl-delay: {crawl_delay_s:g}\nDisallow: /private/\n".encode()
    if variant is Robots.CRAWL_DELAY_LONG:
        return f"User-agent: *\nCrawl-delay: {LONG_DELAY_S}\nDisallow: /private/\n".encode()
    if variant is Robots.ALLOW_OVERRIDE:
        return b"User-agent: *\nDisallow: /img/\nAllow: /img/ok/\n"
    if variant is Robots.DISALLOW:
        return b"User-agent: clipforge\nDisallow: /img/\n\nUser-agent: *\nDisallow: /private/\n"
    if variant is Robots.OVERSIZED:
        return oversized_body()
    return b"User-agent: *\nDisallow: /private/\n"


MOVED_PATH = "/robots/moved.txt"
MOVED_BODY = b"User-agent: *\nDisallow: /img/\n"


@lru_cache(maxsize=1)
def oversized_body() -> bytes:
    line = b"# " + b"x" * 76 + b"\n"
    return b"User-agent: *\nDisallow: /private/\n" + line * (OVERSIZED_BYTES // len(line) + 1)
