"""`clipforge report`: real run directories in, one self-contained HTML page out, checked in headless Chromium.

Fixtures: a copy of the session's real text-only `clipforge build` over a small synthetic web (local Ray; shared
with test_build_text.py), and an image run made from it
by adding what an image build adds — shards + sidecars (`tests.fixtures.training.write_synthetic_build`, sidecars
given lang / source sizes and some hostile captions), dedup artifacts in `pipeline.dedup.ARTIFACT_SCHEMA`, download /
image / dedup rejects with HTTP details, a training metrics.csv (`training.metrics.RunLog`) and evaluation results
(`evaluation.report.write_results`). The Chromium test fails (never skips) when Debian's `chromium` is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core.storage import list_uris, read_bytes, write_bytes
from pipeline.core.tar import iter_members
from pipeline.dedup import ARTIFACT_SCHEMA
from pipeline.report import write_report
from pipeline.report_plots import FUNNEL_COLOUR

HOSTILE = '<script>document.title="pwned"</script><img src="http://evil.invalid/x.png"> a red circle'
HOSTILE_URL = 'http://evil.invalid/"><script>alert(1)</script>.jpg'
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


# --- fixtures: a real text-only build, and an image run built on it ---------------------------------------------
@pytest.fixture(scope="module")
def text_run(text_build, tmp_path_factory) -> Path:
    """A copy of the session's real text-only build (tests/integration/pipeline/conftest.py): the report writes into
    the run directory."""
    run = tmp_path_factory.mktemp("report") / "text_run"
    shutil.copytree(text_build[0], run)
    return run


def _rejects(rows: list[tuple[str, str, str, str, str | None]]) -> pa.Table:
    names = ["uid", "url", "stage", "reason", "detail"]
    return pa.table({n: pa.array(c, pa.string()) for n, c in zip(names, zip(*rows, strict=True), strict=True)})


def _add_shards(run: Path, tmp: Path) -> list[dict]:
    from tests.fixtures.training import write_synthetic_build

    synth = write_synthetic_build(tmp / "synth", n=96, shard_size=32, px=48, seed=1)
    shutil.copytree(synth / "shards", run / "shards")
    for i, f in enumerate(sorted((run / "shards").glob("*.parquet"))):
        t = pq.read_table(f)
        n = t.num_rows
        caps = [HOSTILE if j % 4 == 0 else c for j, c in enumerate(t["caption"].to_pylist())]
        t = t.set_column(t.schema.get_field_index("caption"), "caption", pa.array(caps))
        t = t.append_column("lang", pa.array([("en", "en", "de", "fr")[(i + j) % 4] for j in range(n)]))
        t = t.append_column("orig_width", pa.array(np.arange(n, dtype=np.int32) * 7 + 200))
        t = t.append_column("orig_height", pa.array(np.arange(n, dtype=np.int32) * 3 + 150))
        pq.write_table(t, f)
    return json.loads((synth / "manifest.json").read_text())["shards"]


def _add_dedup(run: Path, kept: list[str]) -> list[tuple]:
    """exact: one cluster of 3 (2 dropped); near: two clusters of 2. Returns the dedup reject rows."""
    exact = [("e1" * 12, kept[0], 0, 3), ("e2" * 12, kept[0], 0, 3)]
    near = [("n1" * 12, kept[5], 2, 2), ("n2" * 12, kept[40], 4, 2)]
    (run / "dedup").mkdir()
    for name, rows in (("exact", exact), ("near", near)):
        table = pa.table(list(map(list, zip(*rows, strict=True))), schema=ARTIFACT_SCHEMA)
        pq.write_table(table, run / "dedup" / f"{name}.parquet")
        summary = {"step": name, "rows": 110, "edges": len(rows), "dropped": len(rows), "clusters": len(rows)}
        (run / "dedup" / f"{name}.json").write_text(json.dumps(summary))
    with (run / "shards" / "shard-000000.tar").open("rb") as f:  # a thumbnail for one dropped member
        jpg = sorted((name, data) for name, data in iter_members(f) if name.endswith(".jpg"))[1][1]
    pq.write_table(pa.table({"uid": ["n1" * 12], "image": [jpg]}), run / "dedup" / "thumbs.parquet")
    out = [(u, f"http://dup.invalid/{u}.jpg", "dedup", "exact_duplicate", r) for u, r, _, _ in exact]
    out += [(near[0][0], HOSTILE_URL, "dedup", "near_duplicate", near[0][1])]
    return out + [(near[1][0], "http://dup.invalid/n2.jpg", "dedup", "near_duplicate", near[1][1])]


def _funnel(run: Path, n_kept: int) -> dict:
    rejects = pq.read_table(run / "rejects", columns=["stage", "reason"])
    rows = rejects.group_by(["stage", "reason"]).aggregate([([], "count_all")]).to_pylist()
    rows.sort(key=lambda r: (-r["count_all"], r["stage"], r["reason"]))
    by_reason = [{"stage": r["stage"], "reason": r["reason"], "rows": r["count_all"]} for r in rows]
    n = rejects.num_rows
    return {"input_rows": n + n_kept, "kept": n_kept, "rejected": n, "by_reason": by_reason}


def _add_training_and_eval(run: Path) -> None:
    import pyarrow.fs as pafs

    from evaluation.report import write_results
    from training.metrics import RunLog

    log = RunLog(pafs.LocalFileSystem(), str(run / "train"), tensorboard=False)
    for step in range(4, 44, 4):
        row = {"step": step, "epoch": step // 20, "samples_seen": 32 * step, "loss/contrastive": 3.4 / step**0.3}
        log.write(row | {"train/lr": 2e-3 * min(1, step / 5), "train/logit_scale": 14.3, "perf/samples_per_s": 80.0})
    log.close()
    results = {"model": "clipforge-debug", "checkpoint": str(run / "train" / "export"), "results": [
        {"benchmark": "digits", "task": "zeroshot_classification", "n_samples": 360,
         "metrics": {"acc1": 0.412, "acc5": 0.803, "mean_per_class_recall": 0.405}},
        {"benchmark": "digits", "task": "linear_probe", "n_samples": 360, "metrics": {"acc1": 0.9, "C": 3.16}},
    ]}  # fmt: skip
    write_results(results, run / "eval")


@pytest.fixture(scope="module")
def image_run(text_run, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("image_run")
    run = tmp / "run"
    shutil.copytree(text_run, run)
    shards = _add_shards(run, tmp)
    kept = [u for f in sorted((run / "shards").glob("*.parquet")) for u in pq.read_table(f)["uid"].to_pylist()]
    rows = _add_dedup(run, kept)
    rows += [(f"d{i:023d}", f"http://web.invalid/{i}.jpg", "download", "http_error", ("404", "410")[i % 3 // 2])
             for i in range(9)]  # fmt: skip
    rows += [(f"s{i:023d}", f"http://web.invalid/s{i}.jpg", "download", "http_5xx", "503") for i in range(3)]
    rows += [(f"t{i:023d}", f"http://web.invalid/t{i}.jpg", "download", "timeout", None) for i in range(2)]
    rows += [("o" * 24, "http://web.invalid/o.jpg", "download", "opt_out", "noai")]
    rows += [(f"i{i:023d}", f"http://web.invalid/i{i}.jpg", "images", "too_small", "20x20") for i in range(2)]
    pq.write_table(_rejects(rows), run / "rejects" / "image-fixture.parquet")
    manifest = json.loads((run / "manifest.json").read_text())
    funnel = _funnel(run, len(kept))
    manifest.update(kind="webdataset_shards", shards=shards, download={"rows": 130, "parts": 2})
    manifest["counts"] = {"input_rows": funnel["input_rows"], "kept": len(kept), "rejected": funnel["rejected"]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "stats" / "funnel.json").write_text(json.dumps(funnel))
    _add_training_and_eval(run)
    return run


# --- helpers: Chromium ---------------------------------------------------------------------------------------------
HOOK = """<script>window.__errs=[];
addEventListener('error',function(e){__errs.push('error: '+(e.message||(e.target&&(e.target.src||e.target.href))))},true);
document.addEventListener('securitypolicyviolation',function(e){__errs.push('csp: '+e.violatedDirective+' '+e.blockedURI)});
['error','warn'].forEach(function(k){var f=console[k];console[k]=function(){__errs.push(k+': '+[].join.call(arguments,' '));f.apply(console,arguments)}});
addEventListener('load',function(){var p=document.createElement('pre');p.id='__harness';
p.textContent=JSON.stringify({errs:__errs,title:document.title,funnel:document.querySelectorAll('#funnel .fbar').length});
document.body.appendChild(p)});</script>"""  # noqa: E501
"""Injected before the page's CSP meta (a meta CSP governs only what follows it): records script errors, failed or
blocked loads and console errors/warnings into the DOM once the page has loaded."""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run `bash scripts/sysdeps.sh` (Debian package `chromium`)")
    return exe


def load_in_chromium(page: Path, tmp: Path) -> tuple[dict, list[str]]:
    """Load `page` with the error hook injected; returns (hook record, Chromium's CONSOLE log lines)."""
    text = page.read_text(encoding="utf-8")
    harness = tmp / f"harness-{page.stem}.html"
    harness.write_text(text.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + HOOK, 1), encoding="utf-8")
    cmd = [chromium(), *CHROMIUM_FLAGS, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    out = subprocess.run([*cmd, "--dump-dom", harness.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__harness">(.*?)</pre>', out.stdout, re.S)
    assert m, f"the page did not finish loading in Chromium: {out.stderr[-2000:]}"
    import html

    return json.loads(html.unescape(m.group(1))), [line for line in out.stderr.splitlines() if ":CONSOLE" in line]


def screenshot(page: Path, png: Path) -> Image.Image:
    cmd = [chromium(), *CHROMIUM_FLAGS, "--hide-scrollbars", "--window-size=1280,1400", f"--screenshot={png}"]
    out = subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert png.exists(), out.stderr[-2000:]
    return Image.open(png).convert("RGB")


def funnel_pixels(img: Image.Image) -> int:
    rgb = tuple(int(FUNNEL_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    return int(np.all(np.asarray(img) == np.asarray(rgb, np.uint8), axis=-1).sum())


REF_ATTRS = {"src", "href", "srcset", "action", "formaction", "poster", "data", "xlink:href", "background", "ping"}


def external_refs(page: str) -> list[str]:
    """Every reference in the page (and in the SVG figures it embeds) that is not a data: URI or a #fragment."""
    from html.parser import HTMLParser

    refs: list[str] = []

    class Refs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for k, v in attrs:
                if k in REF_ATTRS and v is not None:
                    refs.extend(v.split(",") if k == "srcset" else [v])
                if k == "style" and v:
                    refs.extend(re.findall(r"url\(\s*['\"]?([^'\")]*)", v))
                if k == "http-equiv" and v and v.lower() == "refresh":
                    refs.append("meta refresh")

    Refs().feed(page)
    refs += re.findall(r"url\(\s*['\"]?([^'\")]*)", "".join(re.findall(r"<style>(.*?)</style>", page, re.S)))
    refs += re.findall(r"@import", page)
    import base64

    for svg in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", page):
        body = base64.b64decode(svg).decode()
        refs += re.findall(r'(?:href|src)="([^"]*)"', body) + re.findall(r"url\(([^)]*)\)", body)
    return [r.strip() for r in refs if not (r.strip().startswith("data:") or r.strip().startswith("#"))]


# --- tests ---------------------------------------------------------------------------------------------------------
def test_text_only_run_report(text_run):
    uri = write_report(str(text_run))
    page = Path(uri).read_text(encoding="utf-8")
    funnel = json.loads((text_run / "stats" / "funnel.json").read_text())
    assert uri == str(text_run / "report.html")
    assert f"<b>input</b> {funnel['input_rows']:,}" in page and f"<b>kept</b> {funnel['kept']:,}" in page
    for r in funnel["by_reason"]:
        assert f"{r['reason']} {r['rows']:,}" in page, r  # each reason's drop is on its funnel step
    for sid in ("download", "dedup", "training", "evaluation"):
        block = re.search(f'<section id="{sid}">(.*?)</section>', page, re.S).group(1)
        assert "Not in this run" in block, sid
    assert "a text-only build has no images" in page
    assert '<section id="extraction">' not in page and "#extraction" not in page  # a build from a plain list
    names = json.loads(Path(yaml_metadata(text_run)).read_text())
    pre = np.load(text_run / "stats" / "entry_counts_pre.npy")
    assert f"<td>{names[int(np.argmax(pre))]}</td>" in page, "the head entry is named from the metadata list"
    assert "data:image/jpeg" not in page and external_refs(page) == []


def yaml_metadata(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["match"]["metadata"]


def test_image_run_report_in_chromium(image_run, tmp_path):
    out = tmp_path / "report.html"
    cli = [sys.executable, "-m", "pipeline.cli", "report", str(image_run), "--out", str(out)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    page = out.read_text(encoding="utf-8")
    assert external_refs(page) == [], "only data: URIs and #anchors may be referenced"
    assert "<script" not in page and "&lt;script&gt;document.title" in page  # hostile captions are text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # and so are hostile URLs
    for needle in ("HTTP 404", "HTTP 410", "HTTP 503", "too_small", "Example near duplicates", "loss/contrastive"):
        assert needle in page, needle
    assert page.count("data:image/jpeg") >= 24 + 4  # the sample grid and the duplicate pairs have thumbnails
    assert "zeroshot_classification" in page and "41.2" in page and "3.16" in page

    record, console = load_in_chromium(out, tmp_path)
    assert record["errs"] == [] and console == [], (record, console)
    assert record["title"].startswith("clipforge report") and record["funnel"] == 2 + len(funnel_stages(image_run))
    assert funnel_pixels(screenshot(out, tmp_path / "shot.png")) > 5000, "the screenshot shows the funnel bars"


def funnel_stages(run: Path) -> set[str]:
    return {r["stage"] for r in json.loads((run / "stats" / "funnel.json").read_text())["by_reason"]}


def test_chromium_checks_can_fail(image_run, tmp_path):
    """Negative controls: the same checks flag a page with a script error, an external image and no funnel."""
    text = Path(write_report(str(image_run), str(tmp_path / "good.html"))).read_text(encoding="utf-8")
    bad = tmp_path / "bad.html"
    broken = '<img src="http://127.0.0.1:9/x.png"><script>undefinedFunction()</script>'
    no_csp = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    bad.write_text(re.sub(r'<section id="funnel">.*?</section>', "", no_csp, flags=re.S).replace("</main>", broken))
    record, console = load_in_chromium(bad, tmp_path)
    assert any("undefinedFunction" in e for e in record["errs"]) and any("127.0.0.1:9" in e for e in record["errs"])
    assert console and record["funnel"] == 0
    assert funnel_pixels(screenshot(bad, tmp_path / "bad.png")) == 0
    assert external_refs(bad.read_text()) == ["http://127.0.0.1:9/x.png"]


def test_report_of_a_run_on_s3(image_run, s3_bucket, tmp_path):
    from pipeline.cli import main

    prefix = f"{s3_bucket}/runs/image"
    for f in image_run.rglob("*"):
        if f.is_file() and f.name != "report.html":
            write_bytes(f"{prefix}/{f.relative_to(image_run)}", f.read_bytes())
    with pytest.raises(SystemExit) as e:
        main(["report", prefix])
    assert e.value.code in (0, None)
    assert f"{prefix}/report.html" in {str(u) for u in list_uris(prefix)}
    page = read_bytes(f"{prefix}/report.html").decode()
    assert f"clipforge report: {prefix}" in page and page.count("data:image/jpeg") >= 24 + 4
    assert "loss/contrastive" in page and "zeroshot_classification" in page and external_refs(page) == []
    local = Path(write_report(str(image_run), str(tmp_path / "local.html"))).read_text()
    assert local.replace(str(image_run), prefix) == page, "the same run gives the same report, local or on S3"
