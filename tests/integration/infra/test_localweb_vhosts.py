"""The synthetic web's virtual hosts on one loopback server: robots.txt by Host header, redirects that stay on the
asked host, and access.log (one JSON line per request, also for concurrent and abandoned ones)."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq
import pytest

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from infra.localweb.hosts import MOVED_BODY, OVERSIZED_BYTES, Robots, host_names, robots_of_hosts

pytestmark = pytest.mark.timeout(120)
N_HOSTS = 12


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    out = tmp_path_factory.mktemp("vweb")
    cfg = WebConfig(seed=2, n_candidates=300, virtual_hosts=N_HOSTS, wat_pages=0, slow_seconds=3, slow_interval=0.2)
    cfg = cfg.model_copy(update={"latency_s": 0.1})
    generate(cfg, out)
    with serve_in_thread(out) as handle:
        yield out, handle


def _get(port: int, host: str, path: str, timeout: float = 10) -> tuple[int, dict, bytes]:
    """A raw HTTP/1.1 GET with the given Host header (no client library rewrites it), Connection: close."""
    end = time.monotonic() + timeout  # a total deadline: a trickle never trips a per-read timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
            if time.monotonic() > end:
                raise TimeoutError(f"{host}{path}: no complete answer in {timeout} s")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_robots_variants_by_host(web):
    out, handle = web
    port = handle.cfg.port
    variants = dict(zip(host_names(N_HOSTS), robots_of_hosts(N_HOSTS), strict=True))
    by_variant = {v: h for h, v in variants.items()}
    assert _get(port, by_variant[Robots.PLAIN], "/robots.txt")[0] == 200
    status, _, body = _get(port, by_variant[Robots.CRAWL_DELAY], "/robots.txt")
    assert status == 200 and b"Crawl-delay: 0.2" in body
    assert _get(port, by_variant[Robots.HTTP_404], "/robots.txt")[0] == 404
    assert _get(port, by_variant[Robots.HTTP_500], "/robots.txt")[0] == 500
    status, headers, _ = _get(port, by_variant[Robots.REDIRECT], "/robots.txt")
    assert status == 301 and headers["location"] == "/robots/moved.txt"
    assert _get(port, by_variant[Robots.REDIRECT], "/robots/moved.txt")[2] == MOVED_BODY
    status, headers, _ = _get(port, by_variant[Robots.OVERSIZED], "/robots.txt")
    assert status == 200 and int(headers["content-length"]) >= OVERSIZED_BYTES
    assert _get(port, "127.0.0.1", "/robots.txt")[0] == 404  # base_url's own host: no robots.txt
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        _get(port, by_variant[Robots.SLOW], "/robots.txt", timeout=1.0)  # trickles: the client gives up
    assert time.monotonic() - t0 < 2.0


def test_redirects_stay_on_the_asked_host_and_access_log(web):
    out, handle = web
    port = handle.cfg.port
    a = pq.read_table(out / "answers.parquet").to_pylist()
    row = next(r for r in a if r["fault"] == "redirect")
    path = row["url"].split(f":{port}", 1)[1]
    status, headers, _ = _get(port, row["host"], path)
    assert status == 302 and headers["location"].startswith(f"http://{row['host']}:{port}/hop/")
    oks = [r for r in a if r["fault"] == "ok"][:40]
    marker = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # concurrent requests: every one logged, whole lines
        statuses = list(pool.map(lambda r: _get(port, r["host"], r["url"].split(f":{port}", 1)[1])[0], oks))
    assert statuses == [200] * len(oks)
    time.sleep(0.2)
    lines = [json.loads(line) for line in (out / "access.log").read_text().splitlines()]
    assert all(set(e) == {"host", "path", "start", "end"} for e in lines)
    recent = [e for e in lines if e["start"] >= marker]
    want = sorted((r["host"], r["url"].split(f":{port}", 1)[1]) for r in oks)
    assert sorted((e["host"], e["path"]) for e in recent) == want
    assert all(e["end"] - e["start"] >= 0.1 - 0.005 for e in recent)  # latency_s: server time per image
    assert max(_in_flight(recent)) >= 2  # the 8 client threads overlapped at the server
    slow = [e for e in lines if e["path"] == "/robots.txt" and e["end"] - e["start"] > 0.5]
    assert slow, "the abandoned slow robots.txt is logged when the client leaves"


def _in_flight(entries: list[dict]) -> list[int]:
    events = sorted([(e["start"], 1) for e in entries] + [(e["end"], -1) for e in entries])
    now, out = 0, []
    for _, step in events:
        now += step
        out.append(now)
    return out
