"""Response-header rules (X-Robots-Tag, Content-Type, Retry-After, Content-Length) and the total deadline."""

from __future__ import annotations

import email.utils
import socket
import time
from email.message import Message

import pytest

from curation.fetch_config import FetchConfig, FetchResult, FetchStatus, fetch_columns
from curation.fetch_guard import header_refusal
from curation.fetch_http import (
    Deadline,
    DeadlineSocket,
    content_type_allowed,
    parse_content_length,
    parse_retry_after,
    robots_opt_out,
)

OURS = ["clipforge", "img2dataset"]
DIRECTIVES = ["noai", "noimageai", "noindex", "noimageindex"]


@pytest.mark.parametrize(
    ("values", "hit"),
    [
        (["noai"], "noai"),
        (["NoImageAI"], "noimageai"),
        (["noindex, nofollow"], "noindex"),
        (["nofollow", "noimageindex"], "noimageindex"),
        (["none"], "none"),
        (["img2dataset: noai"], "img2dataset: noai"),
        (["Clipforge: noimageai"], "clipforge: noimageai"),
        (["otherbot: noai, noindex"], None),
        (["googlebot: noindex", "nofollow"], None),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST"], None),
        (["noarchive, unavailable_after: 25 Jun 2010"], None),
        (["nosnippet, noindex"], "noindex"),
        ([], None),
        (["all"], None),
    ],
)
def test_robots_opt_out(values, hit):
    assert robots_opt_out(values, OURS, DIRECTIVES) == hit


def test_robots_opt_out_respects_configured_directives():
    assert robots_opt_out(["noindex"], OURS, ["noai"]) is None
    assert robots_opt_out(["none"], OURS, ["noai"]) is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("image/jpeg", True),
        ("IMAGE/PNG; charset=binary", True),
        ("application/octet-stream", True),
        ("binary/octet-stream", True),
        ("image/svg+xml", False),
        ("text/html; charset=utf-8", False),
        ("video/mp4", False),
        ("application/json", False),
        ("", True),
        (None, True),
    ],
)
def test_content_type_allowed(value, ok):
    cfg = FetchConfig()
    assert content_type_allowed(value, cfg.allowed_content_types, cfg.denied_content_types, True) is ok


def test_missing_content_type_can_be_refused():
    assert content_type_allowed(None, ["image/*"], [], allow_missing=False) is False


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("-3") is None
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= parse_retry_after(future) <= 61
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0


def test_parse_content_length():
    assert parse_content_length("123") == 123
    assert parse_content_length(" 5 ") == 5
    assert (
        parse_content_length("-1") is None
        and parse_content_length("1e9") is None
        and parse_content_length(None) is None
    )


def _headers(**kv) -> Message:
    m = Message()
    for k, v in kv.items():
        m[k.replace("_", "-")] = v
    return m


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (dict(Content_Type="image/jpeg", Content_Length="10"), None),
        (dict(Content_Type="image/jpeg", X_Robots_Tag="noai"), FetchStatus.opt_out),
        (dict(Content_Type="text/html"), FetchStatus.bad_content_type),
        (dict(Content_Type="image/jpeg", Content_Encoding="gzip"), FetchStatus.bad_content_type),
        (dict(Content_Type="image/jpeg", Content_Length=str(10**9)), FetchStatus.too_large),
    ],
)
def test_header_refusal(headers, status):
    got = header_refusal(_headers(**headers), FetchConfig())
    assert (got.status if got else None) == status


def test_deadline_bounds_every_recv():
    a, b = socket.socketpair()
    try:
        sock = DeadlineSocket(a, Deadline(0.3))
        reader = sock.makefile("rb")
        t0 = time.monotonic()
        b.sendall(b"partial line without newline")
        with pytest.raises(TimeoutError):
            reader.readline()
        assert time.monotonic() - t0 < 0.6
        with pytest.raises(TimeoutError, match="deadline"):
            sock.sendall(b"x")  # no time left: refused before touching the socket
    finally:
        a.close()
        b.close()


def test_deadline_socket_outlives_close_while_a_reader_is_open():
    a, b = socket.socketpair()
    try:
        sock = DeadlineSocket(a, Deadline(5))
        reader = sock.makefile("rb")
        sock.close()  # what http.client does on "Connection: close" before the body is read
        b.sendall(b"body")
        b.shutdown(socket.SHUT_WR)
        assert reader.read() == b"body"
        reader.close()
        assert a.fileno() == -1
    finally:
        b.close()


def test_fetch_columns_are_arrow_friendly():
    import pyarrow as pa

    rows = [
        FetchResult(url="http://a/", status=FetchStatus.ok, body=b"x", attempts=1),
        FetchResult(url="http://b/", status=FetchStatus.opt_out, detail="X-Robots-Tag noai", attempts=1),
    ]
    table = pa.table(fetch_columns(rows))
    assert table.column("fetch_status").to_pylist() == ["ok", "opt_out"]
    assert table.column("body").to_pylist() == [b"x", None]
