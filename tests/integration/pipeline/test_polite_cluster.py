"""Polite crawling at cluster scale (#23), judged from the server's side: `clipforge build` over the synthetic web's
virtual hosts (`site-NNN.web.test`, resolved to 127.0.0.1 by `download.fetch.resolve`) on a real two-node Ray cluster
on loopback, with several download tasks at once, then the web's OUT/access.log is read:

- at most `per_host_concurrency` requests in flight per host — also for the largest host, which the plan spreads over
  two parts (each with half of the limit);
- on the Crawl-delay host, no two request starts closer than the delay (minus 10 ms);
- no request to a path the host's robots.txt disallows for clipforge; none at all to hosts whose robots.txt refuses
  everything (500, a timeout, too large, a redirect to "Disallow: /img/", a Crawl-delay over the cap);
- robots.txt fetched at most once per host per run (plus the retries of a 5xx);
- every row that reached the download ends as its answers-file outcome; the slow robots.txt cost one fetch deadline
  (on the driver, before the parts), and its host's rows were refused without waiting;
- the opt-out registry's domain and URL prefix: no request at all (rows rejected as opt_out_registry).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from protego import Protego

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from infra.localweb.hosts import MOVED_PATH, Robots, robots_body
from tests.fixtures.builds import FETCH_LEVEL, text_metadata
from tests.fixtures.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 2  # per_host_concurrency
DEADLINE_S = 2.0
CRAWL_DELAY_S = 0.2
N_HOSTS = 16
OPTED_OUT_HOST = "site-001.web.test"  # a registry domain
PREFIX_HOST = "site-002.web.test"  # a registry URL prefix: its /img/ok/ URLs
REACHED = ("download", "images")  # reject stages of rows that reached the download (kept rows are in the shards)


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    """(answers by url, access.log entries, {url: {stage, reason, detail}} of the rows that reached the download,
    robots variant by host, run dir) of one build on a two-node cluster."""
    d = tmp_path_factory.mktemp("polite")
    web = d / "web"
    cfg = WebConfig(
        seed=4,
        n_candidates=400,
        virtual_hosts=N_HOSTS,
        crawl_delay_s=CRAWL_DELAY_S,
        latency_s=0.05,  # requests overlap: concurrency per host is visible in access.log
        slow_seconds=4,
        wat_pages=0,
    )
    generate(cfg, web)
    port = WebConfig.model_validate(json.loads((web / "web.json").read_text())["config"]).port
    (d / "optout.txt").write_text(f"# do not train\n{OPTED_OUT_HOST}\nhttp://{PREFIX_HOST}:{port}/img/ok/\n")
    build = {
        "input": {"path": str(web / "candidates.parquet"), "rows_per_block": 100},
        "output": str(d / "run"),
        "stages": ["text", "match", "download"],
        "match": {"metadata": str(text_metadata(d / "metadata.json"))},
        "download": {
            "threads": 8,
            "rows_per_part": 40,
            "opt_out_registry": str(d / "optout.txt"),
            "fetch": {
                "allow_cidrs": ["127.0.0.0/8"],
                "resolve": {"*.web.test": "127.0.0.1"},
                "per_host_concurrency": LIMIT,
                "deadline_s": DEADLINE_S,
                "backoff_base_s": 0.1,
            },
        },
        "image": {"image_size": 32},
    }
    (d / "build.json").write_text(json.dumps(build))
    cluster = LocalCluster()
    try:
        cluster.start_head()
        cluster.add_worker()
        env = {**cluster.env, "RAY_ADDRESS": f"127.0.0.1:{cluster.gcs_port}"}
        with serve_in_thread(web):
            proc = subprocess.run(
                [sys.executable, "-m", "pipeline.cli", "build", str(d / "build.json")],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=480,
            )
    finally:
        cluster.teardown()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return read_crawl(d)


def read_crawl(d: Path):
    """What `crawl` returns, read from a finished test directory."""
    web = d / "web"
    answers = {a["url"]: a for a in pq.read_table(web / "answers.parquet").to_pylist() if a["role"] != "dup_url"}
    log = [json.loads(line) for line in (web / "access.log").read_text().splitlines()]
    rows = {r["url"]: r for r in pq.read_table(d / "run" / "rejects").to_pylist() if r["stage"] in REACHED}
    kept = pa.concat_tables(
        [pq.read_table(p, columns=["url"]) for p in sorted((d / "run" / "shards").glob("*.parquet"))]
    )
    rows |= {url: {"stage": "kept", "reason": None} for url in kept["url"].to_pylist()}
    variants = {a["host"]: Robots(a["robots"]) for a in answers.values()}
    return answers, log, rows, variants, d / "run"


def _by_host(log: list[dict]) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for e in log:
        out[e["host"]].append(e)
    return out


def _max_in_flight(entries: list[dict]) -> int:
    """Most requests in flight at once (an end at the same instant as a start counts as before it)."""
    events = sorted([(e["start"], 1) for e in entries] + [(e["end"], -1) for e in entries], key=lambda t: (t[0], t[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_the_plan_spread_the_largest_host_over_two_parts(crawl):
    _, _, rows, _, run = crawl
    plan = json.loads((run / "manifest.json").read_text())["download"]
    assert plan["spread_hosts"] == {"site-000.web.test": 2}, plan
    assert plan["host_slots"] == {"site-000.web.test": 1}
    assert plan["parts"] >= 5 and plan["rows"] == len(rows)


def test_at_most_per_host_concurrency_requests_in_flight_per_host(crawl):
    _, log, _, _, _ = crawl
    hosts = _by_host([e for e in log if e["host"].endswith(".web.test")])
    assert len(hosts) >= N_HOSTS - 1
    in_flight = {h: _max_in_flight(entries) for h, entries in hosts.items()}
    print(f"\n{len(log)} requests over {len(hosts)} hosts; most in flight per host: {in_flight}")
    assert max(in_flight.values()) <= LIMIT, in_flight  # site-000 too, spread over two parts with one slot each
    assert max(in_flight.values()) == LIMIT, in_flight  # requests did overlap: the check had something to see


def test_crawl_delay_holds_between_request_starts(crawl):
    _, log, _, variants, _ = crawl
    host = next(h for h, v in variants.items() if v is Robots.CRAWL_DELAY)
    starts = sorted(e["start"] for e in _by_host(log)[host] if e["path"] != "/robots.txt")
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    print(f"\n{host}: {len(starts)} requests, smallest gap between starts {min(gaps):.4f} s (Crawl-delay 0.2)")
    assert len(starts) >= 5 and min(gaps) >= CRAWL_DELAY_S - 0.010, gaps


def test_no_request_to_a_disallowed_path_and_robots_once_per_host(crawl):
    _, log, _, variants, _ = crawl
    hosts = _by_host(log)
    for host, variant in variants.items():
        if host == OPTED_OUT_HOST:
            continue  # no request at all: test_the_opt_out_registry_prevents_any_request
        paths = [e["path"] for e in hosts.get(host, [])]
        robots = paths.count("/robots.txt")
        images = [p for p in paths if p not in ("/robots.txt", MOVED_PATH)]
        assert robots == (3 if variant is Robots.HTTP_500 else 1), (host, variant, robots)  # 500: 1 + 2 retries
        if variant in (Robots.HTTP_500, Robots.SLOW, Robots.OVERSIZED, Robots.CRAWL_DELAY_LONG, Robots.REDIRECT):
            assert images == [], (host, variant)
            continue
        rules = Protego.parse(robots_body(variant, CRAWL_DELAY_S).decode())
        refused = [p for p in images if not all(rules.can_fetch(p, t) for t in ("clipforge", "img2dataset"))]
        assert not refused, (host, variant, refused)
        assert variant is Robots.DISALLOW or images, (host, variant)  # allowed hosts were crawled


def test_every_row_ends_as_its_answer(crawl):
    answers, _, rows, variants, _ = crawl
    seen_variants = set()
    wrong = []
    for url, r in rows.items():
        a = answers[url]
        listed = a["host"] == OPTED_OUT_HOST or (a["host"] == PREFIX_HOST and a["fault"] == "ok")
        want = "opt_out_registry" if listed else FETCH_LEVEL[a["expected_outcome"]]
        got = r["reason"] if r["stage"] == "download" else "ok"  # images-stage rejects were fetched fine
        if got != want:
            wrong.append((url, a["robots"], a["expected_outcome"], r))
        if not listed:
            seen_variants.add(variants[a["host"]])
    assert not wrong, wrong[:10]
    assert seen_variants == set(Robots)  # every variant had rows that reached the download


def test_a_robots_txt_that_times_out_costs_one_deadline_not_a_stall(crawl):
    """The build fetches robots.txt once per host before the parts (on the driver, in parallel); the slow one ends at
    the fetch deadline, and the parts decide its host's rows from work/robots.parquet without another request."""
    answers, log, rows, variants, _ = crawl
    host = next(h for h, v in variants.items() if v is Robots.SLOW)
    fetches = [e for e in _by_host(log)[host] if e["path"] == "/robots.txt"]
    assert len(fetches) == 1 and DEADLINE_S - 0.2 <= fetches[0]["end"] - fetches[0]["start"] <= DEADLINE_S + 1.0
    mine = [r for url, r in rows.items() if answers[url]["host"] == host]
    assert mine and all(r["reason"] == "robots_disallowed" for r in mine)
    assert all("unreachable (timeout" in r["detail"] for r in mine)


def test_the_opt_out_registry_prevents_any_request(crawl):
    answers, log, rows, _, _ = crawl
    assert not [e for e in log if e["host"] == OPTED_OUT_HOST]  # not even robots.txt
    assert not [e for e in log if e["host"] == PREFIX_HOST and e["path"].startswith("/img/ok/")]
    assert [e for e in log if e["host"] == PREFIX_HOST and not e["path"].startswith("/img/ok/")]  # the rest is
    listed = [r for url, r in rows.items() if answers[url]["host"] == OPTED_OUT_HOST]
    assert listed and all(r["reason"] == "opt_out_registry" for r in listed)
