"""Host-partitioned download parts: which part each row is downloaded in, so that per-host politeness holds across a
whole cluster; pure numpy/pyarrow, no I/O, no Ray.

The rule (docs/build.md, "Politeness across a cluster"):
- a row's host is its URL's hostname (lower case); rows of one host go to the same part, part =
  H(host) mod n_parts, so one download task — one `Fetcher`, whose per-host semaphore and Crawl-delay turn are then
  the cluster's — makes every request to it. Small hosts pack into parts by that hash, as uids did before.
- a host with more rows than `rows_per_part` is *spread* over k = min(⌈rows / rows_per_part⌉,
  per_host_concurrency) consecutive parts (H(host) + j mod n_parts, j = H(uid) mod k), and each of them may run
  only ⌊per_host_concurrency / k⌋ of that host's downloads at once (`host_slots`), so the sum over its parts stays
  ≤ per_host_concurrency wherever they run. k never exceeds per_host_concurrency (each part keeps ≥ 1 slot), so a
  very large host has parts bigger than rows_per_part: it cannot go faster than per_host_concurrency requests at a
  time anyway, and its k parts on k workers reach that rate.
- a host with a robots.txt Crawl-delay is never spread: requests to it are one at a time, a delay apart, so one
  part is as fast as it can go, and a second part would break the delay.
- rows with no host (unparseable URLs, refused by the fetcher before any request) go by uid hash.
Everything is a pure function of (the live rows' hosts and uids, n_parts, the settings): a re-run of the same build
puts every row in the same part (resume by part).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.hashing import splitmix64, uid_to_u64

HOST_SALT = 0x686F7374  # "host"
_HOST_RE = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?(?P<host>\[[^\]/?#]*\]|[^:/?#]*)"


def url_hosts(urls: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lower-case hostname of each URL (IPv6 in brackets), "" where there is none — vectorised, for grouping only
    (the fetcher's own checks parse each URL fully)."""
    arr = urls.combine_chunks() if isinstance(urls, pa.ChunkedArray) else urls
    if not len(arr):
        return pa.array([], pa.string())
    found = pc.extract_regex(pc.utf8_trim_whitespace(arr.cast(pa.string())), _HOST_RE)
    hosts = pc.struct_field(found, "host")
    return pc.fill_null(pc.utf8_lower(hosts), "")


def split_hosts(
    hosts: pa.Array, rows_per_part: int, per_host_concurrency: int, unsplittable: Iterable[str] = ()
) -> dict[str, int]:
    """{host: k} for every host spread over k ≥ 2 parts (see the module rule); hosts in `unsplittable` (those with
    a Crawl-delay) and hosts of at most `rows_per_part` rows are absent."""
    keep = set(unsplittable)
    out = {}
    for item in pc.value_counts(hosts).to_pylist():
        host, n = item["values"], item["counts"]
        k = min(math.ceil(n / max(1, rows_per_part)), per_host_concurrency)
        if host and host not in keep and k >= 2:
            out[host] = k
    return out


def host_slots(split: dict[str, int], per_host_concurrency: int) -> dict[str, int]:
    """Per-part concurrency of each spread host: ⌊per_host_concurrency / k⌋ (≥ 1, as k ≤ per_host_concurrency)."""
    return {h: max(1, per_host_concurrency // k) for h, k in split.items()}


def assign_parts(hosts: pa.Array, uids: pa.Array, n_parts: int, split: dict[str, int], salt: int) -> np.ndarray:
    """`int64[len(hosts)]` in [0, n_parts): each row's download part (the module rule)."""
    n = len(hosts)
    if not n:
        return np.zeros(0, dtype=np.int64)
    n_parts = max(1, n_parts)
    names = hosts.to_pylist()
    base = splitmix64(uid_to_u64(names) ^ np.uint64(HOST_SALT ^ salt))
    by_uid = splitmix64(uid_to_u64(uids) ^ np.uint64(salt))
    k = np.array([split.get(h, 1) for h in names], dtype=np.uint64)
    offset = by_uid % k  # 0 for hosts in one part
    part = (base % np.uint64(n_parts) + offset) % np.uint64(n_parts)
    no_host = np.array([not h for h in names], dtype=bool)
    part[no_host] = by_uid[no_host] % np.uint64(n_parts)
    return part.astype(np.int64)
