"""`clipforge build`: the curation graph on Ray Data, top to bottom; each global step is a named barrier.

Phases (the stages in the config choose which run):
  ingest → canonicalize → one record per URL → text (normalise, filters, LID) → match    [checkpoint work/matched]
  count₁ (entry counts, t)                                                            [stats/entry_counts_pre.npy]
  balance → split: curated/ (kept) and rejects/ (every dropped row: uid, url, stage, reason, detail)
  count₂, funnel, manifest.json (written last; its `status: complete` is the commit point)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow.compute as pc

from curation.balancing import entry_probs, expected_kept, t_for_tail_share, tail_share
from pipeline.build_config import BuildConfig
from pipeline.config import config_hash, dump_config
from pipeline.ingest import read_candidates
from pipeline.rundir import RunDir
from pipeline.stages.balance import BalanceStage, BalanceStageConfig, count_entries
from pipeline.stages.base import StageSpec, run_stages
from pipeline.stages.match import MatchStage, MatchStageConfig, load_entries
from pipeline.stages.text import TextStage, canonicalize, one_record_per_url
from pipeline.stats import accounting, funnel, package_versions

KEPT_COLUMNS = ["uid", "url", "caption", "lang", "lang_score", "entry_ids", "keep_prob"]
REJECT_COLUMNS = {
    "uid": "uid",
    "url": "url",
    "reject_stage": "stage",
    "reject_reason": "reason",
    "reject_detail": "detail",
}


def text_phase(cfg: BuildConfig) -> list[StageSpec]:
    specs = [StageSpec(TextStage, cfg.text)] if "text" in cfg.stages else []
    if "match" in cfg.stages:
        specs.append(StageSpec(MatchStage, MatchStageConfig(metadata=cfg.match.metadata, s3=cfg.s3)))
    return specs


def plan(cfg: BuildConfig) -> list[str]:
    """The steps `build` runs, for `--dry-run`."""
    steps = ["ingest", "canonicalize", "one_record_per_url (barrier: groupby uid)"]
    steps += [s.name for s in text_phase(cfg)] + ["checkpoint work/matched"]
    if "balance" in cfg.stages:
        steps += ["count_entries (barrier) -> stats/entry_counts_pre.npy, t", "balance"]
    return steps + [
        "write curated/ + rejects/",
        "count_entries (kept) -> stats/entry_counts_post.npy",
        "manifest.json",
    ]


def build(cfg: BuildConfig, say: Callable[[str], None] = print) -> dict:
    """Run the build into `cfg.output` and return the manifest. Re-running a completed run is a no-op."""
    run = RunDir(cfg.output, cfg.s3)
    if run.exists("manifest.json") and run.read_json("manifest.json").get("status") == "complete":
        say(f"{cfg.output} is already complete (manifest.json); nothing to do. Use --overwrite to rebuild.")
        return run.read_json("manifest.json")
    for part in ("work", "curated", "rejects", "stats"):  # an unfinished run restarts its artifacts from scratch
        run.remove(part)
    start = time.monotonic()
    run.write_text("config.yaml", dump_config(cfg))
    ds = run_stages(read_candidates(cfg.input, cfg.s3), [StageSpec(canonicalize)])
    ds = run_stages(one_record_per_url(ds), text_phase(cfg))
    ds = run.checkpoint("matched", ds)
    say(f"text + match: {ds.count()} rows checkpointed to {run.path('work', 'matched')}")
    balance_info = {}
    if "balance" in cfg.stages:
        ds, balance_info = balance_phase(cfg, run, ds, say)
    n_kept, n_rejected = write_outputs(run, ds)
    if "match" in cfg.stages:
        kept = _read(run, "curated")
        run.write_npy(
            "stats/entry_counts_post.npy", count_entries(kept, len(load_entries(cfg.match.metadata, cfg.s3)))
        )
    check = accounting(run, input_rows=read_candidates(cfg.input, cfg.s3).count())
    run.write_json("stats/funnel.json", funnel(run, n_kept))
    say(
        f"accounting: {check['input_rows']} input rows = {n_kept} kept + {n_rejected} rejected; "
        f"{check['unique_uids']} distinct URLs, each exactly once"
    )
    manifest = {
        "status": "complete",
        "kind": "curated_candidates",
        "config_hash": config_hash(cfg),
        "counts": {"input_rows": check["input_rows"], "kept": n_kept, "rejected": n_rejected},
        "balance": balance_info,
        "outputs": {"curated": "curated/", "rejects": "rejects/", "stats": "stats/"},
        "seconds": round(time.monotonic() - start, 1),
        "versions": package_versions(),
    }
    run.remove("work")
    run.write_json("manifest.json", manifest)
    return manifest


def balance_phase(cfg: BuildConfig, run: RunDir, ds, say: Callable[[str], None]):
    """count₁ barrier → t → balance stage. Returns (dataset, balance summary)."""
    n_entries = len(load_entries(cfg.match.metadata, cfg.s3))
    counts = count_entries(ds, n_entries)
    counts_uri = run.write_npy("stats/entry_counts_pre.npy", counts)
    if counts.sum() == 0:
        t = 1.0
    else:
        t = (
            float(t_for_tail_share(counts, cfg.balance.tail_share))
            if cfg.balance.t == "auto"
            else float(cfg.balance.t)
        )
    t = max(t, 1.0)
    info = {
        "t": t,
        "t_mode": "auto" if cfg.balance.t == "auto" else "fixed",
        "tail_share_at_t": tail_share(counts, t) if counts.sum() else 0.0,
        "entries_matched": int((counts > 0).sum()),
        "matches": int(counts.sum()),
        "expected_kept": round(_expected(ds, entry_probs(counts, t)), 1),
        "seed": cfg.balance.seed,
    }
    say(
        f"balance: t = {t:g} ({info['t_mode']}), {info['entries_matched']} entries matched, "
        f"expected kept {info['expected_kept']:.0f}"
    )
    stage_cfg = BalanceStageConfig(counts=counts_uri, t=t, seed=cfg.balance.seed, s3=cfg.s3)
    return run_stages(ds, [StageSpec(BalanceStage, stage_cfg)]), info


def _expected(ds, probs: np.ndarray) -> float:
    total = 0.0
    for batch in ds.select_columns(["entry_ids", "reject_reason"]).iter_batches(batch_format="pyarrow"):
        live = pc.is_null(batch["reject_reason"])
        total += expected_kept(batch["entry_ids"].filter(live).combine_chunks(), probs)
    return total


def write_outputs(run: RunDir, ds) -> tuple[int, int]:
    """Barrier: materialise the final rows once, then write kept rows to curated/ and the rest to rejects/."""
    from ray.data.expressions import col

    ds = run.checkpoint("final", ds)
    kept = ds.filter(expr=col("reject_reason").is_null())
    cols = [c for c in KEPT_COLUMNS if c in ds.schema().names]
    fs, path = run.fs("curated")
    kept.select_columns(cols).write_parquet(path, filesystem=fs)
    rejected = ds.filter(expr=col("reject_reason").is_not_null()).select_columns(list(REJECT_COLUMNS))
    fs, path = run.fs("rejects")
    rejected.rename_columns(REJECT_COLUMNS).write_parquet(path, filesystem=fs)
    return kept.count(), rejected.count()


def _read(run: RunDir, name: str):
    import ray

    fs, path = run.fs(name)
    return ray.data.read_parquet(path, filesystem=fs)
