"""The image half of `clipforge build` (DESIGN.md §1 after count₁): resumable download parts → dedup barriers →
count₂ + balance → resumable shards → rejects. Each step is a named function that reads one durable artifact and
writes the next; `pipeline.build` calls them in order. No algorithms here.

Resume (docs/build.md): download parts and shards are committed one by one (a part's parquet file, a shard's ledger
entry), and their membership is a hash of the uid, so a re-run of a killed build redoes only what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.build_config import BuildConfig
from pipeline.core.errors import ClipforgeError
from pipeline.dedup import eval_hashes, exact_dedup, near_dedup
from pipeline.rundir import RunDir, write_rejects
from pipeline.shards import (
    SHARD_SALT,
    SIDECAR_COLUMNS,
    ShardWriteConfig,
    add_shard_column,
    committed_shards,
    entry_counts,
    read_sidecars,
    shard_count,
    write_shard,
)
from pipeline.stages.balance import BalanceStage, BalanceStageConfig, PreBalanceStage, choose_t, count_entries
from pipeline.stages.base import StageSpec, apply_group_stage, chained, run_stages
from pipeline.stages.dedup import DedupRejectConfig, DedupRejectStage
from pipeline.stages.download_parts import (
    PART_INPUT_COLUMNS,
    PART_SALT,
    DownloadPartsConfig,
    DownloadPartStage,
    add_part_column,
    committed_parts,
    uid_buckets,
)
from pipeline.stages.eval_dedup import EvalDedupConfig, EvalDedupStage
from pipeline.stages.images import FetchImagesConfig
from pipeline.stats import read_table

Say = Callable[[str], None]
LIGHT_COLUMNS = ["uid", "url", "entry_ids", "phash", "reject_stage", "reject_reason", "reject_detail"]
"""What the decisions after download need (no image bytes): dedup stages, count₂, balance, rejects."""
MAX_GROUP_PARTITIONS = 32


def image_build(cfg: BuildConfig, run: RunDir, matched, clock, say: Say) -> dict:
    """count₁ → [pre_balance] → download parts → dedup → count₂ → balance → shards → rejects → kept entry counts.
    Returns the manifest's outputs (kind, counts, balance, shards, download, outputs)."""
    from pipeline.stages.match import load_entries

    n_entries = len(load_entries(cfg.match.metadata, cfg.s3))
    with clock("count1"):
        counts = count_entries(matched, n_entries)
        counts_uri = run.write_npy("stats/entry_counts_pre.npy", counts)
        t, balance = choose_t(cfg.balance, counts, matched, say)
    with clock("pre_balance"):
        selected = matched
        if "pre_balance" in cfg.stages:
            balance["t_pre"] = cfg.balance.oversample * t
            pre = BalanceStageConfig(counts=counts_uri, t=balance["t_pre"], seed=cfg.balance.seed, s3=cfg.s3)
            selected = run_stages(matched, [StageSpec(PreBalanceStage, pre)])
        selected = run.checkpoint_once("selected", selected)
    with clock("download"):
        download = download_parts(cfg, run, selected, say)
    with clock("dedup"):
        dedup = dedup_artifacts(cfg, run, say)
    with clock("balance"):
        specs, info = final_decisions(cfg, run, dedup, t, n_entries, say)
        balance.update(info)
        light = run.read("work", "download", columns=LIGHT_COLUMNS)
        final = run.checkpoint_once("final", lambda: run_stages(light, specs))
        n_kept = final.filter(expr=_col("reject_reason").is_null()).count()
        say(f"balance: {n_kept} rows kept of {download['rows']} downloaded at t = {t:g}")
    with clock("shards"):
        shards = write_shards(cfg, run, specs, n_kept, say)
    with clock("rejects"):
        write_rejects(run, [selected, final])
        kept = read_sidecars(run, ["entry_ids"])["entry_ids"]
        run.write_npy("stats/entry_counts_post.npy", entry_counts(kept, n_entries))
    say(f"write: {sum(s['n'] for s in shards)} samples in {len(shards)} shards; rejects/ written")
    return {
        "kind": "webdataset_shards",
        "counts": {"kept": n_kept, "downloaded": download["rows"], "shards": len(shards)},
        "balance": balance,
        "download": download,
        "shards": [{k: e[k] for k in ("path", "sidecar", "n", "sha256", "bytes")} for e in shards],
        "outputs": {"shards": "shards/", "rejects": "rejects/", "stats": "stats/", "dedup": "dedup/"},
    }


def _col(name: str):
    from ray.data.expressions import col

    return col(name)


def download_parts(cfg: BuildConfig, run: RunDir, selected, say: Say) -> dict:
    """Download every live row of `selected` in parts, skipping parts a killed earlier run committed. Returns
    {rows, parts, committed_before, downloaded_now}; raises if a part is still missing afterwards."""
    live = read_table(run, "work/selected", ["uid", "reject_reason"])
    uids = live.filter(pc.is_null(live["reject_reason"]))["uid"]
    n_parts = max(1, math.ceil(len(uids) / cfg.download.rows_per_part))
    expected = {int(p) for p in np.unique(uid_buckets(uids, n_parts, PART_SALT))}
    out_dir = run.path("work", "download")
    before = committed_parts(out_dir, cfg.s3) & expected
    pending = sorted(expected - before)
    say(
        f"download: {len(uids)} rows in {len(expected)} parts; {len(before)} committed by an earlier run, "
        f"{len(pending)} to download"
    )
    if pending:
        from ray.data.expressions import col

        names = [c for c in PART_INPUT_COLUMNS if c in selected.schema().names]
        ds = selected.filter(expr=col("reject_reason").is_null()).select_columns(names)
        ds = run_stages(ds, [StageSpec(add_part_column, n_parts)]).filter(expr=col("part").is_in(pending))
        stage_cfg = DownloadPartsConfig(
            fetch=FetchImagesConfig(download=cfg.download, image=cfg.image), out_dir=out_dir, s3=cfg.s3
        )
        parts = min(len(pending), MAX_GROUP_PARTITIONS)
        done = apply_group_stage(ds, "part", StageSpec(DownloadPartStage, stage_cfg), num_partitions=parts)
        summary = pa.Table.from_pylist(done.take_all())
        ok = int(pc.sum(summary["ok"]).as_py() or 0) if summary.num_rows else 0
        say(f"download: {len(pending)} parts, {ok} images ok")
    missing = expected - committed_parts(out_dir, cfg.s3)
    if missing:
        raise ClipforgeError(f"download parts {sorted(missing)[:10]} were not committed; re-run to finish them")
    return {"rows": len(uids), "parts": len(expected), "committed_before": len(before), "downloaded_now": len(pending)}


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


def final_decisions(cfg: BuildConfig, run: RunDir, dedup: list[StageSpec], t: float, n_entries: int, say: Say):
    """count₂ over the rows that survive dedup → stats/entry_counts_dedup.npy → the stages after download
    (dedup + balance at t). Returns (stage list, balance summary)."""
    specs = list(dedup)
    info: dict = {}
    if "balance" in cfg.stages:
        light = run_stages(run.read("work", "download", columns=LIGHT_COLUMNS), chained(dedup))
        counts = count_entries(light, n_entries)
        uri = run.write_npy("stats/entry_counts_dedup.npy", counts)
        info = {"matches_after_dedup": int(counts.sum()), "entries_after_dedup": int((counts > 0).sum())}
        say(f"count₂: {info['matches_after_dedup']} matches over {info['entries_after_dedup']} entries after dedup")
        specs.append(StageSpec(BalanceStage, BalanceStageConfig(counts=uri, t=t, seed=cfg.balance.seed, s3=cfg.s3)))
    return chained(specs), info


def write_shards(cfg: BuildConfig, run: RunDir, specs: list[StageSpec], n_kept: int, say: Say) -> list[dict]:
    """Kept rows → shards, skipping shards whose ledger entry exists. Returns every shard's entry, by shard."""
    from ray.data.expressions import col

    n_shards = shard_count(n_kept, cfg.shards.samples_per_shard)
    kept = read_table(run, "work/final", ["uid", "reject_reason"])
    kept_uids = kept.filter(pc.is_null(kept["reject_reason"]))["uid"]
    expected = {int(s) for s in np.unique(uid_buckets(kept_uids, n_shards, SHARD_SALT))} if n_kept else set()
    done = {s: e for s, e in committed_shards(run).items() if s in expected}
    pending = sorted(expected - set(done))
    say(f"shards: {n_kept} samples in {len(expected)} shards; {len(done)} committed earlier, {len(pending)} to write")
    if pending:
        ds = run_stages(run.read("work", "download"), specs).filter(expr=col("reject_reason").is_null())
        names = [c for c in [*SIDECAR_COLUMNS, "image"] if c in ds.schema().names]
        ds = run_stages(ds.select_columns(names), [StageSpec(add_shard_column, n_shards)])
        ds = ds.filter(expr=col("shard").is_in(pending))
        writer = ShardWriteConfig(run=cfg.output, image_ext=cfg.image.encode_format, s3=cfg.s3)
        groups = min(len(pending), MAX_GROUP_PARTITIONS)
        apply_group_stage(ds, "shard", StageSpec(write_shard, writer), num_partitions=groups).materialize()
    entries = {s: e for s, e in committed_shards(run).items() if s in expected}
    if set(entries) != expected:
        raise ClipforgeError(f"shards {sorted(expected - set(entries))[:10]} were not written; re-run to finish")
    return [entries[s] for s in sorted(entries)]
