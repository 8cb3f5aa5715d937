"""The image half of `clipforge build` (DESIGN.md §1 after count₁): resumable download parts → dedup barriers →
count₂ + balance → resumable shards → rejects. Each step is a named function that reads one durable artifact and
writes the next; `pipeline.build` calls them in order. No algorithms here.

Resume (docs/build.md): download parts and shards are committed one by one (a part's parquet file, a shard's ledger
entry), and their membership is deterministic (a part: a hash of the URL's host and uid; a shard: of the uid), so
a re-run of a killed build redoes only what is missing.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from curation.balancing import entry_counts
from curation.host_parts import assign_parts, host_slots, split_hosts, url_hosts
from curation.robots import crawl_delay_hosts
from pipeline.build_config import BuildConfig
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import write_bytes
from pipeline.dedup import (
    DedupRejectConfig,
    DedupRejectStage,
    EvalDedupConfig,
    EvalDedupStage,
    eval_hashes,
    exact_dedup,
    near_dedup,
)
from pipeline.ingest import input_columns
from pipeline.politeness import write_politeness
from pipeline.rundir import RunDir, write_rejects
from pipeline.shards import (
    SHARD_SALT,
    SIDECAR_COLUMNS,
    ShardWriteConfig,
    add_shard_column,
    committed_shards,
    read_sidecars,
    shard_count,
    write_shard,
)
from pipeline.stages.balance import (
    BalanceStage,
    BalanceStageConfig,
    PreBalanceStage,
    choose_t,
    count_entries,
    globalize,
    worldwide_balance,
    write_counts,
    write_language_funnel,
    write_languages,
)
from pipeline.stages.base import StageSpec, apply_group_stage, chained, run_stages
from pipeline.stages.clip_filter import ClipFilterReason, ClipFilterStage, ListedRejectConfig, clip_filter_barrier
from pipeline.stages.download import DOWNLOAD, IMAGES, FetchImagesConfig, load_opt_out, load_robots
from pipeline.stages.download_parts import (
    PART_INPUT_COLUMNS,
    PART_SALT,
    DownloadPartsConfig,
    DownloadPartStage,
    PartPlan,
    add_part_column,
    committed_parts,
    uid_buckets,
)
from pipeline.stages.embed import EMBED_DIR, check_model, embed_parts
from pipeline.stages.match import METADATA_LANG, EntryLayout, entry_layout, language_funnel
from pipeline.stages.semdedup import SemDedupReason, SemDedupStage, semdedup_barrier
from pipeline.stats import read_table
from pipeline.steps import BuildState, Progress, Say, Step

LIGHT_COLUMNS = ["uid", "url", "entry_ids", METADATA_LANG, "phash", "reject_stage", "reject_reason", "reject_detail"]
"""What the decisions after download need (no image bytes): dedup stages, count₂, balance, rejects."""
MAX_GROUP_PARTITIONS = 32
Track = Callable[[Progress], None]


def _count1(state: BuildState) -> None:
    cfg, run, matched = state.cfg, state.run, state.values["matched"]
    layout = entry_layout(cfg.match.metadata, cfg.s3)
    counts = count_entries(matched, layout)
    write_counts(run, "pre", counts, layout)
    t, balance = choose_t(cfg.balance, counts, matched, state.say, layout)
    write_languages(run, layout, balance)
    state.values.update(layout=layout, counts_uri=run.path("stats/entry_counts_pre.npy"), t=t, balance=balance)


def _select(state: BuildState) -> None:
    cfg, run, v = state.cfg, state.run, state.values
    selected = v["matched"]
    if "pre_balance" in cfg.stages:
        v["balance"]["t_pre"] = cfg.balance.oversample * v["t"]
        pre = BalanceStageConfig(
            counts=v["counts_uri"],
            t=v["balance"]["t_pre"],
            seed=cfg.balance.seed,
            s3=cfg.s3,
            **worldwide_balance(v["layout"], v["balance"], cfg.balance.oversample),
        )
        selected = run_stages(selected, [StageSpec(PreBalanceStage, pre)])
    v["selected"] = run.checkpoint_once("selected", selected)


def _download(state: BuildState) -> None:
    track = state.heartbeat.track if state.heartbeat else None
    state.values["download"] = download_parts(state.cfg, state.run, state.values["selected"], state.say, track)
    facts = write_politeness(state.run, state.cfg.download, state.values["download"])
    state.say(f"download: {facts['requests']:,} requests to {facts['hosts']:,} hosts -> stats/hosts.parquet")


def _dedup(state: BuildState) -> None:
    state.values["dedup"] = dedup_artifacts(state.cfg, state.run, state.say)


def _embed(state: BuildState) -> None:
    cfg, v = state.cfg, state.values
    track = state.heartbeat.track if state.heartbeat else None
    dim = v.get("embed_dim") or check_model(cfg.embed)
    v["embed"] = embed_parts(cfg.embed, state.run, v["dedup"], dim, state.say, track, cfg.s3)


def _model_filters(state: BuildState) -> None:
    """The clip_filter and semdedup barriers (each reused when a killed run finished it); their reject stages join
    the dedup stages, so count₂ and balance see only what survives every filter."""
    cfg, run, v = state.cfg, state.run, state.values
    clip_list = None
    if "clip_filter" in cfg.stages:
        clip_list = clip_filter_barrier(run, cfg.clip_filter)
        reason = str(ClipFilterReason.low_clip_score)
        v["dedup"].append(StageSpec(ClipFilterStage, ListedRejectConfig(path=clip_list, reason=reason, s3=cfg.s3)))
        info = run.read_json("dedup/clip_filter.json")
        state.say(f"clip_filter: {info['rejected']} of {info['scored']} rows below score {info['threshold']:.4f}")
    if "semdedup" in cfg.stages:
        uri = semdedup_barrier(run, cfg.semdedup, after=clip_list)
        reason = str(SemDedupReason.semantic_duplicate)
        v["dedup"].append(StageSpec(SemDedupStage, ListedRejectConfig(path=uri, reason=reason, s3=cfg.s3)))
        info = run.read_json("dedup/semdedup.json")
        state.say(f"semdedup: {info['rejected']} of {info['embedded']} rows are semantic duplicates")


def _model_plan(cfg: BuildConfig) -> list[str]:
    lines = []
    if "clip_filter" in cfg.stages:
        c = cfg.clip_filter
        rule = f"score >= {c.threshold:g}" if c.threshold is not None else f"top {c.keep_fraction:g} by score"
        lines.append(f"clip_filter (barrier: cosine(image, caption), keep {rule}) -> dedup/clip_filter.parquet")
    if "semdedup" in cfg.stages:
        s = cfg.semdedup
        lines.append(
            f"semdedup (barrier: k-means k={s.n_clusters}, cosine >= 1 - {s.eps:g}) -> dedup/semdedup.parquet"
        )
    return lines


def _balance(state: BuildState) -> None:
    cfg, run, v = state.cfg, state.run, state.values
    specs, info = final_decisions(cfg, run, v["dedup"], v["t"], v["layout"], v["balance"], state.say)
    v["balance"].update(info)
    light = run.read("work", "download", columns=_light_columns(run))
    if v["download"]["rows"]:
        final = run.checkpoint_once("final", lambda: run_stages(light, specs))
    else:  # nothing reached download: Ray writes no file for zero rows, so there would be no checkpoint to read
        final = run_stages(light, specs)
    v.update(specs=specs, final=final, n_kept=final.filter(expr=_col("reject_reason").is_null()).count())
    state.say(f"balance: {v['n_kept']} rows kept of {v['download']['rows']} downloaded at t = {v['t']:g}")


def _light_columns(run: RunDir) -> list[str]:
    """LIGHT_COLUMNS (those present: metadata_lang only worldwide) + the kept input columns of the download parts
    (rejects after download carry them)."""
    fs, path = run.fs("work", "download")
    names = pads.dataset(path, filesystem=fs, format="parquet").schema.names
    return [c for c in LIGHT_COLUMNS if c in names or c != METADATA_LANG] + input_columns(names)


def _shards(state: BuildState) -> None:
    track = state.heartbeat.track if state.heartbeat else None
    state.values["shards"] = write_shards(
        state.cfg, state.run, state.values["specs"], state.values["n_kept"], state.say, track
    )


def _rejects(state: BuildState) -> None:
    run, v = state.run, state.values
    write_rejects(run, [v["selected"], v["final"]])
    shards = v["shards"]
    layout: EntryLayout = v["layout"]
    columns = ["entry_ids", METADATA_LANG] if layout.worldwide else ["entry_ids"]
    sidecars = read_sidecars(run, columns) if shards else None
    kept = sidecars["entry_ids"] if shards else pa.array([], pa.list_(pa.int32()))
    if shards and layout.worldwide:
        kept = globalize(kept, sidecars[METADATA_LANG], layout)
    write_counts(run, "post", entry_counts(kept, layout.n_entries), layout)
    if layout.worldwide:
        langs = sidecars[METADATA_LANG].to_pylist() if shards else []
        write_language_funnel(run, layout, language_funnel(v["matched"]), langs)
    state.say(f"write: {sum(s['n'] for s in shards)} samples in {len(shards)} shards; rejects/ written")
    v["outputs"] = {
        "kind": "webdataset_shards",
        "counts": {"kept": v["n_kept"], "downloaded": v["download"]["rows"], "shards": len(shards)},
        "balance": v["balance"],
        "download": v["download"],
        "shards": [{k: e[k] for k in ("path", "sidecar", "n", "sha256", "bytes")} for e in shards],
        "outputs": {"shards": "shards/", "rejects": "rejects/", "stats": "stats/", "dedup": "dedup/"},
    }
    if "embed" in v:
        v["outputs"]["embed"] = v["embed"]
        v["outputs"]["outputs"]["embeddings"] = f"{EMBED_DIR}/"


def _dedup_plan(cfg: BuildConfig) -> list[str]:
    if "dedup" not in cfg.stages:
        return ["(off)"]
    lines = ["exact_dedup (barrier) -> dedup/exact.parquet"] if cfg.dedup.exact else []
    lines += ["near_dedup (barrier) -> dedup/near.parquet"] if cfg.dedup.near else []
    lines += ["eval_hashes (barrier) -> dedup/eval_hashes.parquet"] if cfg.dedup.eval_sets else []
    return lines


def _balance_plan(cfg: BuildConfig) -> list[str]:
    stages = ["dedup", *(["eval_dedup"] if cfg.dedup.eval_sets else [])] if "dedup" in cfg.stages else []
    stages += [s for s in ("clip_filter", "semdedup") if s in cfg.stages]
    if "balance" in cfg.stages:
        stages += ["count_entries (barrier) -> stats/entry_counts_dedup.npy", "balance at t"]
    return [*stages, "checkpoint work/final (decisions, no image bytes)"]


def _select_plan(cfg: BuildConfig) -> list[str]:
    pre = [f"pre_balance at t_pre = {cfg.balance.oversample:g} x t"] if "pre_balance" in cfg.stages else []
    return [*pre, "checkpoint work/selected"]


def image_steps(cfg: BuildConfig) -> list[Step]:
    """count₁ → [pre_balance] → download parts → dedup → count₂ + balance → shards → rejects + kept entry counts.
    The last step leaves the manifest's outputs (kind, counts, balance, download, shards) in `values["outputs"]`."""
    return [
        Step("count1", _count1, lambda c: ["count_entries (barrier) -> stats/entry_counts_pre.npy, t"]),
        Step("pre_balance", _select, _select_plan, rejects=(PreBalanceStage.name,)),
        Step(
            "download",
            _download,
            lambda c: [
                "download parts (fetch + decode + sha256 + pHash) -> work/download/ [resumable]",
                "per-host requests, robots.txt and opt-out counts -> stats/hosts.parquet, stats/politeness.json",
            ],
            rejects=(DOWNLOAD, IMAGES),
        ),
        Step("dedup", _dedup, _dedup_plan),
        *_model_steps(cfg),
        Step(
            "balance",
            _balance,
            _balance_plan,
            rejects=(DedupRejectStage.name, EvalDedupStage.name, *_model_rejects(cfg), BalanceStage.name),
        ),
        Step(
            "shards", _shards, lambda c: ["write shards/shard-NNNNNN.tar + .parquet [resumable: ledger work/shards/]"]
        ),
        Step("rejects", _rejects, lambda c: ["write rejects/", "count_entries (kept) -> stats/entry_counts_post.npy"]),
    ]


def _model_steps(cfg: BuildConfig) -> list[Step]:
    """The optional model-based steps (#22): embed parts, then the clip_filter / semdedup barriers."""
    if "embed" not in cfg.stages:
        return []
    where = f"{cfg.embed.model}: open_clip actors, {cfg.embed.num_gpus:g} GPU each when the cluster has GPUs, else CPU"
    embed_lines = [f"embed ({where}) -> {EMBED_DIR}/parts/ float16 [resumable]"]
    steps = [Step("embed", _embed, lambda c: embed_lines, rejects=())]
    if "clip_filter" in cfg.stages or "semdedup" in cfg.stages:
        steps.append(Step("model_filters", _model_filters, _model_plan))
    return steps


def _model_rejects(cfg: BuildConfig) -> tuple[str, ...]:
    return tuple(
        s.name for s, on in ((ClipFilterStage, "clip_filter"), (SemDedupStage, "semdedup")) if on in cfg.stages
    )


def _col(name: str):
    from ray.data.expressions import col

    return col(name)


def download_parts(cfg: BuildConfig, run: RunDir, selected, say: Say, track: Track | None = None) -> dict:
    """Download every live row of `selected` in parts, skipping parts a killed earlier run committed. Returns
    {rows, parts, committed_before, downloaded_now, spread_hosts: {host: parts}, host_slots: {host: slots}}; raises
    if a part is still missing afterwards. `track` gets a function that counts the parts committed so far (the
    heartbeat's progress)."""
    live = read_table(run, "work/selected", ["uid", "url", "reject_reason"])
    live = live.filter(pc.is_null(live["reject_reason"]))
    uids = live["uid"]
    plan, fetch = part_plan(cfg, run, live, say)
    expected = {int(p) for p in np.unique(assign_parts(_hosts(live), uids, plan.n_parts, plan.split, PART_SALT))}
    expected = expected or {0}
    out_dir = run.path("work", "download")
    before = committed_parts(out_dir, cfg.s3) & expected
    pending = sorted(expected - before)
    say(
        f"download: {len(uids)} rows in {len(expected)} parts; {len(before)} committed by an earlier run, "
        f"{len(pending)} to download"
    )
    plan_info = {"parts": len(expected), "rows": len(uids), "spread_hosts": plan.split, "host_slots": fetch.host_slots}
    run.write_json("work/download_plan.json", plan_info)  # for `clipforge stats` and the report
    if track:
        track(lambda: (len(committed_parts(out_dir, cfg.s3) & expected), len(expected), "parts"))
    if pending and not len(uids):
        _write_empty_part(run, fetch, out_dir, cfg.s3)
    elif pending:
        from ray.data.expressions import col

        present = selected.schema().names
        names = [c for c in PART_INPUT_COLUMNS if c in present] + input_columns(present)
        ds = selected.filter(expr=col("reject_reason").is_null()).select_columns(names)
        ds = run_stages(ds, [StageSpec(add_part_column, plan)]).filter(expr=col("part").is_in(pending))
        stage_cfg = DownloadPartsConfig(fetch=fetch, out_dir=out_dir, s3=cfg.s3)
        parts = min(len(pending), MAX_GROUP_PARTITIONS)
        done = apply_group_stage(ds, "part", StageSpec(DownloadPartStage, stage_cfg), num_partitions=parts)
        summary = pa.Table.from_pylist(done.take_all())
        ok = int(pc.sum(summary["ok"]).as_py() or 0) if summary.num_rows else 0
        say(f"download: {len(pending)} parts, {ok} images ok")
    missing = expected - committed_parts(out_dir, cfg.s3)
    if missing:
        raise ClipforgeError(f"download parts {sorted(missing)[:10]} were not committed; re-run to finish them")
    counts = {"rows": len(uids), "parts": len(expected), "committed_before": len(before)}
    return {**counts, "downloaded_now": len(pending), "spread_hosts": plan.split, "host_slots": fetch.host_slots}


def _hosts(live: pa.Table) -> pa.Array:
    return url_hosts(live["url"])


def part_plan(cfg: BuildConfig, run: RunDir, live: pa.Table, say: Say) -> tuple[PartPlan, FetchImagesConfig]:
    """(the download parts' `PartPlan`, the parts' fetch config) for the live rows: ⌈rows / rows_per_part⌉ parts by
    host, hosts over rows_per_part spread (but never one with a Crawl-delay, hence robots.txt first: `robots_once`,
    reused by a resumed run, so the plan is the same), and the spread hosts' per-part slots (`curation.host_parts`)."""
    fetch = FetchImagesConfig(download=cfg.download, image=cfg.image, s3=cfg.s3)
    delayed: set[str] = set()
    if cfg.download.fetch.robots_txt and live.num_rows:
        uri = robots_once(cfg, run, live["url"], say)
        fetch = fetch.model_copy(update={"robots_file": uri})
        delayed = crawl_delay_hosts(load_robots(uri, cfg.s3), cfg.download.fetch.robots_ua_tokens)
    limit = cfg.download.fetch.per_host_concurrency
    split = split_hosts(_hosts(live), cfg.download.rows_per_part, limit, delayed)
    plan = PartPlan(n_parts=max(1, math.ceil(live.num_rows / cfg.download.rows_per_part)), split=split)
    if split:
        spread = ", ".join(f"{h} over {k}" for h, k in sorted(split.items(), key=lambda kv: -kv[1])[:5])
        say(f"download: {len(split)} large hosts spread over parts ({spread}), each part its share of the limit")
    return plan, fetch.model_copy(update={"host_slots": host_slots(split, limit)})


ROBOTS_THREADS = 32


def robots_once(cfg: BuildConfig, run: RunDir, urls: pa.ChunkedArray, say: Say) -> str:
    """robots.txt of every origin among `urls`, fetched once per run through the guarded fetcher (threads on the
    driver: one small request per origin) and committed as work/robots.parquet, which a resumed run reuses; returns
    its URI. The download tasks read it, so no task fetches an origin's robots.txt again (RFC 9309's caching
    within a run), and the part plan reads its Crawl-delays. At ~10^6 origins this is minutes on the driver (a known
    limit: the parts could fetch their own hosts' files, but the plan needs the delays first)."""
    from concurrent.futures import ThreadPoolExecutor

    from curation.fetch import Fetcher, fetch_robots, robots_fetch_config
    from curation.robots import origin_of, robots_url
    from pipeline.stages.download import robots_table

    uri = run.path("work", "robots.parquet")
    if run.exists("work", "robots.parquet"):
        return uri
    origins = sorted({o for o in map(origin_of, pc.unique(urls).to_pylist()) if o})
    registry = load_opt_out(cfg.download.opt_out_registry, cfg.s3)
    origins = [o for o in origins if registry.match(robots_url(o)) is None]  # an opted-out host gets no request at all
    fetcher = Fetcher(robots_fetch_config(cfg.download.fetch))
    with ThreadPoolExecutor(max_workers=max(1, min(ROBOTS_THREADS, len(origins)))) as pool:
        files = list(pool.map(lambda o: fetch_robots(o, fetcher), origins))
    buf = io.BytesIO()
    pq.write_table(robots_table(files), buf)
    write_bytes(uri, buf.getvalue(), cfg.s3)  # whole or not at all: a resumed run reuses it
    states = Counter(str(f.state) for f in files)
    say(f"robots.txt: {len(files)} origins: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    return uri


def _write_empty_part(run: RunDir, fetch: FetchImagesConfig, out_dir: str, s3) -> None:
    """No live row to download: commit part 0 with no rows but the download schema, so every step after download
    reads a (zero-row) dataset with the columns it expects."""
    fs, path = run.fs("work", "selected")
    schema = pads.dataset(path, filesystem=fs, format="parquet").schema
    empty = schema.empty_table().select([c for c in PART_INPUT_COLUMNS if c in schema.names])
    DownloadPartStage(DownloadPartsConfig(fetch=fetch, out_dir=out_dir, s3=s3)).commit(0, empty)


def dedup_artifacts(cfg: BuildConfig, run: RunDir, say: Say) -> list[StageSpec]:
    """Run the dedup barriers over the downloaded rows (each reused when a killed earlier run finished it: its
    .json summary is written after its artifact) and return the stages that apply them."""
    if "dedup" not in cfg.stages:
        return []
    uris: dict[str, str | None] = {"exact": None, "near": None, "eval": None}
    steps = [
        ("exact", cfg.dedup.exact, lambda: exact_dedup(run.read("work", "download"), cfg.dedup, cfg.output, cfg.s3)),
        ("near", cfg.dedup.near, lambda: near_dedup(run.read("work", "download"), cfg.dedup, cfg.output, cfg.s3)),
        (
            "eval_hashes",
            bool(cfg.dedup.eval_sets),
            lambda: eval_hashes(cfg.dedup.eval_sets, cfg.image, cfg.output, cfg.s3),
        ),
    ]
    for name, on, fn in steps:
        if not on:
            continue
        key = "eval" if name == "eval_hashes" else name
        if run.exists("dedup", f"{name}.json"):
            uris[key] = run.path("dedup", f"{name}.parquet")
        else:
            uris[key] = fn()
        info = run.read_json(f"dedup/{name}.json")
        say(f"dedup {name}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("step", "seconds")))
    specs = []
    if uris["exact"] or uris["near"]:
        specs.append(StageSpec(DedupRejectStage, DedupRejectConfig(exact=uris["exact"], near=uris["near"], s3=cfg.s3)))
    if uris["eval"]:
        specs.append(
            StageSpec(EvalDedupStage, EvalDedupConfig(hashes=uris["eval"], k_eval=cfg.dedup.k_eval, s3=cfg.s3))
        )
    return specs


def final_decisions(
    cfg: BuildConfig, run: RunDir, dedup: list[StageSpec], t: float, layout: EntryLayout, balance: dict, say: Say
):
    """count₂ over the rows that survive dedup → stats/entry_counts_dedup.npy → the stages after download
    (dedup + balance at t; worldwide each language at its count₁ t_lang). Returns (stage list, balance summary)."""
    specs = list(dedup)
    info: dict = {}
    if "balance" in cfg.stages:
        light = run_stages(run.read("work", "download", columns=_light_columns(run)), chained(dedup))
        counts = count_entries(light, layout)
        write_counts(run, "dedup", counts, layout)
        uri = run.path("stats/entry_counts_dedup.npy")
        info = {"matches_after_dedup": int(counts.sum()), "entries_after_dedup": int((counts > 0).sum())}
        say(f"count₂: {info['matches_after_dedup']} matches over {info['entries_after_dedup']} entries after dedup")
        final = BalanceStageConfig(
            counts=uri, t=t, seed=cfg.balance.seed, s3=cfg.s3, **worldwide_balance(layout, balance)
        )
        specs.append(StageSpec(BalanceStage, final))
    return chained(specs), info


def write_shards(
    cfg: BuildConfig, run: RunDir, specs: list[StageSpec], n_kept: int, say: Say, track: Track | None = None
) -> list[dict]:
    """Kept rows → shards, skipping shards whose ledger entry exists. Returns every shard's entry, by shard; `track`
    gets a function that counts the shards written so far."""
    from ray.data.expressions import col

    n_shards = shard_count(n_kept, cfg.shards.samples_per_shard)
    kept = read_table(run, "work/final", ["uid", "reject_reason"])
    kept_uids = kept.filter(pc.is_null(kept["reject_reason"]))["uid"]
    expected = {int(s) for s in np.unique(uid_buckets(kept_uids, n_shards, SHARD_SALT))} if n_kept else set()
    done = {s: e for s, e in committed_shards(run).items() if s in expected}
    pending = sorted(expected - set(done))
    say(f"shards: {n_kept} samples in {len(expected)} shards; {len(done)} committed earlier, {len(pending)} to write")
    run.write_json("work/shards_plan.json", {"shards": len(expected), "samples": n_kept})  # for `clipforge stats`
    if track:
        track(lambda: (len(set(committed_shards(run)) & expected), len(expected), "shards"))
    if pending:
        ds = run_stages(run.read("work", "download"), specs).filter(expr=col("reject_reason").is_null())
        present = ds.schema().names
        names = [c for c in [*SIDECAR_COLUMNS, "image"] if c in present] + input_columns(present)
        ds = run_stages(ds.select_columns(names), [StageSpec(add_shard_column, n_shards)])
        ds = ds.filter(expr=col("shard").is_in(pending))
        writer = ShardWriteConfig(run=cfg.output, image_ext=cfg.image.encode_format, s3=cfg.s3)
        groups = min(len(pending), MAX_GROUP_PARTITIONS)
        apply_group_stage(ds, "shard", StageSpec(write_shard, writer), num_partitions=groups).materialize()
    entries = {s: e for s, e in committed_shards(run).items() if s in expected}
    if set(entries) != expected:
        raise ClipforgeError(f"shards {sorted(expected - set(entries))[:10]} were not written; re-run to finish")
    return [entries[s] for s in sorted(entries)]
