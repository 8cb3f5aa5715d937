"""robots.txt (RFC 9309) through the guarded fetcher, against loopback servers (one origin each): rules with an
allow override and a Crawl-delay, 404 (all allowed), 500 and a timeout (origin disallowed), a redirected
robots.txt; fetched once per origin however many threads ask; Crawl-delay spacing measured at the server."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from curation.fetch import Fetcher, FetchStatus, fetch_robots, robots_fetch_config
from curation.fetch_config import FetchConfig
from curation.robots import RobotsPolicy, RobotsState

pytestmark = pytest.mark.timeout(60)

_buf = io.BytesIO()
Image.new("RGB", (16, 16), (1, 2, 3)).save(_buf, "PNG")
PNG = _buf.getvalue()

RULES = b"""User-agent: *
Disallow: /private
Allow: /private/ok
Crawl-delay: 0.3

User-agent: img2dataset
Disallow: /no-i2d
"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.log.append((self.path, time.monotonic()))
        if self.path == "/robots.txt":
            mode = srv.mode
            if mode == "rules":
                return self._send(200, RULES, "text/plain")
            if mode == "404":
                return self._send(404, b"no", "text/plain")
            if mode == "500":
                return self._send(500, b"oops", "text/plain")
            if mode == "redirect":
                self.send_response(301)
                self.send_header("Location", "/real-robots.txt")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            if mode == "slow":
                time.sleep(2.0)
                return self._send(200, RULES, "text/plain")
        if self.path.startswith("/hop/"):  # /hop/N/... redirects to /hop/N-1/..., /hop/0/... is the image
            n = int(self.path.split("/")[2])
            if n > 0:
                self.send_response(302)
                self.send_header("Location", f"/hop/{n - 1}/img.png")
                self.send_header("Content-Length", "0")
                return self.end_headers()
        if self.path == "/real-robots.txt":
            return self._send(200, b"User-agent: *\nDisallow: /\n", "text/plain")
        return self._send(200, PNG, "image/png")


@pytest.fixture(scope="module")
def servers():
    out = {}
    for mode in ("rules", "404", "500", "redirect", "slow"):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.daemon_threads, srv.mode, srv.lock, srv.log = True, mode, threading.Lock(), []
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        out[mode] = srv
    yield out
    for srv in out.values():
        srv.shutdown()
        srv.server_close()


def _no_dns(host, port):
    raise socket.gaierror(f"test: no DNS for {host!r}")


def _loopback_only(address, timeout):
    assert address[0] == "127.0.0.1", address
    return socket.create_connection(address, timeout=timeout)


CFG = FetchConfig(allow_cidrs=["127.0.0.0/8"], deadline_s=1.0, retries=0, max_crawl_delay_s=1.0)


def fetcher(cfg: FetchConfig = CFG) -> Fetcher:
    robots_fetcher = Fetcher(robots_fetch_config(cfg), resolver=_no_dns, connect=_loopback_only)
    policy = RobotsPolicy(cfg.robots_ua_tokens, fetch_robots=lambda o: fetch_robots(o, robots_fetcher))
    return Fetcher(cfg, resolver=_no_dns, connect=_loopback_only, robots=policy)


def url(srv, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def robots_hits(srv) -> int:
    return sum(p == "/robots.txt" for p, _ in srv.log)


def test_rules_allow_override_and_every_token(servers):
    srv, f = servers["rules"], fetcher(CFG.model_copy(update={"max_crawl_delay_s": 1.0}))
    results = {p: f.fetch(url(srv, p)) for p in ("/a.png", "/private/x.png", "/private/ok/y.png", "/no-i2d/z.png")}
    assert results["/a.png"].status == FetchStatus.ok
    assert results["/private/ok/y.png"].status == FetchStatus.ok  # Allow beats the shorter Disallow
    assert results["/private/x.png"].status == FetchStatus.robots_disallowed
    assert "disallows /private/x.png" in results["/private/x.png"].detail
    # img2dataset's group forbids it: clipforge honours both tokens, as for X-Robots-Tag
    assert results["/no-i2d/z.png"].status == FetchStatus.robots_disallowed
    assert "for img2dataset" in results["/no-i2d/z.png"].detail
    assert not any(p.startswith(("/private/x", "/no-i2d")) for p, _ in srv.log)  # never requested
    assert robots_hits(srv) == 1


@pytest.mark.parametrize(
    ("mode", "state", "status"),
    [
        ("404", RobotsState.ALLOW_ALL, FetchStatus.ok),
        ("500", RobotsState.DISALLOW_ALL, FetchStatus.robots_disallowed),
        ("slow", RobotsState.DISALLOW_ALL, FetchStatus.robots_disallowed),
        ("redirect", RobotsState.RULES, FetchStatus.robots_disallowed),  # the target says Disallow: /
    ],
)
def test_robots_outcomes(servers, mode, state, status):
    srv = servers[mode]
    origin = f"http://127.0.0.1:{srv.server_address[1]}"
    robots_fetcher = Fetcher(robots_fetch_config(CFG), resolver=_no_dns, connect=_loopback_only)
    assert fetch_robots(origin, robots_fetcher).state == state
    before = len(srv.log)
    t0 = time.monotonic()
    r = fetcher().fetch(url(srv, "/img.png"))
    assert r.status == status, r
    assert time.monotonic() - t0 < 2.5  # a robots.txt that times out costs one fetch deadline, not more
    if status == FetchStatus.robots_disallowed:
        assert not any(p == "/img.png" for p, _ in srv.log[before:])


def test_fetched_once_per_origin_and_crawl_delay_spacing(servers):
    srv, f = servers["rules"], fetcher()
    n0 = robots_hits(srv)
    start = len(srv.log)
    results = f.fetch_many([url(srv, f"/img{i}.png") for i in range(5)], threads=5)
    assert [r.status for r in results] == [FetchStatus.ok] * 5
    assert robots_hits(srv) - n0 == 1  # five threads asked at once; one fetch
    starts = sorted(t for p, t in srv.log[start:] if p.startswith("/img"))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 5 and min(gaps) >= 0.3 - 0.01, gaps  # Crawl-delay: 0.3


def test_a_crawl_delay_above_the_cap_refuses_the_origin(servers):
    f = fetcher(CFG.model_copy(update={"max_crawl_delay_s": 0.1}))
    r = f.fetch(url(servers["rules"], "/a.png"))
    assert r.status == FetchStatus.robots_disallowed and "Crawl-delay 0.3 s > " in r.detail


def test_crawl_delay_spaces_redirect_hops_too(servers):
    """Every request to an origin with a Crawl-delay is spaced, the hops of one download's redirect chain included."""
    srv, f = servers["rules"], fetcher(CFG.model_copy(update={"deadline_s": 3.0}))
    f.fetch(url(srv, "/warm.png"))  # robots.txt fetched
    start = len(srv.log)
    assert f.fetch(url(srv, "/hop/3/img.png")).status == FetchStatus.ok
    starts = [t for p, t in srv.log[start:] if p.startswith("/hop/")]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 4 and min(gaps) >= 0.3 - 0.01, gaps
    short = fetcher(CFG.model_copy(update={"deadline_s": 0.5}))
    short.fetch(url(srv, "/warm.png"))
    r = short.fetch(url(srv, "/hop/3/img.png"))
    assert r.status == FetchStatus.timeout and "Crawl-delay" in r.detail
