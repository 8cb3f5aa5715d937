"""Virtual hosts of the synthetic web (`infra.localweb.hosts`): host sizes, robots.txt variants on the smallest
hosts, and the answers' expected outcome under each variant."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.hosts import ROBOTS_VARIANTS, SKIPPED_ROBOTS, Robots, host_names, robots_of_hosts


def test_variants_go_to_the_last_hosts():
    assert host_names(3) == ["site-000.web.test", "site-001.web.test", "site-002.web.test"]
    assert host_names(1001)[-1] == "site-1000.web.test"
    variants = robots_of_hosts(12)
    assert variants[0] is Robots.PLAIN and variants[1] is Robots.PLAIN
    assert variants[::-1][: len(ROBOTS_VARIANTS)] == list(ROBOTS_VARIANTS)
    assert robots_of_hosts(3) == [Robots.PLAIN, ROBOTS_VARIANTS[1], ROBOTS_VARIANTS[0]]


def test_generated_web_on_virtual_hosts(tmp_path):
    info = generate(WebConfig(seed=1, n_candidates=3000, virtual_hosts=24, wat_pages=0), tmp_path)
    a = pq.read_table(tmp_path / "answers.parquet").to_pylist()
    port = WebConfig.model_validate(info["config"]).port
    for r in a:
        assert r["url"].startswith(f"http://{r['host']}:{port}/img/"), r["url"]
    by_host: dict[str, int] = {}
    for r in a:
        by_host[r["host"]] = by_host.get(r["host"], 0) + 1
    assert max(by_host, key=by_host.get) == "site-000.web.test"  # the skew: the first host is the largest
    assert set(info["counts"]["by_robots"]) == {str(v) for v in Robots}
    for r in a:
        variant = Robots(r["robots"])
        refused = variant in {Robots.DISALLOW, Robots.HTTP_500, Robots.REDIRECT, Robots.SLOW, Robots.OVERSIZED}
        refused |= variant is Robots.CRAWL_DELAY_LONG or (variant is Robots.ALLOW_OVERRIDE and r["fault"] != "ok")
        assert (r["expected_outcome"] == SKIPPED_ROBOTS) == refused, r
    same = {r["row_id"]: r["host"] for r in a}
    assert all(same[r["same_url_as"]] == r["host"] for r in a if r["same_url_as"] >= 0)  # a repeated URL


def test_without_virtual_hosts_nothing_changes(tmp_path):
    (tmp_path / "access.log").write_text('{"host": "old"}\n')
    generate(WebConfig(seed=1, n_candidates=200, wat_pages=0), tmp_path)
    assert not (tmp_path / "access.log").exists()  # a new web starts a new access log
    a = pq.read_table(tmp_path / "answers.parquet")
    assert pc.all(pc.equal(a["host"], "127.0.0.1")).as_py()
    assert a["robots"].null_count == a.num_rows
    assert SKIPPED_ROBOTS not in a["expected_outcome"].to_pylist()
