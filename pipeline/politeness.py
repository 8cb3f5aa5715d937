"""What the download did to the sites it read: requests per host, robots.txt refusals, opt-outs by source.

Written by the build right after its download step, read by the report (DESIGN.md §8):
- `stats/hosts.parquet`: one row per host (`HOSTS_SCHEMA`), most requests first. `requests` counts HTTP requests
  for images (every attempt, retries included; a registry or robots.txt refusal makes none) plus the origin's one
  robots.txt request; redirect hops are counted on the host of the original URL.
- `stats/politeness.json`: the politeness settings used, the robots.txt outcome per state and the origins refused
  as a whole (with why), opt-out counts by source (X-Robots-Tag directive, registry entry, robots.txt), the large
  hosts spread over several download parts (and each part's share of `per_host_concurrency`) and totals.

Both are aggregates over the committed download parts (`work/download/`): the url, status and detail columns only
(the image bytes are never read), streamed batch by batch, so the driver holds one row per host, not per URL.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from curation.host_parts import url_hosts
from pipeline.core.storage import write_bytes
from pipeline.rundir import RunDir

HOSTS_SCHEMA = pa.schema(
    [
        ("host", pa.string()),
        ("rows", pa.int64()),  # candidate URLs on the host that reached the download
        ("requests", pa.int64()),  # HTTP requests: image attempts + robots.txt
        ("ok", pa.int64()),
        ("robots_disallowed", pa.int64()),
        ("opt_out", pa.int64()),  # X-Robots-Tag
        ("opt_out_registry", pa.int64()),
        ("failed", pa.int64()),  # every other download reason
        ("seconds", pa.float64()),  # summed wall time of the host's downloads (slot held, retries included)
    ]
)
COUNTED = ("ok", "robots_disallowed", "opt_out", "opt_out_registry")
SETTINGS = (
    "user_agent",
    "robots_txt",
    "robots_ua_tokens",
    "max_crawl_delay_s",
    "honor_robots_tag",
    "disallowed_directives",
    "per_host_concurrency",
)
"""`download.fetch` fields shown as the politeness settings (with `download.opt_out_registry`)."""
TOP_DETAILS = 50


def _batch_counts(batch: pa.RecordBatch) -> pa.Table:
    """One batch of download-part rows → per-host partial sums (rows never tried by the fetch are skipped)."""
    t = pa.Table.from_batches([batch])
    t = t.filter(pc.is_valid(t["fetch_status"]))
    status = t["fetch_status"]
    cols: dict[str, Any] = {"host": url_hosts(t["url"]), "rows": pa.array(np.ones(t.num_rows, np.int64))}
    cols["requests"] = pc.cast(pc.fill_null(t["attempts"], 0), pa.int64())
    for name in COUNTED:
        cols[name] = pc.cast(pc.equal(status, name), pa.int64())
    cols["failed"] = pc.cast(pc.invert(pc.is_in(status, pa.array(COUNTED))), pa.int64())
    cols["seconds"] = pc.cast(pc.fill_null(t["elapsed_s"], 0.0), pa.float64())
    return pa.table(cols)


def _sum_by_host(t: pa.Table) -> pa.Table:
    names = [f.name for f in HOSTS_SCHEMA][1:]
    summed = t.group_by("host").aggregate([(n, "sum") for n in names])
    return summed.rename_columns([n if n == "host" else n.removesuffix("_sum") for n in summed.column_names])


def summarise(parts: pads.Dataset, robots: pa.Table | None) -> tuple[pa.Table, dict]:
    """(hosts table, facts) over the download parts and the run's robots.txt outcomes (`work/robots.parquet`)."""
    partial: list[pa.Table] = []
    refusals: Counter[tuple[str, str]] = Counter()  # (source, entry/directive/host) -> rows
    columns = ["url", "fetch_status", "attempts", "elapsed_s", "reject_detail"]
    for batch in parts.to_batches(columns=columns, batch_size=65_536):
        partial.append(_batch_counts(batch))
        if len(partial) >= 64:  # keep the driver at one row per host
            partial = [_sum_by_host(pa.concat_tables(partial))]
        _count_refusals(batch, refusals)
    empty = pa.table({f.name: pa.array([], f.type) for f in HOSTS_SCHEMA})
    hosts = _sum_by_host(pa.concat_tables(partial)) if partial else empty
    robots_hosts = Counter()
    states: Counter[str] = Counter()
    refused_origins = []
    if robots is not None:
        for origin, state, detail in zip(*(robots[c].to_pylist() for c in ("origin", "state", "detail")), strict=True):
            states[state] += 1
            host = url_hosts(pa.array([origin]))[0].as_py()
            robots_hosts[host] += 1
            if state == "disallow_all":
                refused_origins.append({"origin": origin, "why": f"robots.txt unreachable: {detail}"})
    hosts = _add_robots_requests(hosts.cast(HOSTS_SCHEMA), robots_hosts)
    hosts = hosts.sort_by([("requests", "descending"), ("host", "ascending")])
    facts = {
        "hosts": hosts.num_rows,
        "rows": int(pc.sum(hosts["rows"]).as_py() or 0),
        "requests": int(pc.sum(hosts["requests"]).as_py() or 0),
        "robots": {"origins": sum(states.values()), "states": dict(sorted(states.items()))},
        "robots_refused_origins": refused_origins[:TOP_DETAILS],
        "opt_out_by_source": _by_source(refusals),
    }
    return hosts, facts


def _add_robots_requests(hosts: pa.Table, robots_hosts: Counter) -> pa.Table:
    """Add each host's robots.txt requests (one per origin) to `requests`; a host seen only there gets a row."""
    if not robots_hosts:
        return hosts
    extra = pa.table(
        {f.name: pa.array([0] * len(robots_hosts), f.type) for f in HOSTS_SCHEMA if f.name not in ("host",)}
        | {"host": pa.array(list(robots_hosts), pa.string())}
    )
    extra = extra.set_column(
        extra.schema.get_field_index("requests"), "requests", pa.array(list(robots_hosts.values()), pa.int64())
    )
    return _sum_by_host(pa.concat_tables([hosts, extra.select(hosts.column_names)])).cast(HOSTS_SCHEMA)


_DIRECTIVE = re.compile(r"^X-Robots-Tag\s+(.*)$")


def _count_refusals(batch: pa.RecordBatch, out: Counter) -> None:
    """Opt-out rows by source: the X-Robots-Tag value, the registry entry, and robots.txt refusals by host."""
    status = batch.column("fetch_status")
    keep = pc.is_in(status, pa.array(["opt_out", "opt_out_registry", "robots_disallowed"]))
    if not pc.any(keep).as_py():
        return
    t = pa.Table.from_batches([batch]).filter(keep)
    hosts = url_hosts(t["url"]).to_pylist()
    for s, detail, host in zip(t["fetch_status"].to_pylist(), t["reject_detail"].to_pylist(), hosts, strict=True):
        detail = detail or ""
        if s == "opt_out":
            m = _DIRECTIVE.match(detail)
            out[("X-Robots-Tag", m.group(1) if m else detail)] += 1
        elif s == "opt_out_registry":
            out[("registry", detail.removeprefix("registry entry "))] += 1
        else:
            out[("robots.txt", f"{host or '(no host)'}\t{robots_why(detail)}")] += 1


def robots_why(detail: str) -> str:
    """The kind of a robots_disallowed detail (`curation.fetch` writes these three)."""
    if "unreachable" in detail:
        return "robots.txt unreachable (5xx, timeout, network): whole origin disallowed"
    if "Crawl-delay" in detail:
        return "Crawl-delay above download.fetch.max_crawl_delay_s"
    return "path disallowed by a rule"


def _by_source(refusals: Counter) -> dict[str, dict]:
    """{source: {"rows": n, "top": [[key, n], ...]}} with the most frequent keys first."""
    out: dict[str, dict] = {}
    for source in ("X-Robots-Tag", "registry", "robots.txt"):
        mine = Counter({k: n for (s, k), n in refusals.items() if s == source})
        if mine:
            top = sorted(mine.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_DETAILS]
            out[source] = {"rows": sum(mine.values()), "top": [list(kv) for kv in top]}
    return out


def settings(download: Any) -> dict:
    """The politeness settings of a `DownloadConfig`, as shown in the report."""
    fetch = download.fetch
    out = {f"download.fetch.{k}": getattr(fetch, k) for k in SETTINGS if hasattr(fetch, k)}
    out["download.opt_out_registry"] = download.opt_out_registry or "(none)"
    return out


def write_politeness(run: RunDir, download: Any, plan: dict | None = None) -> dict:
    """Summarise the committed download parts of `run` into stats/hosts.parquet and stats/politeness.json; returns
    the JSON's content. `download` is the build's `DownloadConfig`; `plan` the download step's outputs, whose
    `spread_hosts` ({host: parts}) and `host_slots` ({host: slots per part}) say how large hosts were spread."""
    fs, path = run.fs("work", "download")
    parts = pads.dataset(path, filesystem=fs, format="parquet")
    robots = None
    if run.exists("work", "robots.parquet"):
        rfs, rpath = run.fs("work", "robots.parquet")
        robots = pq.read_table(rpath, filesystem=rfs, columns=["origin", "state", "detail"])
    hosts, facts = summarise(parts, robots)
    buf = io.BytesIO()
    pq.write_table(hosts, buf)
    write_bytes(run.path("stats", "hosts.parquet"), buf.getvalue(), run.s3)
    spread = [
        {"host": h, "parts": int(k), "slots_per_part": int(((plan or {}).get("host_slots") or {}).get(h, 0))}
        for h, k in sorted(((plan or {}).get("spread_hosts") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    facts = {"settings": settings(download), **facts, "spread_hosts": spread[:TOP_DETAILS]}
    run.write_json("stats/politeness.json", facts)
    return facts
