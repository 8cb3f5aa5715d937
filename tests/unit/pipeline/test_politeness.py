"""Per-host politeness statistics (`pipeline.politeness`): the per-host sums, robots.txt requests added to their host,
opt-outs counted by source, and the report section that shows them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from pipeline.politeness import HOSTS_SCHEMA, robots_why, settings, summarise
from pipeline.report import politeness
from pipeline.report_inputs import ReportInputs
from pipeline.stages.download import DownloadConfig

ROWS = [
    # url, fetch_status, attempts, elapsed_s, reject_detail
    ("http://a.test/1.jpg", "ok", 1, 0.5, None),
    ("http://A.test:8080/2.jpg", "ok", 3, 1.5, None),
    ("http://a.test/3.jpg", "http_5xx", 3, 2.0, "500"),
    ("https://user@b.test/x.png", "opt_out", 1, 0.1, "X-Robots-Tag noai"),
    ("http://b.test/y.png", "opt_out_registry", 0, 0.0, "registry entry 'b.test' (optout.txt line 3)"),
    ("http://c.test/private/z.png", "robots_disallowed", 0, 0.0, "http://c.test/robots.txt disallows /private/z.png"),
    ("http://d.test/q.png", "robots_disallowed", 0, 0.0, "http://d.test/robots.txt unreachable (http_5xx 503)"),
    ("http://[::1]:9/v6.png", "connection_error", 3, 0.3, "refused"),
    ("http://e.test/never.png", None, None, None, None),  # rejected before the fetch: not a request
]


def parts(rows=ROWS) -> pads.Dataset:
    names = ["url", "fetch_status", "attempts", "elapsed_s", "reject_detail"]
    types = [pa.string(), pa.string(), pa.int32(), pa.float32(), pa.string()]
    return pads.dataset(
        pa.table({n: pa.array([r[i] for r in rows], t) for i, (n, t) in enumerate(zip(names, types, strict=True))})
    )


ROBOTS = pa.table(
    {
        "origin": ["http://a.test", "http://a.test:8080", "http://c.test", "http://d.test", "http://f.test"],
        "state": ["allow_all", "rules", "rules", "disallow_all", "allow_all"],
        "detail": ["http_error 404", "200", "200", "http_5xx 503", "http_error 404"],
    }
)


def test_summarise_sums_per_host_and_adds_one_robots_request_per_origin():
    hosts, facts = summarise(parts(), ROBOTS)
    assert hosts.schema == HOSTS_SCHEMA
    by = {r["host"]: r for r in hosts.to_pylist()}
    # a.test: 3 rows, 1 + 3 + 3 image attempts, plus robots.txt of two origins (port 80 and 8080)
    assert by["a.test"]["rows"] == 3 and by["a.test"]["requests"] == 7 + 2
    assert by["a.test"]["ok"] == 2 and by["a.test"]["failed"] == 1 and by["a.test"]["seconds"] == pytest.approx(4.0)
    assert (by["b.test"]["opt_out"], by["b.test"]["opt_out_registry"], by["b.test"]["requests"]) == (1, 1, 1)
    assert by["c.test"]["robots_disallowed"] == 1 and by["c.test"]["requests"] == 1  # only its robots.txt
    assert by["f.test"]["rows"] == 0 and by["f.test"]["requests"] == 1  # a host seen only by robots.txt
    assert "e.test" not in by, "a row the fetch never tried is not a request"
    assert hosts["requests"].to_pylist() == sorted(hosts["requests"].to_pylist(), reverse=True)
    assert facts["rows"] == 8 and facts["requests"] == sum(hosts["requests"].to_pylist()) == 7 + 1 + 3 + 5
    assert facts["robots"] == {"origins": 5, "states": {"allow_all": 2, "disallow_all": 1, "rules": 2}}
    assert facts["robots_refused_origins"] == [
        {"origin": "http://d.test", "why": "robots.txt unreachable: http_5xx 503"}
    ]
    src = facts["opt_out_by_source"]
    assert src["X-Robots-Tag"] == {"rows": 1, "top": [["noai", 1]]}
    assert src["registry"] == {"rows": 1, "top": [["'b.test' (optout.txt line 3)", 1]]}
    assert src["robots.txt"]["rows"] == 2
    assert ["c.test\tpath disallowed by a rule", 1] in src["robots.txt"]["top"]
    assert any(k.startswith("d.test\trobots.txt unreachable") for k, _ in src["robots.txt"]["top"])


def test_summarise_streams_many_batches_to_the_same_sums():
    many = ROWS * 70_000  # > one 65,536-row batch and > 64 partial tables: compaction on the way
    hosts, facts = summarise(parts(many), None)
    one, _ = summarise(parts(), None)
    assert facts["rows"] == 8 * 70_000
    for a, b in zip(hosts.to_pylist(), one.to_pylist(), strict=True):
        assert a["host"] == b["host"] and a["rows"] == 70_000 * b["rows"] and a["requests"] == 70_000 * b["requests"]


def test_empty_parts_give_an_empty_table():
    hosts, facts = summarise(parts([]), None)
    assert hosts.num_rows == 0 and hosts.schema == HOSTS_SCHEMA and facts["requests"] == 0


def test_robots_why_names_the_three_kinds():
    assert robots_why("http://x/robots.txt unreachable (timeout)").startswith("robots.txt unreachable")
    assert robots_why("Crawl-delay 9 s > download.fetch.max_crawl_delay_s 5").startswith("Crawl-delay")
    assert robots_why("http://x/robots.txt disallows /a for clipforge") == "path disallowed by a rule"


def test_report_section_shows_hosts_robots_and_opt_outs():
    hosts, facts = summarise(parts(), ROBOTS)
    facts = {
        "settings": settings(DownloadConfig()),
        **facts,
        "spread_hosts": [{"host": "big.test", "parts": 4, "slots_per_part": 2}],
    }
    html = politeness(ReportInputs(uri="run", manifest={}, politeness=facts, hosts=hosts))
    assert "download.fetch.per_host_concurrency" in html and "download.opt_out_registry" in html
    assert "a.test" in html and "f.test" in html and "http://d.test" in html
    assert "big.test" in html and "Large hosts spread" in html
    assert "noai" in html and "optout.txt line 3" in html and "path disallowed by a rule" in html
    absent = politeness(ReportInputs(uri="run", manifest={}))
    assert "politeness.json is absent" in absent
