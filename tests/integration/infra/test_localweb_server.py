"""The synthetic web's server on 127.0.0.1: every fault kind as a client observes it, URLs taken from the answers.

Redirects are never followed automatically: each hop is checked to stay on 127.0.0.1 before it is requested, and the
forbidden redirect is only ever read as a Location header.
"""

from __future__ import annotations

import io
import struct
import time
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
import requests
import urllib3
from PIL import Image

from infra.localweb.faults import FORBIDDEN_TARGETS, LOOP_LENGTH, Fault
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from infra.localweb.render import image_bytes

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from infra.localweb.config import WebConfig

    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=11, n_candidates=3000, eval_per_concept=1), out)
    answers = pq.read_table(out / "answers.parquet").to_pylist()
    with serve_in_thread(out) as handle:
        yield handle, answers, out


@pytest.fixture(scope="module")
def http():
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: loopback means loopback
    yield session
    session.close()


def _get(http, url: str, **kw) -> requests.Response:
    assert urlsplit(url).hostname == "127.0.0.1", url  # this test suite only ever talks to loopback
    return http.get(url, allow_redirects=False, timeout=kw.pop("timeout", 10), **kw)


def _row(answers, fault: str, **match) -> dict:
    return next(r for r in answers if r["fault"] == fault and all(r[k] == v for k, v in match.items()))


def test_ok_serves_the_image_the_answers_describe(web, http):
    handle, answers, _ = web
    for row in [r for r in answers if r["fault"] == "ok"][:20]:
        resp = _get(http, row["url"])
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("image/")
        assert resp.content == image_bytes(handle.cfg, row["image_id"], row["variant"])
        assert Image.open(io.BytesIO(resp.content)).size == (row["width"], row["height"])


@pytest.mark.parametrize("fault,status", [("http_404", 404), ("http_500", 500)])
def test_error_statuses(web, http, fault, status):
    assert _get(http, _row(web[1], fault)["url"]).status_code == status


def test_429_then_retry_after_then_200(web, http):
    row = _row(web[1], "http_429")
    first = _get(http, row["url"])
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    second = _get(http, row["url"])
    assert second.status_code == 200 and Image.open(io.BytesIO(second.content)).size == (row["width"], row["height"])
    web[0].reset_state()
    assert _get(http, row["url"]).status_code == 429


def test_slow_body_outlives_a_per_read_timeout(web, http):
    row = _row(web[1], "slow")
    start = time.monotonic()
    resp = _get(http, row["url"], stream=True, timeout=(1, 1))
    got = 0
    for chunk in resp.iter_content(1):  # never raises: a byte arrives every 0.5 s, within the 1 s read timeout
        got += len(chunk)
        if time.monotonic() - start > 1.6:
            break
    resp.close()
    assert resp.status_code == 200 and 1 <= got < int(resp.headers["Content-Length"]) and got <= 5


def test_reset_is_a_connection_error(web, http):
    with pytest.raises(requests.ConnectionError) as err:
        _get(http, _row(web[1], "reset")["url"])
    assert "reset" in str(err.value).lower()


def test_truncated_body_is_shorter_than_its_content_length(web, http):
    resp = _get(http, _row(web[1], "truncated")["url"], stream=True)
    data = b""
    with pytest.raises((urllib3.exceptions.ProtocolError, urllib3.exceptions.IncompleteRead)):
        for chunk in resp.raw.stream(4096, decode_content=False):
            data += chunk
    assert 0 < len(data) < int(resp.headers["Content-Length"])


def test_html_instead_of_an_image(web, http):
    resp = _get(http, _row(web[1], "html")["url"])
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert resp.content.lstrip().lower().startswith(b"<!doctype html")


def test_bomb_header_claims_over_178_megapixels(web, http):
    resp = _get(http, _row(web[1], "bomb")["url"])
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png" and len(resp.content) < 100_000
    width, height = struct.unpack(">II", resp.content[16:24])
    assert width * height > 178_956_970
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(resp.content))


def test_tiny_is_8_by_8(web, http):
    resp = _get(http, _row(web[1], "tiny")["url"])
    assert resp.status_code == 200 and Image.open(io.BytesIO(resp.content)).size == (8, 8)


def test_noai_header_on_a_valid_image(web, http):
    resp = _get(http, _row(web[1], "noai")["url"])
    assert resp.status_code == 200 and resp.headers["X-Robots-Tag"] == "noai"
    Image.open(io.BytesIO(resp.content)).verify()


def _follow(http, url: str, max_hops: int) -> tuple[list[str], requests.Response]:
    """Follow redirects by hand, refusing anything but 127.0.0.1; returns (visited URLs, last response)."""
    visited = [url]
    resp = _get(http, url)
    while resp.is_redirect and len(visited) <= max_hops:
        visited.append(resp.headers["Location"])
        resp = _get(http, visited[-1])
    return visited, resp


def test_redirect_chain_of_three_ends_in_the_image(web, http):
    handle, answers, _ = web
    row = _row(answers, "redirect")
    visited, resp = _follow(http, row["url"], max_hops=10)
    assert len(visited) - 1 == 3 and resp.status_code == 200
    assert resp.content == image_bytes(handle.cfg, row["image_id"], row["variant"])


def test_redirect_loop_exceeds_any_cap(web, http):
    row = _row(web[1], "redirect_loop")
    visited, resp = _follow(http, row["url"], max_hops=LOOP_LENGTH + 2)
    assert resp.is_redirect and len(visited) - 1 > 10
    assert visited[LOOP_LENGTH] == row["url"]  # a true cycle: hop 12 is back at the start


def test_forbidden_redirect_is_only_a_header(web, http):
    resp = _get(http, _row(web[1], "redirect_forbidden")["url"])
    assert resp.status_code == 302 and resp.headers["Location"] in FORBIDDEN_TARGETS
    assert urlsplit(resp.headers["Location"]).hostname in ("169.254.169.254", "10.11.12.13")


def test_every_fault_kind_was_planted_and_reached(web):
    assert {r["fault"] for r in web[1]} == {str(f) for f in Fault}


def test_eval_images_and_planted_copies(web, http):
    handle, answers, out = web
    evals = pq.read_table(out / "eval/synthetic.parquet").to_pydict()
    by_id = dict(zip(evals["image_id"], evals["image"], strict=True))
    resp = _get(http, f"{handle.base_url}/eval/{evals['image_id'][0]}.jpg")
    assert resp.status_code == 200 and resp.content == evals["image"][0]
    exact = _row(answers, "ok", role="eval_exact")
    assert _get(http, exact["url"]).content == by_id[exact["eval_copy_of"]]


def test_exact_duplicates_are_byte_identical(web, http):
    answers = web[1]
    dup = _row(answers, "ok", role="dup_exact")
    original = next(r for r in answers if r["dup_cluster"] == dup["dup_cluster"] and r["role"] == "original")
    assert dup["url"] != original["url"]
    assert _get(http, dup["url"]).content == _get(http, original["url"]).content


def test_malformed_urls_are_plain_404s(web, http):
    base = web[0].base_url
    for path in ("/img/nosuchfault/1/0/1.jpg", "/img/ok/999999/0/1.jpg", "/img/ok/1/9/1.jpg", "/eval/5.jpg", "/x"):
        assert _get(http, base + path).status_code == 404, path
