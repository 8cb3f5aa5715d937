"""Read what the curation report shows from a run directory (local or s3://): every input optional but the manifest.

Each artifact is read once through `pipeline.core.storage` / pyarrow filesystems; a missing artifact leaves its field
None (the report then says "not in this run"). Picks (sample grid, duplicate pairs) are seeded, so the same run
and seed give the same report. Nothing here renders HTML.

Reads (paths relative to RUN):
  manifest.json (required), config.yaml (`match.metadata` → entry names), stats/funnel.json, stats/extract.json
  (the extraction funnel the build copied from its `clipforge extract` input),
  stats/politeness.json + stats/hosts.parquet (the download's requests per host, robots.txt, opt-outs),
  stats/entry_counts_pre.npy + stats/entry_counts_post.npy (+ optional entry_counts_dedup.npy; manifest.balance.t
  and t_pre), rejects/*.parquet,
  shards/shard-NNNNNN.parquet sidecars (or curated/*.parquet for a text-only run) and the .tar beside each,
  dedup/{exact,near}.parquet (+ .json summaries, optional dedup/thumbs.parquet: uid, image JPEG bytes),
  dedup/clip_filter.{json,parquet} + clip_filter_thumbs.parquet, dedup/semdedup.{json,parquet} +
  semdedup_thumbs.parquet (the model-based filters' summaries, reject lists and the shown rows' images),
  training: metrics.csv (+ summary.json, identity.json: it must have trained on this build) under --train-run or
  RUN/train/; evaluation: results.json under --eval or
  RUN/eval/.
"""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import yaml

from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, Uri, filesystem, list_uris, read_bytes
from pipeline.core.tar import TarError, iter_members
from pipeline.report_summaries import DOWNLOAD_STAGES, pick_pairs, pick_rows
from pipeline.rundir import RunDir
from pipeline.stages.model_thumbs import duplicate_groups, lowest_scores

SIDECAR_COLUMNS = ["uid", "key", "url", "caption", "lang", "width", "height", "orig_width", "orig_height"]
DEDUP_STEPS = ("exact", "near")
HOSTS_SHOWN = 20  # stats/hosts.parquet is sorted by requests: the report reads its head


@dataclass
class ReportInputs:
    """Everything the report shows; None where the run does not have it."""

    uri: str
    manifest: dict
    config: dict | None = None
    funnel: dict | None = None
    extract: dict | None = None  # stats/extract.json: the build read a `clipforge extract` output
    politeness: dict | None = None  # stats/politeness.json (image builds): settings, robots.txt, opt-outs
    hosts: pa.Table | None = None  # stats/hosts.parquet: requests and outcomes per host, most requests first
    pre: np.ndarray | None = None
    post: np.ndarray | None = None
    after_dedup: np.ndarray | None = None  # image builds: count₂ over the rows that survive dedup
    t: float | None = None
    names: list[str] | None = None
    notes: dict[str, str] = field(default_factory=dict)  # section → why something is partial
    http: pa.Table | None = None  # download rejects: stage, reason, detail
    sidecars: pa.Table | None = None  # kept rows (SIDECAR_COLUMNS present) + `_file` (index into `files`)
    files: list[str] = field(default_factory=list)  # sidecar URIs read
    sidecar_kind: str | None = None  # "shards" or "curated"
    n_files_total: int = 0
    dedup: dict[str, pa.Table] = field(default_factory=dict)
    dedup_summary: dict[str, dict] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)  # sidecar rows + `image` (bytes | None)
    pairs: dict[str, list[dict]] = field(default_factory=dict)  # step → artifact rows + rep/dropped image, url
    clip_filter: dict | None = None  # dedup/clip_filter.json: threshold, counts, score histogram
    clip_low: list[dict] = field(default_factory=list)  # lowest-scoring dropped rows: uid, score, caption, image
    semdedup: dict | None = None  # dedup/semdedup.json
    sem_groups: list[dict] = field(default_factory=list)  # duplicate groups: kept row + dropped rows (uid, cos, ...)
    train: dict | None = None  # {source, rows, summary}
    eval: dict | None = None  # {source, results}
    language_funnel: dict | None = None  # worldwide: stats/language_funnel.json's languages
    language_counts: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # lang → (pre, post)
    t_by_lang: dict[str, float] = field(default_factory=dict)


def _read_json(uri: str, s3: S3Options | None) -> Any:
    return json.loads(read_bytes(uri, s3))


def _try(fn, *args):
    try:
        return fn(*args)
    except FileNotFoundError:
        return None


def _parquet_files(run: RunDir, sub: str, s3: S3Options | None) -> list[str]:
    return [str(u) for u in list_uris(run.path(sub), s3) if u.name.endswith(".parquet") and not u.name.startswith(".")]


def _dataset(uris: list[str], s3: S3Options | None) -> pads.Dataset:
    fs, _ = filesystem(uris[0], s3)
    return pads.dataset([filesystem(u, s3)[1] for u in uris], filesystem=fs, format="parquet")


def _read_sidecar(uri: str, index: int, s3: S3Options | None) -> pa.Table:
    fs, path = filesystem(uri, s3)
    names = pq.read_schema(path, filesystem=fs).names
    table = pq.read_table(path, filesystem=fs, columns=[c for c in SIDECAR_COLUMNS if c in names])
    return table.append_column("_file", pa.array(np.full(table.num_rows, index, np.int32)))


def sidecar_uris(run: RunDir, manifest: dict, s3: S3Options | None) -> tuple[str | None, list[str]]:
    """("shards", sidecar URIs) from the manifest's shard list (else a listing of shards/), or ("curated", parquet
    files of curated/) for a text-only run, or (None, [])."""
    shards = manifest.get("shards") or []
    if shards:
        return "shards", [run.path(s.get("sidecar") or s["path"].removesuffix(".tar") + ".parquet") for s in shards]
    if run.exists("shards"):
        found = [u for u in _parquet_files(run, "shards", s3) if Uri.parse(u).name.startswith("shard-")]
        if found:
            return "shards", found
    if run.exists("curated"):
        return "curated", _parquet_files(run, "curated", s3)
    return None, []


def read_members(tar_uri: str, names: set[str], s3: S3Options | None) -> dict[str, bytes]:
    """Members `names` of a tar (local or S3) in one sequential pass that stops once all are found."""
    fs, path = filesystem(tar_uri, s3)
    out: dict[str, bytes] = {}
    with fs.open_input_stream(path) as stream, closing(iter_members(stream, names)) as members:
        for name, data in members:
            out[name] = data
            if len(out) == len(names):
                break
    return out


def _images(inputs: ReportInputs, uids: set[str], s3: S3Options | None) -> dict[str, bytes]:
    """JPEG bytes of kept rows `uids`, from the shard tars (only for shard runs with `key`s)."""
    t = inputs.sidecars
    if inputs.sidecar_kind != "shards" or t is None or "key" not in t.column_names or not uids:
        return {}
    rows = t.filter(pc.is_in(t["uid"], pa.array(sorted(uids)))).select(["uid", "key", "_file"]).to_pylist()
    by_file: dict[int, dict[str, str]] = {}
    for r in rows:
        by_file.setdefault(r["_file"], {})[f"{r['key']}.jpg"] = r["uid"]
    out = {}
    for i, wanted in sorted(by_file.items()):
        tar = inputs.files[i].removesuffix(".parquet") + ".tar"
        try:
            found = read_members(tar, set(wanted), s3)
        except (FileNotFoundError, TarError) as e:
            inputs.notes["images"] = f"could not read {tar}: {e}"
            continue
        out.update({wanted[name]: data for name, data in found.items()})
    return out


def _load_sidecars(inputs: ReportInputs, run: RunDir, s3: S3Options | None, max_files: int) -> None:
    kind, uris = sidecar_uris(run, inputs.manifest, s3)
    if not uris:
        return
    chosen = sorted(set(np.linspace(0, len(uris) - 1, min(max_files, len(uris))).round().astype(int).tolist()))
    tables = [_read_sidecar(uris[j], i, s3) for i, j in enumerate(chosen)]
    inputs.sidecars = pa.concat_tables(tables, promote_options="permissive")
    inputs.files, inputs.sidecar_kind, inputs.n_files_total = [uris[j] for j in chosen], kind, len(uris)


def _load_balance(inputs: ReportInputs, run: RunDir, s3: S3Options | None) -> None:
    if run.exists("stats", "entry_counts_pre.npy") and run.exists("stats", "entry_counts_post.npy"):
        inputs.pre = run.read_npy("stats/entry_counts_pre.npy")
        inputs.post = run.read_npy("stats/entry_counts_post.npy")
        if run.exists("stats", "entry_counts_dedup.npy"):
            inputs.after_dedup = run.read_npy("stats/entry_counts_dedup.npy")
    t = (inputs.manifest.get("balance") or {}).get("t")
    inputs.t = float(t) if t is not None else None
    metadata = ((inputs.config or {}).get("match") or {}).get("metadata")
    if inputs.pre is None or not metadata:
        return
    try:
        if run.exists("stats", "languages.json"):  # worldwide: the lists in layout order, named "lang:entry"
            layout = json.loads(read_bytes(run.path("stats/languages.json"), s3))["layout"]
            base = metadata.rstrip("/")
            lists = {lang: json.loads(read_bytes(f"{base}/{lang}.json", s3)) for lang in layout}
            inputs.names = [f"{lang}:{e}" for lang in layout for e in lists[lang]]
            return
        names = json.loads(read_bytes(metadata, s3))
        inputs.names = [str(x) for x in names] if isinstance(names, list) else None
    except (OSError, ValueError, KeyError, ClipforgeError) as e:
        inputs.notes["balance"] = f"entry names unavailable: cannot read metadata {metadata!r} ({e})"


TOP_LANGUAGES = 10
"""The worldwide section plots the balancing of this many languages, those with the most matches."""


def _load_languages(inputs: ReportInputs, run: RunDir) -> None:
    """Worldwide: the per-language funnel, t per language and the entry counts of the languages with the most
    matches (stats/entry_counts_{pre,post}/{lang}.npy)."""
    if not run.exists("stats", "language_funnel.json"):
        return
    inputs.language_funnel = run.read_json("stats/language_funnel.json")["languages"]
    if not run.exists("stats", "languages.json"):
        return
    info = run.read_json("stats/languages.json")
    inputs.t_by_lang = {k: float(v) for k, v in info.get("t_by_lang", {}).items()}
    by_matches = sorted(info.get("languages", {}).items(), key=lambda kv: -kv[1]["matches"])
    for lang, v in by_matches[:TOP_LANGUAGES]:
        pre, post = f"stats/entry_counts_pre/{lang}.npy", f"stats/entry_counts_post/{lang}.npy"
        if v["matches"] and run.exists(*pre.split("/")) and run.exists(*post.split("/")):
            inputs.language_counts[lang] = (run.read_npy(pre), run.read_npy(post))


def _load_dedup(inputs: ReportInputs, run: RunDir, s3: S3Options | None, seed: int, k: int) -> set[str]:
    """Read the dedup artifacts and pick example pairs; returns the uids whose images the pairs want."""
    for step in DEDUP_STEPS:
        if run.exists("dedup", f"{step}.parquet"):
            fs, path = filesystem(run.path("dedup", f"{step}.parquet"), s3)
            inputs.dedup[step] = pq.read_table(path, filesystem=fs)
            inputs.dedup_summary[step] = _try(_read_json, run.path("dedup", f"{step}.json"), s3) or {}
    kept = set(inputs.sidecars["uid"].to_pylist()) if inputs.sidecars is not None else set()
    inputs.pairs = {step: pick_pairs(a, kept, k, seed) for step, a in inputs.dedup.items()}
    return {p[c] for ps in inputs.pairs.values() for p in ps for c in ("uid", "representative")}


def _attach_pair_images(inputs: ReportInputs, run: RunDir, images: dict[str, bytes], s3: S3Options | None) -> None:
    """Give each picked pair its images (shard tars; dropped members from the optional dedup/thumbs.parquet) and
    URLs (sidecars for kept rows, rejects/ for dropped ones)."""
    wanted = {p[c] for ps in inputs.pairs.values() for p in ps for c in ("uid", "representative")}
    if not wanted:
        return
    images = dict(images)
    if run.exists("dedup", "thumbs.parquet"):
        fs, path = filesystem(run.path("dedup", "thumbs.parquet"), s3)
        thumbs = pq.read_table(path, filesystem=fs, columns=["uid", "image"])
        thumbs = thumbs.filter(pc.is_in(thumbs["uid"], pa.array(sorted(wanted))))
        images.update(dict(zip(thumbs["uid"].to_pylist(), thumbs["image"].to_pylist(), strict=True)))
    urls = _reject_urls(run, wanted, s3)
    if inputs.sidecars is not None:
        side = inputs.sidecars.filter(pc.is_in(inputs.sidecars["uid"], pa.array(sorted(wanted))))
        urls.update(dict(zip(side["uid"].to_pylist(), side["url"].to_pylist(), strict=True)))
    for step, ps in inputs.pairs.items():
        inputs.pairs[step] = [
            {
                **p,
                "image": images.get(p["uid"]),
                "rep_image": images.get(p["representative"]),
                "url": urls.get(p["uid"]),
                "rep_url": urls.get(p["representative"]),
            }
            for p in ps
        ]


def _model_rows(run: RunDir, name: str, s3: S3Options | None) -> tuple[pa.Table, dict[str, dict]]:
    """Barrier `name`'s reject list and {uid: {caption, image}} of its stored thumbs (empty when absent)."""
    listed = pq.read_table(pa.BufferReader(read_bytes(run.path("dedup", f"{name}.parquet"), s3)))
    rows: dict[str, dict] = {}
    if run.exists("dedup", f"{name}_thumbs.parquet"):
        thumbs = pq.read_table(pa.BufferReader(read_bytes(run.path("dedup", f"{name}_thumbs.parquet"), s3)))
        rows = {r["uid"]: r for r in thumbs.to_pylist()}
    return listed, rows


def _load_model_filters(inputs: ReportInputs, run: RunDir, s3: S3Options | None) -> None:
    """The CLIP filter's summary and lowest-scoring dropped rows; semdedup's summary and largest duplicate groups
    (the same picks `pipeline.stages.model_thumbs` stored images for at build time)."""
    none = {"caption": None, "image": None}
    if run.exists("dedup", "clip_filter.json") and run.exists("dedup", "clip_filter.parquet"):
        inputs.clip_filter = run.read_json("dedup/clip_filter.json")
        listed, thumbs = _model_rows(run, "clip_filter", s3)
        inputs.clip_low = [{**none, **thumbs.get(r["uid"], {}), **r} for r in lowest_scores(listed)]
    if run.exists("dedup", "semdedup.json") and run.exists("dedup", "semdedup.parquet"):
        inputs.semdedup = run.read_json("dedup/semdedup.json")
        listed, thumbs = _model_rows(run, "semdedup", s3)
        inputs.sem_groups = [
            {
                **g,
                "kept_row": {**none, **thumbs.get(g["kept"], {}), "uid": g["kept"]},
                "dropped": [{**none, **thumbs.get(r["uid"], {}), **r} for r in g["dropped"]],
            }
            for g in duplicate_groups(listed)
        ]


def _pick_samples(inputs: ReportInputs, n: int, seed: int, max_files: int = 4) -> list[dict]:
    """Seeded kept rows for the grid, from at most `max_files` sidecars (each shard tar is then read once)."""
    t = inputs.sidecars
    if t is None or t.num_rows == 0:
        return []
    files = sorted(set(t["_file"].to_pylist()))
    if len(files) > max_files:
        chosen = [files[i] for i in pick_rows(len(files), max_files, seed)]
        t = t.filter(pc.is_in(t["_file"], pa.array(chosen, pa.int32())))
    return t.take(pick_rows(t.num_rows, n, seed)).to_pylist()


def _reject_urls(run: RunDir, uids: set[str], s3: S3Options | None) -> dict[str, str]:
    files = _parquet_files(run, "rejects", s3) if run.exists("rejects") and uids else []
    if not files:
        return {}
    t = _dataset(files, s3).to_table(columns=["uid", "url"], filter=pc.field("uid").isin(sorted(uids)))
    return dict(zip(t["uid"].to_pylist(), t["url"].to_pylist(), strict=True))


def _load_rejects(inputs: ReportInputs, run: RunDir, s3: S3Options | None) -> None:
    files = _parquet_files(run, "rejects", s3) if run.exists("rejects") else []
    if files:
        want = pc.field("stage").isin(list(DOWNLOAD_STAGES))
        inputs.http = _dataset(files, s3).to_table(columns=["stage", "reason", "detail"], filter=want)


def _find(base: str, name: str, s3: S3Options | None) -> str | None:
    """`base/name`, else the shallowest `base/**/name` (first by path); None when there is none."""
    found = [u for u in _try(list_uris, base, s3) or [] if u.name == name]
    return str(min(found, key=lambda u: (str(u).count("/"), str(u)))) if found else None


def _load_training(inputs: ReportInputs, run: RunDir, train_run: str | None, s3: S3Options | None) -> None:
    from training.metrics import read_metrics_csv

    csv_uri = _find(train_run or run.path("train"), "metrics.csv", s3)
    if csv_uri is None:
        if train_run:
            inputs.notes["training"] = f"no metrics.csv under --train-run {train_run}"
        return
    parent = csv_uri.rpartition("/")[0]
    _check_trained_on(run, parent, s3)
    rows = read_metrics_csv(read_bytes(csv_uri, s3).decode())
    inputs.train = {"source": parent, "rows": rows, "summary": _try(_read_json, parent + "/summary.json", s3)}


def _check_trained_on(run: RunDir, train_run: str, s3: S3Options | None) -> None:
    """A training run whose identity.json names another build's manifest.json is a `ClipforgeError`: its curves
    would be reported as this build's. Runs from before identity.json are not checked."""
    from training.identity import manifest_sha256, read_identity

    recorded = read_identity(train_run, s3) or {}
    want = manifest_sha256(read_bytes(run.path("manifest.json"), s3))
    if recorded.get("manifest_sha256") not in (None, want):
        raise ClipforgeError(
            f"training run {train_run} did not train on {run.uri}: it trained on {recorded.get('manifest')!r} "
            f"(manifest.json sha256 {recorded['manifest_sha256'][:12]}, this build's is {want[:12]}); pass the "
            "--train-run that trained on this build, or report that build instead"
        )


def _load_eval(inputs: ReportInputs, run: RunDir, eval_dir: str | None, s3: S3Options | None) -> None:
    uri = _find(eval_dir or run.path("eval"), "results.json", s3)
    if uri is None:
        if eval_dir:
            inputs.notes["evaluation"] = f"no results.json under --eval {eval_dir}"
        return
    inputs.eval = {"source": uri, "results": _read_json(uri, s3)}


def load_inputs(
    run_uri: str,
    s3: S3Options | None = None,
    *,
    train_run: str | None = None,
    eval_dir: str | None = None,
    seed: int = 0,
    n_samples: int = 24,
    n_pairs: int = 6,
    max_sidecars: int = 64,
) -> ReportInputs:
    """Read a run for the report. A run without manifest.json is a `ClipforgeError`; everything else is optional.
    At most `max_sidecars` sidecar files (evenly spaced over the run's shards) feed the histograms and picks."""
    run = RunDir(run_uri, s3)
    if not run.exists("manifest.json"):
        raise ClipforgeError(f"{run_uri!r} has no manifest.json: not a finished clipforge build run directory")
    inputs = ReportInputs(uri=str(run.uri), manifest=run.read_json("manifest.json"))
    if run.exists("config.yaml"):
        inputs.config = yaml.safe_load(read_bytes(run.path("config.yaml"), s3))
    if run.exists("stats", "funnel.json"):
        inputs.funnel = run.read_json("stats/funnel.json")
    if run.exists("stats", "extract.json"):
        inputs.extract = run.read_json("stats/extract.json")
    if run.exists("stats", "politeness.json"):
        inputs.politeness = run.read_json("stats/politeness.json")
    if run.exists("stats", "hosts.parquet"):
        fs, path = run.fs("stats", "hosts.parquet")
        inputs.hosts = pq.read_table(path, filesystem=fs).slice(0, HOSTS_SHOWN)
    _load_balance(inputs, run, s3)
    _load_languages(inputs, run)
    _load_rejects(inputs, run, s3)
    _load_sidecars(inputs, run, s3, max_sidecars)
    samples = _pick_samples(inputs, n_samples, seed)
    pair_uids = _load_dedup(inputs, run, s3, seed, n_pairs)
    images = _images(inputs, {r["uid"] for r in samples} | pair_uids, s3)  # one pass per shard tar
    inputs.samples = [{**r, "image": images.get(r["uid"])} for r in samples]
    _attach_pair_images(inputs, run, images, s3)
    _load_model_filters(inputs, run, s3)
    _load_training(inputs, run, train_run, s3)
    _load_eval(inputs, run, eval_dir, s3)
    return inputs
