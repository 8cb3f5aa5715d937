"""`clipforge demo`: the whole loop on the embedded default, on one machine; no algorithms here.

    synthetic web (generated, served on 127.0.0.1; its crawl as WAT files; captions in English and 8 other
    languages) + worldwide metadata (`clipforge metadata build --languages`: one list per language, built offline)
    → `clipforge extract` (web/crawl/*.warc.wat.gz → RUN_ROOT/extract/candidates; skipped with --from-list, which
      builds from the web's candidate list web/candidates.parquet as it is)
    → `clipforge build` (configs/demo.yaml: text, match, download, dedup, balance → shards; worldwide: every
      caption matched against its own language's list, balanced with t_lang; Thai has no list and is rejected)
    → `clipforge train` (configs/train.yaml: clipforge-tiny-rn on Ray Train, one CPU worker)
    → `clipforge eval` (digits + the web's held-out split, zero-shot, English class names)
    → `clipforge report` (RUN/report.html, with the training curves and the evaluation table)

Each step is the same code path the CLI command runs. With `--s3` the run directory, the training run and the
evaluation results live on a local S3 server started for the demo, and the report reads them from there; with
`--s3-endpoint URL` they go to bucket `clipforge-demo` (created if absent) on the S3-compatible server at URL instead,
which outlives the demo (credentials and region from the usual AWS environment); the extract output goes beside the
run (ROOT/extract). The summary (also WORKDIR/demo_summary.json) gives the extraction and build funnels, the
accounting check, the model's accuracy against chance on both benchmarks and the report's path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.build_config import BuildConfig

REPO = Path(__file__).resolve().parents[2]
DEMO_BUILD = REPO / "configs" / "demo.yaml"
DEMO_TRAIN = REPO / "configs" / "train.yaml"
TRAIN_NAME = "demo-tiny"
BUCKET = "clipforge-demo"
CRAWL_FILES = 4
"""WAT files the demo's web writes its crawl into (web/crawl/): one Ray task each in the extract step."""
DEMO_HOSTS = 100
"""Virtual hosts of the demo's web (site-000.web.test ...): the robots.txt variants sit on the 9 smallest, which
hold ~5 % of the rows (infra/localweb/hosts.py)."""
CRAWL_DIR = "crawl"
DEMO_LANGUAGES = ("en", "de", "fr", "es", "ru", "zh", "ja", "ar")
"""The demo's metadata languages: English and every language of the synthetic web's captions with an offline list
(all but Thai, which the build rejects as `no_metadata_language`)."""


def train_name(steps: int) -> str:
    """The demo's training run for `steps` steps (a re-run with other steps trains anew beside it)."""
    return f"{TRAIN_NAME}-{steps}"


def say(msg: str) -> None:
    print(f"clipforge demo: {msg}", flush=True)


def run_demo(
    workdir: Path,
    use_s3: bool = False,
    size: int = 4000,
    steps: int = 900,
    verbose: bool = False,
    s3_endpoint: str | None = None,
    from_list: bool = False,
    languages: tuple[str, ...] | list[str] = DEMO_LANGUAGES,
) -> dict[str, Any]:
    """Run the demo and return its summary (also written to WORKDIR/demo_summary.json). `s3_endpoint` (implies
    `use_s3`): use the S3-compatible server there instead of starting one; a bad URL is a `ClipforgeError`.
    `from_list`: build from web/candidates.parquet instead of extracting the web's crawl (web/crawl/) first.
    `languages`: the metadata's languages (a worldwide directory; `["en"]` alone: the English-only list)."""
    if s3_endpoint is not None:
        s3_endpoint = check_endpoint(s3_endpoint)
        use_s3 = True
    from infra.localweb.config import WebConfig
    from infra.localweb.generate import generate
    from infra.localweb.handle import serve_in_thread
    from pipeline.core.ray_setup import init_ray

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.monotonic()
    web_dir = workdir / "web"
    with _timed(timings, "web"):
        # A short slow-fault trickle keeps the demo quick; it is still slower than the fetch deadline. The candidates
        # live on DEMO_HOSTS virtual hosts (configs/demo.yaml resolves *.web.test to 127.0.0.1), each with its
        # robots.txt; the crawl-delay one is the smallest, with a short delay, so politeness costs the demo seconds.
        web_cfg = WebConfig(
            seed=0,
            n_candidates=size,
            slow_seconds=12.0,
            crawl_files=CRAWL_FILES,
            virtual_hosts=DEMO_HOSTS,
            crawl_delay_s=0.1,
        )
        generate(web_cfg, web_dir)
    with _timed(timings, "metadata"):
        metadata = demo_metadata(workdir, languages)
    # The local Ray recycles idle task processes down to its soft limit (= CPUs) between training epochs; each
    # new one re-imports open_clip. A few warm spares make epochs much cheaper on 2 cores (docs/training.md).
    os.environ.setdefault("RAY_num_workers_soft_limit", "8")
    with serve_in_thread(web_dir) as web, _storage(workdir, use_s3, s3_endpoint) as root:
        say(f"synthetic web of {size} candidates at {web.base_url}; metadata {metadata}")
        info = init_ray(verbose=verbose)
        say(f"Ray: {'local' if info.local else 'cluster'} at {info.address}, {info.num_cpus:g} CPUs")
        run_uri = f"{root}/run"
        extracted, input_path = None, web_dir / "candidates.parquet"
        if not from_list:
            with _timed(timings, "extract"):
                extracted = _extract(web_dir / CRAWL_DIR, f"{root}/extract")
            input_path = f"{root}/extract/candidates"
        with _timed(timings, "build"):
            manifest = _build(web_dir, metadata, run_uri, size, input_path)
        with _timed(timings, "train"):
            train = _train(run_uri, steps, web_dir)
        with _timed(timings, "eval"):
            results = _evaluate(train.export, web_dir, run_uri, workdir)
        with _timed(timings, "report"):
            from pipeline.report import write_report

            report = write_report(run_uri, train_run=train.run_dir, eval_dir=f"{run_uri}/eval")
    timings["total"] = round(time.monotonic() - t_all, 1)
    summary = _summary(manifest, train, results, report, run_uri, timings, extracted)
    (workdir / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _print_summary(summary, workdir)
    return summary


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str):
    t0 = time.monotonic()
    yield
    timings[name] = round(time.monotonic() - t0, 1)


def demo_metadata(workdir: Path, languages: tuple[str, ...] | list[str] = DEMO_LANGUAGES) -> Path:
    """The demo's metadata, built offline on the first call and reused after: WORKDIR/metadata/ with one list per
    language (`clipforge metadata build --languages`: English from numbers, WordNet, wordfreq unigrams and PMI
    bigrams, the others from wordfreq), or WORKDIR/metadata.json (English only) when `languages` is just en. A
    directory built for other languages is rebuilt."""
    from curation.metadata import MetadataConfig, build_metadata, write_metadata
    from curation.metadata_worldwide import SOURCES_FILE, WorldwideMetadataConfig, build_worldwide

    languages = list(dict.fromkeys(languages))
    if languages == ["en"]:
        path = workdir / "metadata.json"
        if not path.exists():
            cfg = MetadataConfig(output=path, target=500_000)
            write_metadata(build_metadata(cfg), cfg)
        return path
    path = workdir / "metadata"
    sources = path / SOURCES_FILE
    if not sources.is_file() or sorted(json.loads(sources.read_text())["languages"]) != sorted(languages):
        shutil.rmtree(path, ignore_errors=True)  # no list of a language no longer asked for may stay behind
        cfg = WorldwideMetadataConfig(output=path, languages=languages, target=500_000)
        build_worldwide(cfg, say=lambda line: say(f"metadata {line}"))
    return path


def check_endpoint(url: str) -> str:
    """`url` without a trailing slash if it is an `http://` or `https://` server root, else a `ClipforgeError`."""
    from urllib.parse import urlsplit

    from pipeline.core.errors import ClipforgeError

    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise ClipforgeError(f"--s3-endpoint {url!r} is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ClipforgeError(
            f"--s3-endpoint {url!r} must be an http:// or https:// server root, e.g. http://127.0.0.1:9000"
        )
    return f"{parts.scheme}://{parts.netloc}"


def endpoint_env(url: str) -> dict[str, str]:
    """The variables that point boto3 and clipforge's storage at `url`; credentials and region stay as they are in
    the environment. Checksums only when required (what S3-compatible servers accept) unless already set."""
    env = {"AWS_ENDPOINT_URL": url, "AWS_ENDPOINT_URL_S3": url}
    for var in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        env[var] = os.environ.get(var) or "when_required"
    return env


def _ensure_bucket(name: str) -> str:
    """Create bucket `name` on the endpoint of the environment unless it exists; return `s3://name`."""
    from botocore.exceptions import ClientError

    from pipeline.core.storage import Uri, exists, s3_client
    from pipeline.core.storage.s3 import s3_errors

    uri = Uri.parse(f"s3://{name}")
    if not exists(str(uri)):
        client = s3_client()
        region = client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": name}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with s3_errors(uri):
            try:
                client.create_bucket(**kwargs)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise
    return str(uri)


@contextlib.contextmanager
def _storage(workdir: Path, use_s3: bool, endpoint: str | None = None):
    """The root of the demo's outputs: WORKDIR locally, a bucket on the S3-compatible server at `endpoint`, or a
    bucket on a local S3 server started for the demo."""
    if not use_s3:
        yield str(workdir)
        return
    if endpoint is not None:
        with _env(endpoint_env(endpoint)):
            root = _ensure_bucket(BUCKET) + "/demo"
            say(f"S3 at {endpoint}; outputs go to {root}")
            yield root
        return
    from infra.locals3.server import LocalS3

    with LocalS3() as s3:
        root = s3.create_bucket(BUCKET) + "/demo"
        say(f"local S3 at {s3.endpoint_url}; outputs go to {root}")
        with _env(s3.env()):
            yield root


@contextlib.contextmanager
def _env(values: dict[str, str]):
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


def demo_build_config(
    web_dir: Path,
    metadata: Path,
    run_uri: str,
    size: int,
    overrides: list[str] | None = None,
    input_path: str | Path | None = None,
) -> BuildConfig:
    """The demo's `BuildConfig` (configs/demo.yaml) for the synthetic web in `web_dir`, writing to `run_uri`, reading
    `input_path` (default: the web's candidate list); `overrides` (`--set` strings, e.g. `stages=[text,match]`)
    apply last."""
    from pipeline.build_config import BuildConfig
    from pipeline.core.config import load_config

    sets = json.dumps([{"name": "synthetic", "path": str(web_dir / "eval" / "synthetic.parquet")}])
    return load_config(
        BuildConfig,
        DEMO_BUILD,
        [
            f"input.path={input_path or web_dir / 'candidates.parquet'}",
            f"output={run_uri}",
            f"match.metadata={metadata}",
            f"dedup.eval_sets={sets}",
            # configs/demo.yaml's 500 per shard at the default size; a small demo still writes several shards.
            f"shards.samples_per_shard={max(50, min(500, size // 8))}",
            *(overrides or []),
        ],
    )


def _extract(crawl: Path, out_uri: str) -> dict:
    """`clipforge extract crawl --output out_uri` (one Ray task per WAT file); returns stats/extract.json."""
    from pipeline.core.config import validate_config
    from pipeline.core.storage import read_bytes
    from pipeline.extract import extract
    from pipeline.extract_config import ExtractConfig

    cfg = validate_config(ExtractConfig, {"input": [str(crawl)], "output": out_uri}, "demo extract")
    manifest = extract(cfg, say=lambda m: say(f"extract: {m}"))
    return {**json.loads(read_bytes(f"{out_uri}/{manifest['outputs']['stats']}")), "extract": out_uri}


def _build(web_dir: Path, metadata: Path, run_uri: str, size: int, input_path: str | Path) -> dict:
    from pipeline.build import build

    cfg = demo_build_config(web_dir, metadata, run_uri, size, input_path=input_path)
    return build(cfg, say=lambda m: say(f"build: {m}"))


def _train(run_uri: str, steps: int, web_dir: Path):
    from pipeline.core.config import load_config
    from training.config import TrainConfig
    from training.console import progress_line
    from training.trainer import run_training

    cfg = load_config(
        TrainConfig,
        DEMO_TRAIN,
        [
            f"name={train_name(steps)}",  # --steps changes what is trained: another run, not a resume
            f"data.manifest={run_uri}",
            f"storage_path={run_uri}/train",
            f"steps={steps}",
            f"optim.warmup_steps={max(10, steps // 10)}",
            f"checkpoint.every_steps={max(50, steps // 2)}",
            # zero-shot curves in the report: digits and the web's held-out split, ~6 points and the last step,
            # on a 400-image subset each (the full sets are evaluated on the export afterwards)
            f"eval.every_steps={max(50, steps // 6)}",
            "eval.benchmarks=" + json.dumps(["digits", f"synthetic:{web_dir / 'eval'}"]),
            "eval.max_images=400",
        ],
    )
    last = [0.0]

    def progress(m: dict) -> None:  # one line every ~20 s keeps the terminal readable
        if time.monotonic() - last[0] > 20 or m.get("step") == steps:
            last[0] = time.monotonic()
            say(f"train: {progress_line(m)}")

    return run_training(cfg, on_progress=progress)


def _evaluate(export: str, web_dir: Path, run_uri: str, workdir: Path) -> dict:
    """Zero-shot on digits and the web's held-out split; results.json/.md go to RUN/eval (local or S3)."""
    from evaluation.config import EvalConfig
    from evaluation.report import write_results
    from evaluation.run import evaluate
    from pipeline.core.storage import Uri, read_bytes, write_bytes

    remote = Uri.parse(run_uri).scheme == "s3"
    model_dir = Path(export)
    if Uri.parse(export).scheme == "s3":  # open_clip's local-dir loader needs files on disk
        model_dir = workdir / "cache" / "export"
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in ("open_clip_config.json", "open_clip_model.safetensors"):
            (model_dir / name).write_bytes(read_bytes(f"{export}/{name}"))
    cfg = EvalConfig(
        model=f"local-dir:{model_dir}",
        benchmarks=["digits", f"synthetic:{web_dir / 'eval'}"],
        tasks=["zeroshot_classification"],
        output_dir=str(workdir / "cache" / "eval" if remote else Path(run_uri) / "eval"),
    )
    results = evaluate(cfg)
    out = write_results(results, cfg.output_dir, cfg)
    if remote:
        for name in ("results.json", "results.md", "config.yaml"):
            write_bytes(f"{run_uri}/eval/{name}", (out / name).read_bytes())
    return results


def _summary(
    manifest: dict, train, results: dict, report: str, run_uri: str, timings: dict, extracted: dict | None = None
) -> dict:
    accuracy = {}
    for record in results["results"]:
        n_classes = record.get("n_classes") or 1
        accuracy[record["dataset"]] = {
            "acc1": round(record["metrics"]["acc1"], 4),
            "acc5": round(record["metrics"]["acc5"], 4),
            "chance_acc1": round(1 / n_classes, 4),
            "n_classes": n_classes,
            "n_samples": record.get("n_samples"),
        }
    extract = None
    if extracted is not None:
        keys = ("extract", "files", "records", "records_with_links", "img_links", "pairs", "dropped")
        extract = {k: extracted.get(k) for k in (*keys, "duplicates_collapsed", "candidates")}
    return {
        "run": run_uri,
        "report": report,
        "input": "crawl" if extract is not None else "list",
        "extract": extract,
        "counts": manifest.get("counts", {}),
        "shards": len(manifest.get("shards", [])),
        "balance": {k: manifest.get("balance", {}).get(k) for k in ("t", "t_mode", "entries_matched", "t_by_lang")},
        "train": {
            "steps": train.steps,
            "samples_seen": train.samples_seen,
            "final_loss": train.final_loss,
            "export": train.export,
            "world_size": train.world_size,
        },
        "zeroshot": accuracy,
        "seconds": timings,
    }


def _print_summary(s: dict, workdir: Path) -> None:
    e = s.get("extract")
    if e:
        drops = ", ".join(f"{k} {v}" for k, v in (e["dropped"] or {}).items())
        say(
            f"extract: {e['files']} WAT files, {e['records']} records ({e['records_with_links']} with links), "
            f"{e['img_links']} IMG links -> {e['pairs']} pairs (dropped: {drops}) -> {e['candidates']} candidates "
            f"({e['duplicates_collapsed']} exact duplicates collapsed)"
        )
    c = s["counts"]
    say(
        f"build: {c.get('input_rows')} candidates -> {c.get('kept')} kept in {s['shards']} shards, "
        f"{c.get('rejected')} rejected (every one with a stage and reason; accounting checked)"
    )
    t_by_lang = s["balance"].get("t_by_lang")
    if t_by_lang:
        say("worldwide: balanced per language, t_lang " + ", ".join(f"{k} {v:g}" for k, v in t_by_lang.items()))
    t = s["train"]
    loss = f"{t['final_loss']:.3f}" if t["final_loss"] is not None else "n/a"
    say(f"train: {t['steps']} steps, {t['samples_seen']} samples seen, final loss {loss}")
    for name, a in s["zeroshot"].items():
        ratio = a["acc1"] / a["chance_acc1"] if a["chance_acc1"] else 0
        say(
            f"zero-shot {name}: acc1 {a['acc1']:.1%} (chance {a['chance_acc1']:.1%}, {ratio:.1f}x), "
            f"acc5 {a['acc5']:.1%} over {a['n_samples']} images"
        )
    secs = ", ".join(f"{k} {v:g}s" for k, v in s["seconds"].items())
    say(f"time: {secs}")
    say(f"report: {s['report']}")
    say(f"summary: {workdir / 'demo_summary.json'}")
