"""`clipforge extract`: image–text pairs from Common Crawl WAT files on Ray Data, top to bottom.

    preflight      inputs → WAT files (files, directories, globs, s3:// prefixes, `*.paths[.gz]` listings); each
                   opened and checked to be WARC — before anything is written under OUT
    extract_files  one Ray task per file not yet committed: pairs → OUT/work/files/ID.parquet, then the commit
                   marker OUT/work/files/ID.json (its counts)
    dedup_pairs    barrier: exact (url, caption) duplicates across the whole run → one row with `pages`
                   → OUT/candidates/*.parquet (url, caption, caption_source, page_url, pages: what `clipforge build
                   --set input.path=OUT/candidates` reads as it is)
    stats          OUT/stats/extract.json, summed from the markers (durable artifacts, not task counters)
    manifest.json  written last: `status: complete` is the commit point; then work/ is removed

A killed run re-run with the same command skips every committed file. See docs/extract.md.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from curation.wat import CANDIDATES_SCHEMA, WatCounts, looks_like_warc
from pipeline.build_checks import config_differences
from pipeline.core.config import config_hash, validate_config
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, Uri, filesystem, list_uris, open_write, read_bytes
from pipeline.extract_config import ExtractConfig
from pipeline.ingest import expand_path
from pipeline.rundir import RunDir, enter_run
from pipeline.stages.base import StageSpec, apply_stage
from pipeline.stages.wat import WatFilesConfig, collapse_block, extract_files, file_id
from pipeline.stats import package_versions

Say = Callable[[str], None]
WAT_SUFFIXES = (".warc.wat.gz", ".wat.gz", ".warc.wat", ".wat")
LISTING = re.compile(r"\.paths(\.gz)?$")
HEAD_BYTES = 1 << 16
DROP_REASONS = ("no_text", "bad_scheme", "bad_url", "bad_record")
KIND = "wat_pairs"
"""manifest.json's `kind` of a `clipforge extract` output."""


def resolve_inputs(cfg: ExtractConfig) -> list[str]:
    """The WAT files `cfg.input` names, in order, each once. A missing path, a glob matching nothing, a directory
    without a WAT file or an empty listing is a `ClipforgeError` naming it."""
    files: list[str] = []
    for item in cfg.input:
        if LISTING.search(item):
            files += read_listing(item, cfg)
            continue
        found, directory = expand_path(item, cfg.s3, "input")
        if directory:
            found = [f for f in found if f.endswith(WAT_SUFFIXES)]
            if not found:
                raise ClipforgeError(f"input {item!r} is a directory with no WAT file ({', '.join(WAT_SUFFIXES)})")
        files += found
    return list(dict.fromkeys(files))


def read_listing(listing: str, cfg: ExtractConfig) -> list[str]:
    """The files of a Common Crawl listing (one path a line, gzipped or not): relative lines joined to
    `extract.base_url`, absolute ones (s3://, file://, /...) as they are."""
    try:
        data = read_bytes(listing, cfg.s3)
    except FileNotFoundError:
        raise ClipforgeError(f"input listing {listing!r} does not exist") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ClipforgeError(f"input listing {listing!r} is not a readable gzip file: {e}") from None
    lines = [x.strip() for x in data.decode("utf-8", errors="replace").splitlines()]
    lines = [x for x in lines if x and not x.startswith("#")]
    if not lines:
        raise ClipforgeError(f"input listing {listing!r} lists no file")
    base = Uri.parse(cfg.extract.base_url)
    return [x if "://" in x or x.startswith("/") else str(base.join(x)) for x in lines]


def check_inputs(files: list[str], cfg: ExtractConfig) -> None:
    """Open each file and check that it starts as a WARC file; the first problem is a `ClipforgeError` naming it."""

    def problem(uri: str) -> str | None:
        fs, path = filesystem(uri, cfg.s3)
        try:
            with fs.open_input_stream(path, compression=None) as f:
                head = f.read(HEAD_BYTES)
        except FileNotFoundError:
            return f"input file {uri!r} does not exist"
        except OSError as e:
            return f"cannot read input file {uri!r}: {str(e).splitlines()[0][:200]}"
        if not looks_like_warc(head):
            what = "is empty" if not head else f"does not start as a WARC file (it starts with {head[:16]!r})"
            return f"input file {uri!r} {what}; clipforge extract reads WAT files (.warc.wat.gz)"
        return None

    with ThreadPoolExecutor(16) as pool:
        for found in pool.map(problem, files):
            if found:
                raise ClipforgeError(found)


def preflight(cfg: ExtractConfig) -> list[str]:
    """The input files, checked (before anything is written)."""
    files = resolve_inputs(cfg)
    if cfg.extract.check_inputs:
        check_inputs(files, cfg)
    return files


def output_state(cfg: ExtractConfig, run: RunDir, overwrite: bool) -> str:
    """new, overwrite, resume or complete; refuses (`ClipforgeError`) an output that is not empty and not an
    extract run, or an extract run started with another config (without `overwrite`)."""
    if run.is_empty():
        return "new"
    where = f"output {cfg.output!r}"
    if run.is_file():
        raise ClipforgeError(f"{where} is a file; point --output at a new or empty directory")
    old = _recorded(run)
    if old is None or not (run.exists("work") or run.exists("manifest.json")):
        raise ClipforgeError(
            f"{where} is not empty and is not a clipforge extract run (no valid config.yaml with work/ or "
            "manifest.json). Nothing was written or deleted: point --output at a new or empty directory."
        )
    if overwrite:
        return "overwrite"
    if config_hash(old) != config_hash(cfg):
        differ = "; ".join(config_differences(old, cfg)[:8])
        raise ClipforgeError(
            f"{where} was started with a different config ({differ}). Re-run with the same inputs and settings to "
            "resume it, or pass --overwrite to start again."
        )
    complete = run.exists("manifest.json") and run.read_json("manifest.json").get("status") == "complete"
    return "complete" if complete else "resume"


def _recorded(run: RunDir) -> ExtractConfig | None:
    import yaml

    try:
        data = yaml.safe_load(read_bytes(run.path("config.yaml"), run.s3))
        return validate_config(ExtractConfig, data, "config.yaml") if isinstance(data, dict) else None
    except (OSError, yaml.YAMLError, ClipforgeError):
        return None


def open_run(cfg: ExtractConfig, say: Say, overwrite: bool = False) -> dict | None:
    """The manifest of an already complete run (same config), else None after recording config.yaml and work/."""
    run = RunDir(cfg.output, cfg.s3)
    return enter_run(run, cfg, output_state(cfg, run, overwrite), say, "extract again")


def committed(run: RunDir) -> dict[str, dict]:
    """{file id: its marker} of the files an earlier (or this) run committed."""
    markers = [u for u in list_uris(run.path("work", "files"), run.s3) if u.name.endswith(".json")]
    return {u.name[: -len(".json")]: json.loads(read_bytes(u, run.s3)) for u in markers}


def extract_step(cfg: ExtractConfig, files: list[str], say: Say) -> list[dict]:
    """Run one task per uncommitted file; returns the files that failed ({file, error})."""
    import ray

    run = RunDir(cfg.output, cfg.s3)
    done = committed(run)
    todo = [f for f in files if file_id(f) not in done]
    say(
        f"extract_files: {len(files)} files; {len(files) - len(todo)} committed by an earlier run, {len(todo)} to read"
    )
    if not todo:
        return []
    items = [{"file": f, "id": file_id(f)} for f in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    config = WatFilesConfig(work_dir=run.path("work"), s3=cfg.s3, prefilter=cfg.extract.prefilter)
    extra = {"num_cpus": cfg.extract.cpus_per_file}
    results = apply_stage(ds, StageSpec(extract_files, config, batch_size=1, extra=extra)).take_all()
    return [{"file": r["file"], "error": r["error"]} for r in results if r["error"]]


def dedup_pairs(cfg: ExtractConfig, files: list[str]) -> int:
    """Barrier: every committed file's pairs, exact (url, caption) duplicates collapsed with a `pages` count, written
    to OUT/candidates/ (replaced as a whole). Returns the rows written."""
    import pyarrow.parquet as pq
    import ray
    from ray.data.context import ShuffleStrategy

    run = RunDir(cfg.output, cfg.s3)
    done = committed(run)
    parts = [run.path("work", "files", f"{file_id(f)}.parquet") for f in files if file_id(f) in done]
    run.remove("candidates")
    if sum(done[file_id(f)]["pairs"] for f in files if file_id(f) in done) == 0:
        with open_write(run.path("candidates", "part-empty.parquet"), cfg.s3) as f:
            pq.write_table(CANDIDATES_SCHEMA.empty_table(), f)
        return 0
    fs, _ = run.fs("work")
    ds = ray.data.read_parquet([filesystem(p, cfg.s3)[1] for p in parts], filesystem=fs)
    ctx = ds.context
    if ctx.shuffle_strategy in (ShuffleStrategy.HASH_SHUFFLE, ShuffleStrategy.SHUFFLE_V2):
        grouped = ds.repartition(ctx.default_hash_shuffle_parallelism, keys=["url", "caption"], sort=True)
    else:
        grouped = ds.sort(["url", "caption"])
    collapsed = apply_stage(grouped, StageSpec(collapse_block, batch_size=None))
    out_fs, out_path = run.fs("candidates")
    collapsed.write_parquet(out_path, filesystem=out_fs)
    return ray.data.read_parquet(out_path, filesystem=out_fs).count()


def extract_stats(files: list[str], done: dict[str, dict], errors: list[dict], candidates: int) -> dict:
    """stats/extract.json: files, records, links, pairs and drops by reason, summed over the committed files."""
    totals = WatCounts().as_dict()
    for f in files:
        for key in totals:
            totals[key] += done.get(file_id(f), {}).get(key, 0)
    return {
        "files": len(files),
        "files_committed": sum(file_id(f) in done for f in files),
        "records": totals["records"],
        "records_parsed": totals["records_parsed"],
        "records_with_links": totals["records_with_links"],
        "img_links": totals["img_links"],
        "pairs": totals["pairs"],
        "candidates": candidates,
        "duplicates_collapsed": totals["pairs"] - candidates,
        "dropped": {reason: totals[reason] for reason in DROP_REASONS},
        "truncated_files": [f for f in files if done.get(file_id(f), {}).get("truncated")],
        "cpu_s_in_files": round(sum(done.get(file_id(f), {}).get("cpu_s", 0.0) for f in files), 2),
        "errors": errors,
    }


def execute(cfg: ExtractConfig, files: list[str], say: Say = print) -> dict:
    """The steps of an opened run, then manifest.json (the commit point); returns the manifest."""
    run = RunDir(cfg.output, cfg.s3)
    start = time.monotonic()
    errors = extract_step(cfg, files, say)
    t1 = time.monotonic()
    candidates = dedup_pairs(cfg, files)
    t2 = time.monotonic()
    stats = extract_stats(files, committed(run), errors, candidates)
    run.write_json("stats/extract.json", stats)
    say(
        f"dedup_pairs: {stats['pairs']} pairs from {stats['files_committed']} files -> {candidates} candidates "
        f"({stats['duplicates_collapsed']} exact duplicates collapsed)"
    )
    manifest = {
        "status": "incomplete" if errors else "complete",
        "kind": KIND,
        "counts": {"files": len(files), "pairs": stats["pairs"], "candidates": candidates, "errors": len(errors)},
        "outputs": {"candidates": "candidates/", "stats": "stats/extract.json"},
        "config_hash": config_hash(cfg),
        "seconds": round(time.monotonic() - start, 1),
        "seconds_by_step": {"extract_files": round(t1 - start, 1), "dedup_pairs": round(t2 - t1, 1)},
        "versions": package_versions(),
    }
    run.write_json("manifest.json", manifest)
    if not errors:
        run.remove("work")  # after the commit point: a kill here leaves a complete run with a stale work/
    return manifest


def extract(cfg: ExtractConfig, say: Say = print, overwrite: bool = False) -> dict:
    """Check the inputs, open the run and execute it (Ray must be up); a complete run with the same config is
    returned as it is. What `clipforge extract` does, as a function."""
    files = preflight(cfg)
    done = open_run(cfg, say, overwrite)
    return done if done is not None else execute(cfg, files, say)


def extract_source(input_path: str, s3: S3Options | None = None) -> dict | None:
    """What a build records of its input when `input_path` is a complete `clipforge extract` output's candidates
    (OUT/candidates, or one file in it): {"extract": OUT, "stats": OUT/stats/extract.json}; else None (a plain list,
    a glob, an unreadable location)."""
    try:
        uri = Uri.parse(input_path.rstrip("/"))
        for _ in range(2):
            uri, name = _parent(uri)
            if name != "candidates":
                continue
            run = RunDir(str(uri), s3)
            manifest = run.read_json("manifest.json") if run.exists("manifest.json") else {}
            if (
                manifest.get("kind") == KIND
                and manifest.get("status") == "complete"
                and run.exists("stats", "extract.json")
            ):
                return {"extract": str(uri), "stats": run.read_json("stats/extract.json")}
            return None
    except (ClipforgeError, OSError, ValueError):
        return None
    return None


def _parent(uri: Uri) -> tuple[Uri, str]:
    """(the location above `uri`, `uri`'s last segment)."""
    head, _, name = uri.path.rstrip("/").rpartition("/")
    if not uri.is_s3 and not head:
        head = "/"
    return Uri(uri.scheme, head, uri.bucket), name
