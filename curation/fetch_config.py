"""Public types of the safe fetcher: its config, outcome statuses and per-URL result; must not do any I/O."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator

from curation.netrange import parse_networks
from curation.strict import StrictModel


class FetchStatus(StrEnum):
    """Outcome of one download (stored as `reject_reason` when not ok; `detail` carries the specifics)."""

    ok = "ok"
    bad_url = "bad_url"  # unparseable, too long, credentials in the URL, no host
    bad_scheme = "bad_scheme"  # anything but http/https (file:, ftp:, data:, gopher: …)
    forbidden_address = "forbidden_address"  # a resolved address is in a refused range (detail: which)
    forbidden_port = "forbidden_port"
    dns_error = "dns_error"
    connection_error = "connection_error"  # refused, reset, unreachable (retried)
    tls_error = "tls_error"  # handshake or certificate failure (not retried)
    protocol_error = "protocol_error"  # not HTTP, malformed status line or headers
    timeout = "timeout"  # the total deadline (or connect timeout) expired
    http_error = "http_error"  # a non-retryable HTTP status; detail is the code (e.g. "404")
    http_5xx = "http_5xx"  # server error after retries; detail is the code
    rate_limited = "rate_limited"  # 429 after retries, or Retry-After beyond the cap
    too_many_redirects = "too_many_redirects"  # more than max_redirects hops, or a loop
    too_large = "too_large"  # Content-Length or streamed body beyond max_bytes
    truncated = "truncated"  # the body ended before its declared length
    bad_content_type = "bad_content_type"  # text/html, video/*, a content-encoding, …
    opt_out = "opt_out"  # X-Robots-Tag forbids AI use / indexing for us
    opt_out_registry = "opt_out_registry"  # the do-not-train registry lists the URL (detail: the entry); no request
    robots_disallowed = "robots_disallowed"  # robots.txt forbids it, or its origin's robots.txt is unreachable
    unexpected_error = "unexpected_error"  # a bug: reported as a value so a batch never dies


RETRYABLE = frozenset({FetchStatus.connection_error, FetchStatus.http_5xx, FetchStatus.rate_limited})


class FetchConfig(StrictModel):
    """How images are downloaded: safety limits, politeness and retries."""

    user_agent: str = "Mozilla/5.0 (compatible; clipforge/0.1; +https://github.com/clipforge/clipforge)"
    """User-Agent header. Keep a product token so sites can address us in X-Robots-Tag and robots.txt."""
    robots_ua_tokens: list[str] = ["clipforge", "img2dataset"]
    """User-agent tokens whose scoped X-Robots-Tag values ("img2dataset: noai") apply to us."""
    honor_robots_tag: bool = True
    """Refuse images whose X-Robots-Tag carries one of `disallowed_directives` (status opt_out)."""
    disallowed_directives: list[str] = ["noai", "noimageai", "noindex", "noimageindex"]
    """img2dataset's default set; "none" counts as noindex."""
    robots_txt: bool = True
    """Honour robots.txt (RFC 9309) for the `robots_ua_tokens`: fetched once per origin through this fetcher's
    guards; a disallowed URL is robots_disallowed; 4xx = all allowed, 5xx/unreachable = origin disallowed."""
    max_crawl_delay_s: float = Field(5.0, ge=0)
    """Honour a robots.txt Crawl-delay up to this many seconds between downloads from one origin; an origin asking
    for more is not crawled (robots_disallowed) rather than crawled faster than it asked."""
    deadline_s: float = Field(20.0, gt=0)
    """Total wall-clock budget per URL: DNS, connect, TLS, headers, body, every redirect, retry and backoff."""
    connect_timeout_s: float = Field(5.0, gt=0)
    """Cap on one TCP connect or TLS handshake (also bounded by the time left)."""
    max_bytes: int = Field(20 * 1024 * 1024, gt=0)
    """Largest body accepted; a bigger Content-Length is refused before reading."""
    max_redirects: int = Field(5, ge=0)
    retries: int = Field(2, ge=0)
    """Extra attempts after a 429, 5xx or connection error (others are final)."""
    backoff_base_s: float = Field(0.5, ge=0)
    """Wait before retry n is base · 2^(n-1), capped at backoff_max_s, times a per-URL factor in [0.5, 1]."""
    backoff_max_s: float = Field(8.0, ge=0)
    max_retry_after_s: float = Field(30.0, ge=0)
    """A Retry-After longer than this ends the download as rate_limited instead of waiting."""
    per_host_concurrency: int = Field(8, ge=1)
    """Downloads in flight per hostname within one Fetcher (politeness, 429 avoidance)."""
    allowed_schemes: list[Literal["http", "https"]] = ["http", "https"]
    allowed_ports: list[int] | None = None
    """If set, only these ports (e.g. [80, 443]); None allows any port."""
    allow_cidrs: list[str] = []
    """The only way to reach a refused range, e.g. ["127.0.0.0/8"] for the demo and tests. Empty in production."""
    deny_cidrs: list[str] = []
    """Extra ranges to refuse (e.g. your cluster's public addresses); beats allow_cidrs."""
    resolve: dict[str, str] = {}
    """Fixed answers instead of DNS, like curl's --resolve or a hosts file: hostname (or `*.suffix` for every name
    under it) → IP address, e.g. {"*.web.test": "127.0.0.1"} for the synthetic web's virtual hosts. The address
    still has to pass the allow/deny range checks (a loopback answer needs allow_cidrs: [127.0.0.0/8])."""
    blocked_hostnames: list[str] = ["metadata.google.internal", "metadata.goog", "metadata"]
    """Names refused before resolution (defence in depth; their addresses are refused anyway)."""
    allowed_content_types: list[str] = ["image/*", "application/octet-stream", "binary/octet-stream"]
    """Content-Type globs accepted; the bytes are verified by decoding later anyway."""
    denied_content_types: list[str] = ["image/svg+xml"]
    allow_missing_content_type: bool = True
    ca_file: str | None = None
    """PEM bundle to trust instead of the system store (private CAs, tests)."""
    verify_tls: bool = True
    """Verify certificates and hostnames. Turning this off allows man-in-the-middle tampering."""

    @field_validator("resolve")
    @classmethod
    def _resolve_entries(cls, v: dict[str, str]) -> dict[str, str]:
        for name, address in v.items():
            check_resolve_entry(name, address)
        return v

    @field_validator("allow_cidrs", "deny_cidrs")
    @classmethod
    def _cidrs_parse(cls, v: list[str]) -> list[str]:
        parse_networks(v)
        return v


_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_resolve_entry(name: str, address: str) -> None:
    """A `FetchConfig.resolve` entry is a hostname or `*.suffix` (LDH labels) mapped to one IP address literal;
    anything else is a ValueError naming the entry."""
    labels = name.lower()[2:].split(".") if name.startswith("*.") else name.lower().rstrip(".").split(".")
    if not name or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"resolve entry {name!r}: not a hostname or '*.suffix'")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"resolve entry {name!r}: {address!r} is not an IP address") from None


@dataclass(frozen=True)
class FetchResult:
    """One URL's outcome. `body` is set only when status is ok."""

    url: str
    status: FetchStatus
    detail: str = ""
    final_url: str = ""  # last URL requested (after redirects)
    http_status: int = 0  # last HTTP status code seen, 0 if none
    content_type: str = ""
    body: bytes | None = None
    attempts: int = 0  # requests chains started (1 + retries used)
    redirects: int = 0
    elapsed_s: float = 0.0
    address: str = ""  # IP address connected to last


def fetch_columns(results: Sequence[FetchResult]) -> dict[str, list]:
    """Arrow-friendly columns of a batch of results (`pa.table(fetch_columns(r))`)."""
    return {
        "url": [r.url for r in results],
        "final_url": [r.final_url for r in results],
        "fetch_status": [str(r.status) for r in results],
        "fetch_detail": [r.detail for r in results],
        "http_status": [r.http_status for r in results],
        "content_type": [r.content_type for r in results],
        "body": [r.body for r in results],
        "attempts": [r.attempts for r in results],
        "redirects": [r.redirects for r in results],
        "elapsed_s": [r.elapsed_s for r in results],
    }
