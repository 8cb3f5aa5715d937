"""robots.txt (RFC 9309) for the safe fetcher: one file per origin, fetched through the same guarded `Fetcher` (SSRF
checks, deadline, size cap, redirects re-checked), then every image URL checked against it before a request.

How a fetch of `ORIGIN/robots.txt` becomes a decision (RFC 9309 §2.3.1):
- 2xx: the rules (the first 500 KiB, UTF-8; §2.5), matched by protego (Scrapy's RFC 9309 parser — the rules'
  longest-match and `$`/`*` semantics are subtle; a well-kept parser beats a hand-written one);
- 4xx ("unavailable", 404 included), and more than five redirects: everything allowed;
- 5xx, 429, timeout, connection/DNS/TLS errors ("unreachable"): the whole origin disallowed for this run
  (§2.3.1.4);
- an address, port or scheme the fetcher's guard refuses: no verdict — the image URL is refused for that same,
  more telling reason (`forbidden_address`, ...).
Rules apply to every product token in `tokens` (clipforge's and img2dataset's by default, as for X-Robots-Tag): a
URL any of them may not fetch is refused, and the longest `Crawl-delay` among them is the origin's delay.

Pure apart from the injected `fetch_robots` callable (the pipeline passes the guarded fetcher); thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

ROBOTS_PARSE_BYTES = 500 * 1024
"""RFC 9309 §2.5: at least the first 500 KiB are parsed; the rest is ignored."""
ROBOTS_MAX_BYTES = 4 * 1024 * 1024
"""A larger robots.txt is refused by the fetcher (too_large): the origin is treated as unreachable."""


class RobotsState(StrEnum):
    """What an origin's robots.txt fetch decided."""

    RULES = "rules"  # 2xx: the file's rules apply
    ALLOW_ALL = "allow_all"  # 4xx or too many redirects: no restriction
    DISALLOW_ALL = "disallow_all"  # 5xx, 429, a network failure: nothing may be fetched
    GUARDED = "guarded"  # the fetcher's own guard refuses the origin (address, port, scheme): its reason applies


# FetchStatus values of the fetcher's deterministic guards: the image URL on that origin is refused for the same
# reason, which says more than "robots.txt unreachable".
GUARD_REFUSALS = frozenset({"forbidden_address", "forbidden_port", "bad_url", "bad_scheme"})


# FetchStatus values (strings, so this module needs no fetcher import) that mean "unavailable": everything allowed.
UNAVAILABLE = frozenset({"http_error", "too_many_redirects"})


@dataclass(frozen=True)
class RobotsFile:
    """One origin's robots.txt outcome: its state, the rules' text (RULES only) and what happened (for details)."""

    origin: str
    state: RobotsState
    body: str = ""
    detail: str = ""

    @classmethod
    def from_fetch(cls, origin: str, status: str, http_status: int, body: bytes | None, detail: str) -> RobotsFile:
        """The RFC 9309 decision for a fetch that ended with `status` (a `FetchStatus` value)."""
        if status == "ok":
            text = (body or b"")[:ROBOTS_PARSE_BYTES].decode("utf-8", errors="replace")
            return cls(origin, RobotsState.RULES, text, f"{http_status}")
        if status in GUARD_REFUSALS:
            return cls(origin, RobotsState.GUARDED, "", f"{status} {detail}".strip())
        if status in UNAVAILABLE and (status != "http_error" or 400 <= http_status < 500):
            return cls(origin, RobotsState.ALLOW_ALL, "", f"{status} {detail}".strip())
        return cls(origin, RobotsState.DISALLOW_ALL, "", f"{status} {detail}".strip())


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of `url` (lower-cased; default ports dropped), or None when it has no host."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not host or scheme not in ("http", "https"):
        return None
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host.lower()}" + (f":{port}" if port and port != default else "")


def robots_url(origin: str) -> str:
    return f"{origin}/robots.txt"


class RobotsPolicy:
    """robots.txt decisions for URLs. Origins in `known` are used as given (the build fetches them once per run,
    before the downloads); any other origin (a redirect's target) is fetched on first use with `fetch_robots`
    and kept. `check(url)` is None when the URL may be fetched, else why not; `crawl_delay(url)` is its origin's
    delay in seconds (0 when none)."""

    def __init__(
        self,
        tokens: Iterable[str],
        known: Iterable[RobotsFile] = (),
        fetch_robots: Callable[[str], RobotsFile] | None = None,
    ) -> None:
        self.tokens = [t for t in tokens if t] or ["*"]
        self._files: dict[str, RobotsFile] = {f.origin: f for f in known}
        self._parsed: dict[str, object] = {}
        self._fetch = fetch_robots
        self._lock = threading.Lock()
        self._origin_locks: dict[str, threading.Lock] = {}

    def file(self, origin: str) -> RobotsFile:
        found = self._files.get(origin)
        if found is not None:
            return found
        with self._lock:
            lock = self._origin_locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin, however many threads ask at once
            found = self._files.get(origin)
            if found is None:
                if self._fetch is None:
                    found = RobotsFile(origin, RobotsState.ALLOW_ALL, "", "not fetched")
                else:
                    found = self._fetch(origin)
                self._files[origin] = found
        return found

    def _rules(self, f: RobotsFile):
        parsed = self._parsed.get(f.origin)
        if parsed is None:
            from protego import Protego

            parsed = self._parsed[f.origin] = Protego.parse(f.body)
        return parsed

    def check(self, url: str) -> str | None:
        origin = origin_of(url)
        if origin is None:
            return None  # not http(s): the fetcher refuses it for its own reason
        f = self.file(origin)
        if f.state in (RobotsState.ALLOW_ALL, RobotsState.GUARDED):
            return None
        if f.state == RobotsState.DISALLOW_ALL:
            return f"{robots_url(origin)} unreachable ({f.detail}): the origin is disallowed (RFC 9309 §2.3.1.4)"
        rules = self._rules(f)
        refused = [t for t in self.tokens if not rules.can_fetch(url, t)]
        if refused:
            return f"{robots_url(origin)} disallows {urlsplit(url).path or '/'} for {refused[0]}"
        return None

    def crawl_delay(self, url: str) -> float:
        origin = origin_of(url)
        if origin is None:
            return 0.0
        f = self.file(origin)
        if f.state != RobotsState.RULES:
            return 0.0
        rules = self._rules(f)
        delays = [rules.crawl_delay(t) for t in self.tokens]
        return max([float(d) for d in delays if d] or [0.0])


def crawl_delay_hosts(files: Iterable[RobotsFile], tokens: Iterable[str]) -> set[str]:
    """Hostnames with a Crawl-delay (for any of `tokens`) in one of their origins' robots.txt: the download
    partitioner keeps each in one part, so its delay holds across the cluster."""
    files = list(files)
    policy = RobotsPolicy(tokens, files)
    out = set()
    for f in files:
        if f.state == RobotsState.RULES and policy.crawl_delay(robots_url(f.origin)) > 0:
            out.add((urlsplit(f.origin).hostname or "").lower())
    return out
