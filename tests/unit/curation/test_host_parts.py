"""Host-partitioned download parts (`curation.host_parts`): one host, one part; large hosts spread over at most
per_host_concurrency parts whose slots add up to the limit; Crawl-delay hosts never spread; deterministic."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation.host_parts import assign_parts, host_slots, split_hosts, url_hosts

SALT = 0x70617274


def test_url_hosts_lower_cases_and_handles_odd_urls():
    urls = pa.array(
        [
            "http://Site-001.Web.Test:8080/img/a.jpg",
            "https://user:pw@example.com/x",
            " http://[::1]:80/x",
            "not a url",
            None,
            "http://example.com?q=1",
        ]
    )
    assert url_hosts(urls).to_pylist() == ["site-001.web.test", "example.com", "[::1]", "", "", "example.com"]


def _rows(sizes: dict[str, int]) -> tuple[pa.Array, pa.Array]:
    hosts = [h for h, n in sizes.items() for _ in range(n)]
    return pa.array(hosts), pa.array([f"uid-{i}" for i in range(len(hosts))])


def test_small_hosts_keep_to_one_part_and_large_ones_spread_within_the_limit():
    hosts, uids = _rows(
        {"big.test": 950, "mid.test": 150, "delayed.test": 400, **{f"s{i}.test": 5 for i in range(60)}}
    )
    split = split_hosts(hosts, rows_per_part=100, per_host_concurrency=4, unsplittable={"delayed.test"})
    assert split == {"big.test": 4, "mid.test": 2}  # 950 rows: 10 parts' worth, capped at the limit
    assert host_slots(split, 4) == {"big.test": 1, "mid.test": 2}
    assert host_slots({"h": 3}, 8) == {"h": 2}  # 3 parts x 2 slots <= 8
    n_parts = 18
    parts = assign_parts(hosts, uids, n_parts, split, SALT)
    assert parts.min() >= 0 and parts.max() < n_parts
    names = np.array(hosts.to_pylist())
    for host in {*names}:
        used = len(np.unique(parts[names == host]))
        assert used == split.get(host, 1), host
    for host, k in split.items():  # the sum of the shares never exceeds the limit, however the parts run
        assert k * host_slots(split, 4)[host] <= 4
    # deterministic, and independent of row order (resume by part)
    order = np.random.default_rng(0).permutation(len(hosts))
    again = assign_parts(hosts.take(pa.array(order)), uids.take(pa.array(order)), n_parts, split, SALT)
    assert np.array_equal(again, parts[order])


def test_rows_without_a_host_go_by_uid():
    hosts, uids = pa.array([""] * 200), pa.array([f"u{i}" for i in range(200)])
    parts = assign_parts(hosts, uids, 8, {}, SALT)
    assert len(np.unique(parts)) == 8
    assert assign_parts(pa.array([], pa.string()), pa.array([], pa.string()), 8, {}, SALT).shape == (0,)
