"""Safe download of user-supplied image URLs (a URL list is an SSRF weapon); must not import Ray or raise per URL.

Per URL: http/https only; the hostname is resolved once and every address checked (`netrange`: loopback,
private, link-local, CGNAT, multicast, reserved, documentation, benchmarking, IPv4-mapped/NAT64/6to4 forms of
them…; only `allow_cidrs` opens a refused range); the connection goes to the checked address (`fetch_http`);
redirects are followed by hand, each hop re-validated, at most `max_redirects`; one wall-clock deadline covers
DNS-to-last-byte of every attempt, redirect and retry wait; the body is capped (Content-Length early, then
streamed); the Content-Type must look like an image; `X-Robots-Tag` opt-outs are honoured; 429/5xx/connection
errors are retried with backoff (Retry-After respected up to a cap); a `Fetcher` caps concurrent downloads per
host; a URL (or redirect hop) that an opt-out registry lists (`curation.optout`) is refused before DNS, and with
a `RobotsPolicy` (`curation.robots`) robots.txt is checked on every hop and its Crawl-delay honoured. Every
outcome is a `FetchResult` with a `FetchStatus`, never an exception.

Known limits: getaddrinfo cannot be interrupted, so DNS time is bounded by the system resolver's own timeouts
(the deadline is checked right after); one connection per download (no keep-alive), as img2dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import math
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from urllib.parse import urljoin, urlsplit

from curation.fetch_config import RETRYABLE, FetchConfig, FetchResult, FetchStatus, fetch_columns
from curation.fetch_guard import Refusal, Target, header_refusal, validate_url
from curation.fetch_http import (
    Connect,
    Deadline,
    PinnedHTTPConnection,
    PinnedHTTPSConnection,
    Resolver,
    parse_content_length,
    parse_retry_after,
    pinned_resolver,
    system_connect,
    system_resolver,
)
from curation.netrange import parse_networks
from curation.optout import OptOutRegistry
from curation.robots import ROBOTS_MAX_BYTES, RobotsFile, RobotsPolicy, origin_of, robots_url

__all__ = ["FetchConfig", "FetchResult", "FetchStatus", "Fetcher", "fetch_columns", "fetch_many", "fetch_url"]

READ_CHUNK = 64 * 1024
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
OK_CODES = frozenset({200, 203})


@dataclass(frozen=True)
class _Outcome:
    status: FetchStatus
    detail: str = ""
    final_url: str = ""
    http_status: int = 0
    content_type: str = ""
    body: bytes | None = None
    redirects: int = 0
    address: str = ""
    location: str | None = None  # set on a redirect response
    retry_after: float | None = None


def _classify(exc: BaseException) -> tuple[FetchStatus, str]:
    """Map an exception from the wire layer to a status; the order matters (ssl.SSLError is an OSError)."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):
        return FetchStatus.timeout, detail
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return FetchStatus.tls_error, detail
    if isinstance(exc, http.client.IncompleteRead):
        return FetchStatus.truncated, f"IncompleteRead: got {len(exc.partial)} bytes"
    if isinstance(exc, http.client.InvalidURL | UnicodeError):
        return FetchStatus.bad_url, detail
    if isinstance(exc, ConnectionError | http.client.RemoteDisconnected):
        return FetchStatus.connection_error, detail
    if isinstance(exc, http.client.HTTPException):
        return FetchStatus.protocol_error, detail
    if isinstance(exc, OSError):
        return FetchStatus.connection_error, detail
    return FetchStatus.unexpected_error, detail


def _unit_hash(*parts: object) -> float:
    """Deterministic U[0, 1) from the parts: backoff jitter without random-module state."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Fetcher:
    """Downloads URLs under one `FetchConfig`; thread-safe, meant to be shared by a thread pool.

    Holds the per-host semaphores (so the per-host cap spans every thread using this object; `host_limits` lowers it
    for given hosts — the build's share for a host spread over several download parts), the parsed CIDR
    lists and one TLS context. A download holds its original host's slot for its whole life, retries included.
    `resolver` and `connect` are injectable so tests never touch real DNS or non-loopback addresses.
    """

    def __init__(
        self,
        cfg: FetchConfig,
        *,
        resolver: Resolver | None = None,
        connect: Connect | None = None,
        sleep: Callable[[float], None] = time.sleep,
        opt_out: OptOutRegistry | None = None,
        robots: RobotsPolicy | None = None,
        host_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.cfg = cfg
        self._host_limits = dict(host_limits or {})  # host -> its cap here, below per_host_concurrency (split hosts)
        self._opt_out = opt_out if opt_out is not None and len(opt_out) else None
        self._robots = robots
        self._turns: dict[str, threading.Lock] = {}  # origin -> its Crawl-delay turn
        self._last_end: dict[str, float] = {}  # origin -> when its last download ended
        self._resolver = resolver or system_resolver
        if cfg.resolve:  # the configured names first (curl's --resolve); their addresses are checked as any other
            self._resolver = pinned_resolver(cfg.resolve, self._resolver)
        self._connect = connect or system_connect
        self._sleep = sleep
        self._allow, self._deny = parse_networks(cfg.allow_cidrs), parse_networks(cfg.deny_cidrs)
        self._tls: ssl.SSLContext | None = None  # built on first https use: loading the CA store costs ~50 ms
        self._headers = {
            "User-Agent": cfg.user_agent,
            "Accept": "image/avif,image/webp,image/*;q=0.9,application/octet-stream;q=0.5",
            "Accept-Encoding": "identity",  # never decompress: a gzip bomb cannot pass for an image
            "Connection": "close",
        }
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _host_slot(self, url: str) -> contextlib.AbstractContextManager:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            host = ""
        if not host:
            return contextlib.nullcontext()
        with self._lock:
            cap = self._host_limits.get(host, self.cfg.per_host_concurrency)
            sem = self._hosts.setdefault(host, threading.BoundedSemaphore(cap))
        return sem

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                ctx = ssl.create_default_context(cafile=self.cfg.ca_file)
                if not self.cfg.verify_tls:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                self._tls = ctx
            return self._tls

    def fetch(self, url: str) -> FetchResult:
        """Download one URL; never raises. The deadline starts once this host's concurrency slot is held."""
        if not isinstance(url, str) or not url.strip():
            return FetchResult(url=url if isinstance(url, str) else "", status=FetchStatus.bad_url, detail="no URL")
        start = time.monotonic()
        attempts, out = 0, _Outcome(FetchStatus.unexpected_error)
        try:
            with self._host_slot(url):
                refused = self._listed(url, 0) or self._robots_refusal(url)
                if refused is not None:
                    out = refused
                else:
                    with self._crawl_turn(url):
                        deadline = Deadline(self.cfg.deadline_s)
                        out, attempts = self._with_retries(url, deadline)
        except Exception as e:  # never let one URL kill a batch
            out = _Outcome(FetchStatus.unexpected_error, f"{type(e).__name__}: {e}")
        return FetchResult(
            url=url,
            status=out.status,
            detail=out.detail,
            final_url=out.final_url or url,
            http_status=out.http_status,
            content_type=out.content_type,
            body=out.body if out.status == FetchStatus.ok else None,
            attempts=attempts,
            redirects=out.redirects,
            elapsed_s=time.monotonic() - start,
            address=out.address,
        )

    def _listed(self, url: str, hop: int) -> _Outcome | None:
        """The opt-out registry, before DNS, robots.txt and any connection, on the first URL and every redirect hop."""
        entry = self._opt_out.match(url) if self._opt_out is not None else None
        if entry is None:
            return None
        return _Outcome(FetchStatus.opt_out_registry, f"registry entry {entry}", final_url=url, redirects=hop)

    def _robots_refusal(self, url: str) -> _Outcome | None:
        """robots.txt before the first request: a disallowed URL, or an origin whose Crawl-delay is above
        `max_crawl_delay_s` (not crawled rather than crawled faster than it asked)."""
        if self._robots is None:
            return None
        why = self._robots.check(url)
        if why is None and self._robots.crawl_delay(url) > self.cfg.max_crawl_delay_s:
            delay = self._robots.crawl_delay(url)
            why = f"Crawl-delay {delay:g} s > download.fetch.max_crawl_delay_s {self.cfg.max_crawl_delay_s:g}"
        return None if why is None else _Outcome(FetchStatus.robots_disallowed, why, final_url=url)

    @contextlib.contextmanager
    def _crawl_turn(self, url: str):
        """Under a robots.txt Crawl-delay, one download at a time per origin, each starting at least the delay
        after the previous one *ended*: the gap holds at the server however the network delays a request."""
        delay = self._robots.crawl_delay(url) if self._robots is not None else 0.0
        if delay <= 0:
            yield
            return
        origin = origin_of(url) or ""
        with self._lock:
            turn = self._turns.setdefault(origin, threading.Lock())
        with turn:
            wait = self._last_end.get(origin, -math.inf) + delay - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            try:
                yield
            finally:
                self._last_end[origin] = time.monotonic()

    def _crawl_gap(self, url: str, previous_end: float | None, deadline: Deadline) -> _Outcome | None:
        """Within one download (redirect hops, retries), wait out `url`'s origin's Crawl-delay since the previous
        request ended; a timeout outcome when the deadline comes first. (The first request waits in `_crawl_turn`.)"""
        if previous_end is None or self._robots is None:
            return None
        wait = previous_end + self._robots.crawl_delay(url) - time.monotonic()
        if wait <= 0:
            return None
        if wait >= deadline.remaining():
            return _Outcome(FetchStatus.timeout, f"no time left to wait the Crawl-delay ({wait:.1f} s)")
        self._sleep(wait)
        return None

    def fetch_many(self, urls: Sequence[str], threads: int = 16) -> list[FetchResult]:
        """Download all URLs with a pool of `threads`; results in input order."""
        if not urls:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(urls)))) as pool:
            return list(pool.map(self.fetch, urls))

    def _with_retries(self, url: str, deadline: Deadline) -> tuple[_Outcome, int]:
        """Run the redirect chain; retry retryable failures while the deadline and retry budget allow."""
        attempt, last = 0, [None]  # last: when this download's previous request ended (Crawl-delay between them)
        while True:
            attempt += 1
            out = self._follow(url, deadline, last)
            if out.status not in RETRYABLE or attempt > self.cfg.retries:
                return out, attempt
            if out.retry_after is not None and out.retry_after > self.cfg.max_retry_after_s:
                note = f"; Retry-After {out.retry_after:.0f} s > max_retry_after_s {self.cfg.max_retry_after_s:g}"
                return replace(out, detail=out.detail + note), attempt
            backoff = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
            wait = max(backoff * (0.5 + 0.5 * _unit_hash(url, attempt)), out.retry_after or 0.0)
            if wait >= deadline.remaining():
                return replace(out, detail=out.detail + f"; no time left to wait {wait:.1f} s and retry"), attempt
            self._sleep(wait)

    def _follow(self, url: str, deadline: Deadline, last: list | None = None) -> _Outcome:
        """One request chain: validate, request, and follow redirects by hand, re-validating every hop. `last[0]` is
        when this download's previous request ended: a hop or retry to an origin with a Crawl-delay waits for it."""
        last = last if last is not None else [None]
        current, seen = url, {url}
        for hop in range(self.cfg.max_redirects + 1):
            listed = self._listed(current, hop)
            if listed is not None:
                return listed
            why = self._robots.check(current) if self._robots is not None else None
            if why is not None:  # robots.txt, on the first URL and every redirect hop, before any image request
                return _Outcome(FetchStatus.robots_disallowed, why, final_url=current, redirects=hop)
            target = validate_url(current, self.cfg, self._allow, self._deny, self._resolver)
            if isinstance(target, Refusal):
                return _Outcome(target.status, target.detail, final_url=current, redirects=hop, address=target.address)
            late = self._crawl_gap(current, last[0], deadline)
            if late is not None:
                return replace(late, final_url=current, redirects=hop)
            out = replace(self._exchange(target, deadline), final_url=current, redirects=hop)
            last[0] = time.monotonic()
            if out.location is None:
                return out
            nxt = urljoin(current, out.location)
            if nxt in seen:
                return replace(out, status=FetchStatus.too_many_redirects, detail=f"redirect loop back to {nxt}")
            seen.add(nxt)
            current = nxt
        return _Outcome(
            FetchStatus.too_many_redirects,
            f"more than max_redirects={self.cfg.max_redirects}",
            final_url=current,
            redirects=self.cfg.max_redirects + 1,
        )

    def _connection(self, target: Target, address: str, deadline: Deadline) -> PinnedHTTPConnection:
        common = dict(
            address=address, deadline=deadline, connect=self._connect, connect_timeout=self.cfg.connect_timeout_s
        )
        if target.scheme == "https":
            return PinnedHTTPSConnection(target.host, target.port, context=self._tls_context(), **common)
        return PinnedHTTPConnection(target.host, target.port, **common)

    def _exchange(self, target: Target, deadline: Deadline) -> _Outcome:
        """One HTTP request to the first address that accepts a connection; exceptions become outcomes."""
        failure = _Outcome(FetchStatus.connection_error, "no address to connect to")
        for address in target.addresses:
            conn = self._connection(target, address, deadline)
            try:
                try:
                    conn.connect()
                except Exception as e:
                    failure = _Outcome(*_classify(e), address=address)
                    if failure.status == FetchStatus.connection_error:
                        continue  # refused/unreachable: the next checked address may answer
                    return failure
                try:
                    return self._request(conn, target, address, deadline)
                except Exception as e:
                    return _Outcome(*_classify(e), address=address)
            finally:
                conn.abort()
        return failure

    def _request(self, conn: PinnedHTTPConnection, target: Target, address: str, deadline: Deadline) -> _Outcome:
        """Send GET, judge the status line and headers, then read the body if everything allows it."""
        conn.request("GET", target.path, headers=self._headers)
        resp = conn.getresponse()
        code, headers = resp.status, resp.headers
        base = _Outcome(
            FetchStatus.ok, http_status=code, address=address, content_type=headers.get("Content-Type", "")
        )
        if code in REDIRECT_CODES:
            location = headers.get("Location")
            if not location:
                return replace(base, status=FetchStatus.http_error, detail=f"{code} without Location")
            return replace(base, location=location.strip())
        if code == 429 or 500 <= code < 600:
            status = FetchStatus.rate_limited if code == 429 else FetchStatus.http_5xx
            return replace(
                base, status=status, detail=str(code), retry_after=parse_retry_after(headers.get("Retry-After"))
            )
        if code not in OK_CODES:
            return replace(base, status=FetchStatus.http_error, detail=str(code))
        refusal = header_refusal(headers, self.cfg)
        if refusal is not None:
            return replace(base, status=refusal.status, detail=refusal.detail)
        return self._read_body(resp, base)

    def _read_body(self, resp: http.client.HTTPResponse, base: _Outcome) -> _Outcome:
        """Stream the body with read1 (one bounded recv per call) under the byte cap; detect short bodies."""
        buf = bytearray()
        while chunk := resp.read1(READ_CHUNK):
            buf += chunk
            if len(buf) > self.cfg.max_bytes:
                return replace(base, status=FetchStatus.too_large, detail=f"body > max_bytes {self.cfg.max_bytes}")
        declared = parse_content_length(resp.headers.get("Content-Length"))
        if declared is not None and len(buf) < declared:
            return replace(base, status=FetchStatus.truncated, detail=f"got {len(buf)} of {declared} bytes")
        return replace(base, body=bytes(buf))


def fetch_url(
    url: str, cfg: FetchConfig, *, resolver: Resolver | None = None, connect: Connect | None = None
) -> FetchResult:
    """Download one URL with a fresh `Fetcher` (use a shared `Fetcher` when calling repeatedly); never raises."""
    return Fetcher(cfg, resolver=resolver, connect=connect).fetch(url)


def fetch_many(
    urls: Sequence[str],
    cfg: FetchConfig,
    threads: int = 16,
    *,
    resolver: Resolver | None = None,
    connect: Connect | None = None,
) -> list[FetchResult]:
    """Download a batch with a thread pool of `threads` and one `Fetcher` (so the per-host cap spans the batch).

    Results are in input order, one per URL, never an exception. Bodies are held in memory: size batches so that
    batch × typical image size fits (the per-body cap is `cfg.max_bytes`).
    """
    return Fetcher(cfg, resolver=resolver, connect=connect).fetch_many(urls, threads)


def robots_fetch_config(cfg: FetchConfig) -> FetchConfig:
    """The image fetch policy for robots.txt itself: the same guards (addresses, ports, deadline, redirects,
    retries), any content type, up to `ROBOTS_MAX_BYTES`, and no X-Robots-Tag or robots.txt check of its own."""
    return cfg.model_copy(
        update={
            "allowed_content_types": ["*/*"],
            "denied_content_types": [],
            "allow_missing_content_type": True,
            "max_bytes": ROBOTS_MAX_BYTES,
            "honor_robots_tag": False,
            "robots_txt": False,
        }
    )


def fetch_robots(origin: str, fetcher: Fetcher) -> RobotsFile:
    """`origin`'s robots.txt through `fetcher` (built with `robots_fetch_config`), as an RFC 9309 decision."""
    r = fetcher.fetch(robots_url(origin))
    return RobotsFile.from_fetch(origin, str(r.status), r.http_status, r.body, r.detail)
