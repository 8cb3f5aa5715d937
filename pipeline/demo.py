"""`clipforge demo`: the main job on the embedded default, end to end on one machine; no algorithms here.

Until the full build → train → eval → report loop lands (issue #8) the demo runs what exists, for real: it
generates a synthetic web, serves it on 127.0.0.1, starts a local Ray, downloads every candidate through the
Ray Data download stage (the safe fetcher), writes the results as parquet (locally or to the local S3 server
with `--s3`) and checks each row's outcome against the web's hidden answers file.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# The answers file's vocabulary for what a downloader should reach, by fetch status. Image-level outcomes
# (bomb, too small) are judged by the decode stage, so at the fetch level they are a successful download.
FETCH_LEVEL = {
    "ok": "ok",
    "ok_after_retry": "ok",
    "error_decompression_bomb": "ok",
    "error_too_small": "ok",
    "error_http_404": "http_error",
    "error_http_500": "http_5xx",
    "error_timeout": "timeout",
    "error_connection": "connection_error",
    "error_truncated": "truncated",
    "error_not_an_image": "bad_content_type",
    "skipped_noai": "opt_out",
    "error_too_many_redirects": "too_many_redirects",
    "error_forbidden_address": "forbidden_address",
}


def say(msg: str) -> None:
    print(f"clipforge demo: {msg}", flush=True)


def run_demo(workdir: Path, use_s3: bool = False, size: int = 2000, verbose: bool = False) -> dict:
    """Run the demo and return its summary (also written to WORKDIR/demo_summary.json)."""
    from infra.localweb.config import WebConfig
    from infra.localweb.generate import generate
    from infra.localweb.handle import serve_in_thread
    from pipeline.ray_setup import init_ray

    workdir = Path(workdir)
    web_dir = workdir / "web"
    # Short slow-fault trickle and deadline keep the demo quick; the fault is still slower than the deadline.
    web_cfg = WebConfig(seed=0, n_candidates=size, slow_seconds=12.0)
    counts = generate(web_cfg, web_dir)
    with serve_in_thread(web_dir) as web, _storage(workdir, use_s3) as out_uri:
        say(f"synthetic web of {size} candidates served at {web.base_url} (files in {web_dir})")
        info = init_ray(verbose=verbose)
        say(f"Ray: {'local' if info.local else 'cluster'} at {info.address}, {info.num_cpus:g} CPUs")
        t0 = time.monotonic()
        results = _download_all(web_dir, out_uri)
        elapsed = time.monotonic() - t0
    summary = _compare(results, pq.read_table(web_dir / "answers.parquet"), elapsed, out_uri)
    summary["web"] = {k: v for k, v in counts.items() if isinstance(v, (int, float, str))}
    (workdir / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    _print_summary(summary, workdir)
    if summary["mismatches"]:
        raise SystemExit(1)  # a wrong outcome is clipforge's failure, not the user's: exit 1, table printed above
    return summary


@contextlib.contextmanager
def _storage(workdir: Path, use_s3: bool):
    """Where results go: WORKDIR/fetch locally, or a bucket on a local S3 server started for the demo."""
    if not use_s3:
        yield str((workdir / "fetch").resolve())
        return
    from infra.locals3.server import LocalS3

    with LocalS3() as s3:
        uri = s3.create_bucket("clipforge-demo") + "/demo/fetch"
        say(f"local S3 at {s3.endpoint_url}; results go to {uri}")
        with _env(s3.env()):
            yield uri


@contextlib.contextmanager
def _env(values: dict[str, str]):
    import os

    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _download_all(web_dir: Path, out_uri: str) -> pa.Table:
    import ray

    from curation.fetch_config import FetchConfig
    from pipeline.stages.base import StageSpec, apply_stage
    from pipeline.stages.download import DownloadConfig, DownloadStage
    from pipeline.storage import filesystem

    cands = pq.read_table(web_dir / "candidates.parquet")
    cands = cands.append_column("row_id", pa.array(range(cands.num_rows), pa.int64()))
    fetch = FetchConfig(allow_cidrs=["127.0.0.0/8"], deadline_s=6.0, backoff_base_s=0.2)
    ds = ray.data.from_arrow(cands).repartition(max(4, cands.num_rows // 250))
    ds = apply_stage(ds, StageSpec(DownloadStage, DownloadConfig(fetch=fetch, threads=32), batch_size=250))
    fs, path = filesystem(out_uri)
    ds.drop_columns(["body"]).write_parquet(path, filesystem=fs)
    return pq.read_table(path, filesystem=fs)


def _compare(results: pa.Table, answers: pa.Table, elapsed: float, out_uri: str) -> dict:
    expected = answers["expected_outcome"].to_pylist()
    got = dict(zip(results["row_id"].to_pylist(), results["fetch_status"].to_pylist(), strict=True))
    table, mismatches = Counter(), 0
    for row_id, exp in enumerate(expected):
        status = got.get(row_id, "missing")
        table[(exp, status)] += 1
        mismatches += FETCH_LEVEL.get(exp) != status
    return {
        "candidates": len(expected),
        "downloaded_rows": results.num_rows,
        "seconds": round(elapsed, 1),
        "rows_per_s": round(results.num_rows / elapsed, 1) if elapsed else None,
        "outcomes": {f"{e} -> {s}": n for (e, s), n in sorted(table.items())},
        "mismatches": mismatches,
        "results": out_uri,
    }


def _print_summary(s: dict, workdir: Path) -> None:
    say(
        f"downloaded {s['downloaded_rows']} of {s['candidates']} candidates in {s['seconds']} s "
        f"({s['rows_per_s']} rows/s) through the Ray Data download stage"
    )
    say("expected outcome (answers file) -> fetch status: rows")
    for k, n in s["outcomes"].items():
        print(f"    {k:<50} {n:>6}", flush=True)
    verdict = "every row reached its expected outcome" if not s["mismatches"] else f"{s['mismatches']} MISMATCHES"
    say(f"{verdict}; results in {s['results']}; summary in {workdir / 'demo_summary.json'}")
    say("not yet part of the demo: decode/dedup/balance, shards, training, evaluation, report (issues #4-#8)")
