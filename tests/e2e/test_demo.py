"""`clipforge demo` end to end, small: synthetic web on loopback → its crawl's WAT files → extract → build → train →
eval → report, on S3 (the extract output too). `--from-list` (build from the web's list): unit/pipeline/test_cli.py.

The full-size demo (4,000 candidates, 900 steps) is what `make demo` runs; its figures are in README. Here the web
and the training are small enough for CI, and the assertions are about the loop being whole and consistent. One demo
run covers both storage paths: the web, metadata and work files are on local disk, the run goes to the session's
local S3 (`--s3-endpoint`), so its objects are checked after the demo exits: shards, sidecars, rejects, stats and
manifest as objects, accounting, the report's sections, the export, and the trainer's reader reading a shard back.
(A local-disk demo used to run as well; its checks are a subset of these and the storage layer is the same code for
both — tests/unit/pipeline/test_storage.py and tests/integration/pipeline/test_storage_s3.py cover the difference.)
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.app.demo import BUCKET, DEMO_LANGUAGES, train_name
from pipeline.core.storage import filesystem, list_uris, read_bytes
from pipeline.core.tar import iter_members

SIZE, STEPS = 600, 12


def run_demo(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.cli", "demo", "--workdir", str(workdir)]
    cmd += ["--size", str(SIZE), "--steps", str(STEPS), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def check(workdir: Path, out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((workdir / "demo_summary.json").read_text())
    c, e = summary["counts"], summary["extract"]
    # the crawl's WAT files → clipforge extract → the build's input: every candidate, exact duplicates collapsed
    assert summary["input"] == "crawl" and e["files"] == 4 and e["records"] == e["records_with_links"] > 0
    assert e["img_links"] > e["pairs"] > e["candidates"] == c["input_rows"] and e["duplicates_collapsed"] > 0
    assert SIZE * 0.95 < c["input_rows"] <= SIZE and c["kept"] + c["rejected"] == c["input_rows"]
    assert e["dropped"]["bad_scheme"] > 0 and e["dropped"]["no_text"] > 0
    assert 0 < c["kept"] < SIZE and summary["shards"] >= 1
    assert summary["train"]["steps"] == STEPS and summary["train"]["samples_seen"] == STEPS * 64
    assert set(summary["zeroshot"]) == {"digits", "synthetic"}  # English class names, as before
    assert set(summary["balance"]["t_by_lang"]) == set(DEMO_LANGUAGES)  # worldwide by default (#21)
    assert all(t >= 1 for t in summary["balance"]["t_by_lang"].values())
    assert summary["zeroshot"]["synthetic"]["n_classes"] == 74 and summary["zeroshot"]["digits"]["n_classes"] == 10
    for name in ("extract", "build", "train", "eval", "report"):
        assert summary["seconds"][name] > 0
    assert f"extract: 4 WAT files, {e['records']} records" in out.stdout
    assert "zero-shot synthetic: acc1" in out.stdout and f"report: {summary['report']}" in out.stdout
    return summary


@pytest.fixture
def demo_bucket(local_s3):
    """The demo's bucket on the session's local S3, absent before the test and deleted with its content after it
    (no other test uses this name: `s3_bucket` makes `cf-test-…` ones)."""

    def drop() -> None:
        names = [b["Name"] for b in local_s3.client().list_buckets().get("Buckets", [])]
        if BUCKET in names:
            local_s3.delete_bucket(BUCKET)

    drop()
    yield f"s3://{BUCKET}"
    drop()


def test_demo_s3(tmp_path, local_s3, demo_bucket):
    """The demo on the session's S3 server (which outlives it), then its run checked object by object: the same
    assertions a separate build to S3 used to make, on the demo's build."""
    summary = check(tmp_path, run_demo(tmp_path, "--s3-endpoint", local_s3.endpoint_url))
    run = summary["run"]
    assert run == f"{demo_bucket}/demo/run" and summary["report"].startswith(f"{run}/")
    assert summary["train"]["export"].startswith(f"{run}/")
    assert not (tmp_path / "run").exists()  # nothing of the run on local disk: it all went to the S3 server

    manifest = json.loads(read_bytes(f"{run}/manifest.json"))
    assert manifest["status"] == "complete" and manifest["counts"] == summary["counts"]
    assert len(manifest["shards"]) == summary["shards"]
    assert {k: manifest["balance"].get(k) for k in summary["balance"]} == summary["balance"]
    keys = {u.path.split("demo/run/", 1)[1] for u in list_uris(run)}
    expected = {s[k] for s in manifest["shards"] for k in ("path", "sidecar")}
    assert {k for k in keys if k.startswith("shards/")} == expected
    assert {"manifest.json", "config.yaml", "stats/funnel.json", "stats/entry_counts_post.npy"} <= keys
    assert {"report.html", "eval/results.json", "eval/results.md", "eval/config.yaml"} <= keys
    assert f"train/{train_name(STEPS)}/export/open_clip_config.json" in keys
    assert not any(k.startswith("work/") for k in keys)
    html = read_bytes(summary["report"]).decode()
    assert "Funnel" in html and "Training" in html and "synthetic" in html
    # zero-shot during training (#24): both benchmarks at the last step, in metrics.csv and the report's curves
    metrics = read_bytes(f"{run}/train/{train_name(STEPS)}/metrics.csv").decode().splitlines()
    header, last = metrics[0].split(","), metrics[-1].split(",")
    for key in ("eval/digits/acc1", "eval/synthetic/acc1"):
        assert 0 <= float(last[header.index(key)]) <= 1 and key in html
    extraction = html.index('<section id="extraction">')  # the extraction funnel, ahead of the build's
    assert extraction < html.index('<section id="funnel">')
    assert f"<b>candidates</b> {manifest['counts']['input_rows']:,}" in html[extraction:]
    assert manifest["input"]["extract"] == summary["extract"]["extract"] == f"{demo_bucket}/demo/extract"
    assert json.loads(read_bytes(f"{demo_bucket}/demo/extract/manifest.json"))["status"] == "complete"
    assert json.loads(read_bytes(f"{run}/eval/results.json"))["results"]

    total, uids = 0, []
    for s in manifest["shards"]:
        names = [name for name, _ in iter_members(io.BytesIO(read_bytes(f"{run}/{s['path']}")))]
        side = pq.read_table(io.BytesIO(read_bytes(f"{run}/{s['sidecar']}")))
        assert [n.split(".")[0] for n in names[::3]] == side["key"].to_pylist() and side.num_rows == s["n"]
        assert len(names) == 3 * s["n"]
        total += s["n"]
        uids += side["uid"].to_pylist()
    assert len(manifest["shards"]) > 1 and total == manifest["counts"]["kept"] > 50 and len(set(uids)) == total
    rejects = pa.concat_tables([pq.read_table(io.BytesIO(read_bytes(u))) for u in list_uris(f"{run}/rejects")])
    assert rejects.num_rows + total == manifest["counts"]["input_rows"]

    from training.data import read_manifest, shard_rows

    fs, path = filesystem(run)
    refs = read_manifest(fs, path)
    rows = shard_rows(fs, {"tar": refs[0].tar, "sidecar": refs[0].sidecar})
    assert len(rows["uid"]) == refs[0].n
