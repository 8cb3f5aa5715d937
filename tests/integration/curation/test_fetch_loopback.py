"""Safe fetcher against its own loopback HTTP server: every fault the issue names, and the per-host cap.

The server is stdlib `http.server` on 127.0.0.1 (port 0) in a thread. The fetcher allowlists 127.0.0.0/8 only;
its `connect` hook refuses (and records) any non-loopback address, so no test can reach beyond this machine.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from curation.fetch import Fetcher, FetchStatus, fetch_many, fetch_url
from curation.fetch_config import FetchConfig
from curation.fetch_http import system_connect

pytestmark = pytest.mark.timeout(60)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


class _State:
    """Per-server counters: requests per path, in-flight requests and their peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: dict[str, list[float]] = {}
        self.in_flight = 0
        self.peak = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict | None = None, ctype: str = "image/png") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _count(self) -> int:
        st: _State = self.server.state
        with st.lock:
            st.hits.setdefault(self.path, []).append(time.monotonic())
            return len(st.hits[self.path])

    def do_GET(self) -> None:  # noqa: C901 - a routing table of faults
        n = self._count()
        p = self.path
        try:
            route = ROUTES.get(p.split("?")[0])
            if route is None and p.startswith("/chain/"):
                k = int(p.rsplit("/", 1)[1])
                return self._send(302, headers={"Location": f"/chain/{k + 1}"})
            if route is None:
                return self._send(404, b"nope", ctype="text/plain")
            route(self, n)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _image(h: _Handler, n: int) -> None:
    h._send(200, PNG)


def _flaky500(h: _Handler, n: int) -> None:
    h._send(500, b"oops", ctype="text/plain") if n <= 2 else h._send(200, PNG)


def _always500(h: _Handler, n: int) -> None:
    h._send(503, b"down", ctype="text/plain")


def _rate_limited(h: _Handler, n: int) -> None:
    h._send(429, b"slow down", {"Retry-After": "1"}, "text/plain") if n == 1 else h._send(200, PNG)


def _rate_limited_long(h: _Handler, n: int) -> None:
    h._send(429, b"", {"Retry-After": "3600"}, "text/plain")


def _slow_body(h: _Handler, n: int) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    for _ in range(200):  # 100 bytes every 0.1 s: each read is fast, the whole is not
        h.wfile.write(b"x" * 100)
        h.wfile.flush()
        time.sleep(0.1)


def _slow_headers(h: _Handler, n: int) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for _ in range(200):
        h.wfile.write(b"X-Drip: a\r\n")
        h.wfile.flush()
        time.sleep(0.1)


def _reset(h: _Handler, n: int) -> None:
    # SO_LINGER 0 makes close() send RST instead of FIN.
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()
    h.close_connection = True


def _truncated(h: _Handler, n: int) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    h.send_header("Content-Length", str(len(PNG) + 5000))
    h.end_headers()
    h.wfile.write(PNG)
    h.wfile.flush()
    h.close_connection = True


def _html(h: _Handler, n: int) -> None:
    h._send(200, b"<html><body>not an image</body></html>", ctype="text/html; charset=utf-8")


def _declared_big(h: _Handler, n: int) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/jpeg")
    h.send_header("Content-Length", str(50 * 1024 * 1024))
    h.end_headers()
    h.close_connection = True


def _streamed_big(h: _Handler, n: int) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "image/jpeg")
    h.send_header("Connection", "close")
    h.end_headers()
    for _ in range(40):  # 40 × 64 KiB = 2.5 MiB without a Content-Length
        h.wfile.write(b"\xff" * 65536)
    h.close_connection = True


def _noai(h: _Handler, n: int) -> None:
    h._send(200, PNG, {"X-Robots-Tag": "noai"})


def _scoped_ours(h: _Handler, n: int) -> None:
    h._send(200, PNG, {"X-Robots-Tag": "img2dataset: noimageai"})


def _scoped_other(h: _Handler, n: int) -> None:
    h._send(200, PNG, {"X-Robots-Tag": "otherbot: noai, noindex"})


def _redirect_to(location: str, code: int = 302):
    def route(h: _Handler, n: int) -> None:
        h._send(code, b"", {"Location": location}, "text/plain")

    return route


def _busy(h: _Handler, n: int) -> None:
    st: _State = h.server.state
    with st.lock:
        st.in_flight += 1
        st.peak = max(st.peak, st.in_flight)
    time.sleep(0.25)
    with st.lock:
        st.in_flight -= 1
    h._send(200, PNG)


ROUTES = {
    "/img.png": _image,
    "/flaky500": _flaky500,
    "/always503": _always500,
    "/429": _rate_limited,
    "/429long": _rate_limited_long,
    "/slow": _slow_body,
    "/slowheaders": _slow_headers,
    "/reset": _reset,
    "/truncated": _truncated,
    "/html": _html,
    "/declared-big": _declared_big,
    "/streamed-big": _streamed_big,
    "/noai": _noai,
    "/scoped-ours": _scoped_ours,
    "/scoped-other": _scoped_other,
    "/r3": _redirect_to("/r2", 301),
    "/r2": _redirect_to("r1", 307),  # relative reference
    "/r1": _redirect_to("/img.png", 308),
    "/loop": _redirect_to("/loop"),
    "/to-private": _redirect_to("http://10.0.0.1/x.png"),
    "/to-metadata": _redirect_to("http://169.254.169.254/latest/meta-data/"),
    "/to-mapped": _redirect_to("http://[::ffff:127.0.0.1]/img.png"),
    "/to-file": _redirect_to("file:///etc/passwd"),
    "/busy": _busy,
}


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.state = _State()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def guard():
    """A connect hook that records and refuses every non-loopback address (none must ever be attempted)."""
    refused: list[tuple[str, int]] = []

    def connect(address: tuple[str, int], timeout: float) -> socket.socket:
        if not ipaddress.ip_address(address[0]).is_loopback:
            refused.append(address)
            raise ConnectionRefusedError(f"test guard: refused non-loopback {address}")
        return system_connect(address, timeout)

    connect.refused = refused
    yield connect
    assert refused == [], f"a connection to a non-loopback address was attempted: {refused}"


def _no_dns(host: str, port: int):
    raise socket.gaierror(f"test: no DNS for {host!r}")


def _cfg(**kw) -> FetchConfig:
    base = dict(
        allow_cidrs=["127.0.0.0/8"],
        deadline_s=5.0,
        retries=2,
        backoff_base_s=0.05,
        backoff_max_s=0.2,
        max_bytes=1024 * 1024,
    )
    base.update(kw)
    return FetchConfig(**base)


def _url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _get(server, guard, path: str, **kw):
    return fetch_url(_url(server, path), _cfg(**kw), resolver=_no_dns, connect=guard)


def test_image_ok(server, guard):
    r = _get(server, guard, "/img.png")
    assert (r.status, r.http_status, r.body, r.attempts, r.redirects) == (FetchStatus.ok, 200, PNG, 1, 0)
    assert r.content_type == "image/png" and r.address == "127.0.0.1"


def test_404_is_final(server, guard):
    r = _get(server, guard, "/missing")
    assert (r.status, r.detail, r.attempts, r.body) == (FetchStatus.http_error, "404", 1, None)


def test_500_then_retries_succeed(server, guard):
    r = _get(server, guard, "/flaky500")
    assert (r.status, r.attempts, r.body) == (FetchStatus.ok, 3, PNG)


def test_persistent_5xx_gives_up_after_retries(server, guard):
    r = _get(server, guard, "/always503", retries=1)
    assert (r.status, r.detail, r.attempts) == (FetchStatus.http_5xx, "503", 2)


def test_429_retry_after_honoured(server, guard):
    r = _get(server, guard, "/429")
    assert (r.status, r.attempts) == (FetchStatus.ok, 2)
    first, second = server.state.hits["/429"][:2]
    assert second - first >= 1.0  # waited the Retry-After, not the 0.05 s backoff


def test_429_retry_after_beyond_cap_is_not_waited(server, guard):
    t0 = time.monotonic()
    r = _get(server, guard, "/429long", max_retry_after_s=5)
    assert (r.status, r.attempts) == (FetchStatus.rate_limited, 1)
    assert "Retry-After 3600" in r.detail and time.monotonic() - t0 < 2


@pytest.mark.parametrize("path", ["/slow", "/slowheaders"])
def test_slow_drip_hits_total_deadline(server, guard, path):
    t0 = time.monotonic()
    r = _get(server, guard, path, deadline_s=1.0)
    elapsed = time.monotonic() - t0
    assert r.status == FetchStatus.timeout, r
    assert 0.9 <= elapsed < 1.6  # the whole download, not one read, is bounded


def test_connection_reset_is_retried_then_reported(server, guard):
    r = _get(server, guard, "/reset", retries=1)
    assert (r.status, r.attempts) == (FetchStatus.connection_error, 2)


def test_truncated_body(server, guard):
    r = _get(server, guard, "/truncated")
    assert r.status == FetchStatus.truncated and r.body is None
    assert f"got {len(PNG)} of {len(PNG) + 5000}" in r.detail


def test_html_instead_of_image(server, guard):
    r = _get(server, guard, "/html")
    assert (r.status, r.body) == (FetchStatus.bad_content_type, None)
    assert "text/html" in r.detail


def test_declared_oversize_rejected_before_reading(server, guard):
    r = _get(server, guard, "/declared-big")
    assert r.status == FetchStatus.too_large and "Content-Length 52428800" in r.detail


def test_streamed_oversize_capped(server, guard):
    r = _get(server, guard, "/streamed-big", max_bytes=256 * 1024)
    assert r.status == FetchStatus.too_large and r.body is None


@pytest.mark.parametrize(
    ("path", "status"),
    [("/noai", FetchStatus.opt_out), ("/scoped-ours", FetchStatus.opt_out), ("/scoped-other", FetchStatus.ok)],
)
def test_x_robots_tag(server, guard, path, status):
    assert _get(server, guard, path).status == status


def test_x_robots_tag_can_be_disabled(server, guard):
    assert _get(server, guard, "/noai", honor_robots_tag=False).status == FetchStatus.ok


def test_redirect_chain_followed(server, guard):
    r = _get(server, guard, "/r3")
    assert (r.status, r.redirects, r.body) == (FetchStatus.ok, 3, PNG)
    assert r.final_url == _url(server, "/img.png")


def test_redirect_cap(server, guard):
    r = _get(server, guard, "/r3", max_redirects=2)
    assert (r.status, r.redirects) == (FetchStatus.too_many_redirects, 3)


def test_redirect_loop_capped(server, guard):
    r = _get(server, guard, "/loop")
    assert r.status == FetchStatus.too_many_redirects and "loop" in r.detail


def test_endless_redirect_chain_capped(server, guard):
    r = _get(server, guard, "/chain/0", max_redirects=4)
    assert (r.status, r.redirects) == (FetchStatus.too_many_redirects, 5)
    assert r.final_url.endswith("/chain/5")


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/to-private", FetchStatus.forbidden_address, "private"),
        ("/to-metadata", FetchStatus.forbidden_address, "link_local"),
        ("/to-mapped", FetchStatus.forbidden_address, "ipv4_mapped:loopback"),  # allowlist is not unwrapped
        ("/to-file", FetchStatus.bad_scheme, "file"),
    ],
)
def test_redirect_to_forbidden_target_refused_without_connecting(server, guard, path, status, reason):
    r = _get(server, guard, path)
    assert r.status == status and reason in r.detail, r
    assert r.redirects == 1
    assert guard.refused == []  # and the fixture re-checks on teardown


def test_per_host_concurrency_cap(server, guard):
    urls = [_url(server, f"/busy?i={i}") for i in range(8)]
    server.state.peak = 0
    results = fetch_many(urls, _cfg(per_host_concurrency=2), threads=8, resolver=_no_dns, connect=guard)
    assert [r.status for r in results] == [FetchStatus.ok] * 8
    assert server.state.peak == 2


def test_fetch_many_keeps_order_and_never_raises(server, guard):
    urls = [_url(server, "/img.png"), "ftp://x/y", _url(server, "/missing"), "not a url", _url(server, "/html")]
    fetcher = Fetcher(_cfg(), resolver=_no_dns, connect=guard)
    got = [r.status for r in fetcher.fetch_many(urls, threads=3)]
    assert got == [
        FetchStatus.ok,
        FetchStatus.bad_scheme,
        FetchStatus.http_error,
        FetchStatus.bad_scheme,
        FetchStatus.bad_content_type,
    ]


def test_a_redirect_to_a_registry_listed_url_is_not_followed(server, guard):
    """The opt-out registry is checked on every hop: /r1 redirects to /img.png, which the registry lists."""
    from curation.optout import OptOutRegistry

    registry = OptOutRegistry.parse(f"{_url(server, '/img')}\n", source="optout.txt")
    before = len(server.state.hits.get("/img.png", []))
    r = Fetcher(_cfg(), resolver=_no_dns, connect=guard, opt_out=registry).fetch(_url(server, "/r1"))
    assert (r.status, r.redirects) == (FetchStatus.opt_out_registry, 1) and "optout.txt line 1" in r.detail
    assert len(server.state.hits.get("/img.png", [])) == before  # the listed URL was never requested
