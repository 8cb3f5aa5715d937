"""The synthetic web's HTTP/1.1 protocol over raw loopback sockets: keep-alive, in-order pipelining across a render,
HEAD, HTTP/1.0, bad requests, and a slow response not holding up other connections."""

from __future__ import annotations

import socket
import time

import pytest

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from infra.localweb.render import image_bytes

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    out = tmp_path_factory.mktemp("protoweb")
    generate(WebConfig(seed=2, n_candidates=200, eval_per_concept=1), out)
    with serve_in_thread(out, prewarm=5) as handle:
        yield handle


def _connect(web) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", web.cfg.port), timeout=10)
    return sock


def _read_response(sock: socket.socket, buf: bytearray, head_only: bool = False) -> tuple[int, dict, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a full head")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[: end + 4]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = 0 if head_only else int(headers["content-length"])
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return int(lines[0].split(" ")[1]), headers, body


def _get(path: str, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return f"GET {path} {version}\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def test_pipelined_requests_answer_in_order_across_a_render(web):
    # image 150 is not prewarmed: its render is an Action, and the cached image 1 requested after it must wait
    paths = ["/img/ok/150/0/150.jpg", "/img/ok/1/0/1.jpg", "/img/http_404/2/0/2.jpg", "/img/ok/151/2/151.png"]
    with _connect(web) as sock:
        sock.sendall(b"".join(_get(p) for p in paths))
        buf = bytearray()
        replies = [_read_response(sock, buf) for _ in paths]
    assert [r[0] for r in replies] == [200, 200, 404, 200]
    assert replies[0][2] == image_bytes(web.cfg, 150, 0) and replies[1][2] == image_bytes(web.cfg, 1, 0)
    assert replies[3][1]["content-type"] == "image/png" and replies[3][2] == image_bytes(web.cfg, 151, 2)
    assert all("connection" not in r[1] for r in replies)  # kept alive throughout


def test_head_has_no_body_and_keeps_the_connection(web):
    with _connect(web) as sock:
        sock.sendall(b"HEAD /img/ok/1/0/1.jpg HTTP/1.1\r\nHost: x\r\n\r\n" + _get("/healthz"))
        buf = bytearray()
        status, headers, _ = _read_response(sock, buf, head_only=True)
        assert status == 200 and int(headers["content-length"]) == len(image_bytes(web.cfg, 1, 0))
        assert _read_response(sock, buf)[2] == b"ok\n"


@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"POST /img/ok/1/0/1.jpg HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /img/ok/1/0/1.jpg HTTP/2.0\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nbroken header line\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 20000, 431),
    ],
)
def test_bad_requests_get_a_status_and_a_close(web, request_bytes, status):
    with _connect(web) as sock:
        sock.sendall(request_bytes)
        buf = bytearray()
        got, headers, _ = _read_response(sock, buf)
        assert got == status and headers["connection"] == "close"
        assert sock.recv(10) == b""  # the server closed its side


def test_http10_and_connection_close_are_honoured(web):
    for request in (_get("/healthz", version="HTTP/1.0"), _get("/healthz", extra="Connection: close\r\n")):
        with _connect(web) as sock:
            sock.sendall(request)
            buf = bytearray()
            status, headers, body = _read_response(sock, buf)
            assert (status, headers["connection"], body) == (200, "close", b"ok\n")
            assert sock.recv(10) == b""


def test_a_request_body_is_skipped(web):
    with _connect(web) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + _get("/img/http_500/1/0/1.jpg"))
        buf = bytearray()
        assert _read_response(sock, buf)[0] == 200 and _read_response(sock, buf)[0] == 500


def test_a_slow_response_does_not_hold_up_other_connections(web):
    with _connect(web) as slow:
        slow.sendall(_get("/img/slow/3/0/3.jpg"))
        time.sleep(0.2)
        start = time.monotonic()
        for i in range(20):
            with _connect(web) as sock:
                sock.sendall(_get(f"/img/ok/{i}/0/{i}.jpg"))
                assert _read_response(sock, bytearray())[0] == 200
        assert time.monotonic() - start < 5
        assert len(slow.recv(65536)) < 400  # still trickling: headers and a byte or two
