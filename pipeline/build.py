"""`clipforge build`: the curation graph on Ray Data, top to bottom; each global step is a named barrier.

Phases (the stages in the config choose which run; DESIGN.md §1):
  preflight (input files, metadata, eval sets — before anything is written)
  ingest → canonicalize → one record per URL → text (normalise, filters, LID) → match   [work/matched]
  count₁ (entry counts, t)                                                            [stats/entry_counts_pre.npy]
  text-only: balance → curated/ + rejects/
  images: pre_balance (optional, t_pre = oversample × t) [work/selected] → download parts [work/download/part-*]
          → dedup barriers [dedup/*.parquet] → count₂ [stats/entry_counts_dedup.npy] → balance at t [work/final]
          → shards/ (tar + sidecar, ledger work/shards/*.json) → rejects/
  count of kept entries [stats/entry_counts_post.npy], funnel, accounting, manifest.json (written last; its
  `status: complete` is the commit point). A killed run re-run with the same config resumes (docs/build.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from pipeline.build_config import BuildConfig
from pipeline.core.config import config_hash, dump_config
from pipeline.core.errors import ClipforgeError
from pipeline.ingest import check_candidates, read_candidates
from pipeline.rundir import RunDir, write_rejects
from pipeline.stages.balance import BalanceStage, BalanceStageConfig, choose_t, count_entries
from pipeline.stages.base import StageSpec, run_stages
from pipeline.stages.match import MatchStage, MatchStageConfig, load_entries
from pipeline.stages.text import TextStage, canonicalize, one_record_per_url
from pipeline.stats import accounting, funnel, package_versions

KEPT_COLUMNS = ["uid", "url", "caption", "lang", "lang_score", "entry_ids", "keep_prob"]
Say = Callable[[str], None]


def text_phase(cfg: BuildConfig) -> list[StageSpec]:
    specs = [StageSpec(TextStage, cfg.text)] if "text" in cfg.stages else []
    if "match" in cfg.stages:
        specs.append(StageSpec(MatchStage, MatchStageConfig(metadata=cfg.match.metadata, s3=cfg.s3)))
    return specs


def plan(cfg: BuildConfig) -> list[str]:
    """The steps `build` runs, for `--dry-run`."""
    steps = ["preflight: input files, metadata, eval sets", "ingest", "canonicalize"]
    steps += [
        "one_record_per_url (barrier: groupby uid)",
        *[s.name for s in text_phase(cfg)],
        "checkpoint work/matched",
    ]
    if "download" not in cfg.stages:
        if "balance" in cfg.stages:
            steps += ["count_entries (barrier) -> stats/entry_counts_pre.npy, t", "balance"]
        return steps + [
            "write curated/ + rejects/",
            "count_entries (kept) -> stats/entry_counts_post.npy",
            "manifest.json",
        ]
    steps += ["count_entries (barrier) -> stats/entry_counts_pre.npy, t"]
    if "pre_balance" in cfg.stages:
        steps += [f"pre_balance at t_pre = {cfg.balance.oversample:g} x t"]
    steps += [
        "checkpoint work/selected",
        "download parts (fetch + decode + sha256 + pHash) -> work/download/ [resumable]",
    ]
    if "dedup" in cfg.stages:
        steps += ["exact_dedup (barrier) -> dedup/exact.parquet"] if cfg.dedup.exact else []
        steps += ["near_dedup (barrier) -> dedup/near.parquet"] if cfg.dedup.near else []
        steps += ["eval_hashes (barrier) -> dedup/eval_hashes.parquet"] if cfg.dedup.eval_sets else []
        steps += ["dedup", *(["eval_dedup"] if cfg.dedup.eval_sets else [])]
    if "balance" in cfg.stages:
        steps += ["count_entries (barrier) -> stats/entry_counts_dedup.npy", "balance at t"]
    return steps + [
        "checkpoint work/final (decisions, no image bytes)",
        "write shards/shard-NNNNNN.tar + .parquet [resumable: ledger work/shards/]",
        "write rejects/",
        "count_entries (kept) -> stats/entry_counts_post.npy; stats/funnel.json; accounting",
        "manifest.json",
    ]


def preflight(cfg: BuildConfig) -> int | None:
    """Check what a build reads before it writes anything; a problem is a `ClipforgeError` (exit 2)."""
    rows = check_candidates(cfg.input, cfg.s3)
    if "match" in cfg.stages:
        try:
            entries = load_entries(cfg.match.metadata, cfg.s3)
        except (OSError, ValueError) as e:
            raise ClipforgeError(f"match.metadata {cfg.match.metadata!r}: {e}") from None
        if not entries:
            raise ClipforgeError(f"match.metadata {cfg.match.metadata!r} is an empty list")
    from pipeline.core.storage import exists

    for s in cfg.dedup.eval_sets if "dedup" in cfg.stages else []:
        if not exists(s.path, cfg.s3):
            raise ClipforgeError(f"dedup.eval_sets[{s.name}].path {s.path!r} does not exist")
    known = [n for n in rows.values() if n is not None]
    return sum(known) if len(known) == len(rows) else None


# Knobs that change how fast a build runs, never what it writes: a resumed run may change them (more download
# threads for the rest of a crawl, as img2dataset users change thread_count between runs).
EXECUTION_ONLY: tuple[tuple[str, str], ...] = (("download", "threads"), ("download", "process_slots"))


def resume_identity(cfg: BuildConfig) -> str:
    """config_hash of `cfg` without the EXECUTION_ONLY knobs: two configs with the same identity write the same run."""
    keys: dict[str, dict[str, int]] = {}
    for section, key in EXECUTION_ONLY:
        keys.setdefault(section, {})[key] = 0
    blanked = {section: getattr(cfg, section).model_copy(update=update) for section, update in keys.items()}
    return config_hash(cfg.model_copy(update=blanked))


def open_run(cfg: BuildConfig, run: RunDir, say: Say) -> dict | None:
    """The manifest if the run is already complete (same config); None after recording config.yaml for a new or
    resumed run. A run directory started with another config (other than in EXECUTION_ONLY knobs) is an error,
    unless `--overwrite`."""
    if run.exists("config.yaml"):
        from pipeline.core.config import load_config

        try:
            old = resume_identity(load_config(BuildConfig, run.path("config.yaml")))
        except ClipforgeError:
            old = None
        if old != resume_identity(cfg):
            names = [f"{s}.{k}" for s, k in EXECUTION_ONLY]
            only = " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
            raise ClipforgeError(
                f"run directory {cfg.output!r} was started with a different config (config.yaml there differs); "
                f"re-run with the same config to resume (only {only} may change), or pass --overwrite to start again"
            )
    if run.exists("manifest.json") and run.read_json("manifest.json").get("status") == "complete":
        say(f"{cfg.output} is already complete (manifest.json); nothing to do. Use --overwrite to rebuild.")
        return run.read_json("manifest.json")
    if run.exists("config.yaml"):
        say(f"resuming the unfinished run in {cfg.output}")
    run.write_text("config.yaml", dump_config(cfg))
    return None


class Clock:
    """Seconds per named step, for the manifest and the benchmark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: str):
        t0 = time.monotonic()
        yield
        self.seconds[step] = round(self.seconds.get(step, 0.0) + time.monotonic() - t0, 2)


def build(cfg: BuildConfig, say: Say = print, overwrite: bool = False) -> dict:
    """Run the build into `cfg.output` and return the manifest. Re-running a completed run is a no-op; re-running a
    killed one resumes it; `overwrite` deletes the run directory first."""
    run = RunDir(cfg.output, cfg.s3)
    preflight(cfg)
    if overwrite:
        run.remove()
    done = open_run(cfg, run, say)
    if done is not None:
        return done
    start, clock = time.monotonic(), Clock()
    with clock("text"):
        matched = run.checkpoint_once("matched", lambda: _text_rows(cfg))
        input_rows = run.read_json("work/matched.done")["rows"]
    say(f"text + match: {input_rows} rows checkpointed ({_live(matched)} live) in {clock.seconds['text']:.1f}s")
    if "download" in cfg.stages:
        from pipeline.build_images import image_build

        outputs = image_build(cfg, run, matched, clock, say)
    else:
        outputs = text_only(cfg, run, matched, clock, say)
    with clock("accounting"):
        check = accounting(run, input_rows=input_rows)
        stats = funnel(run, outputs["counts"]["kept"])
        run.write_json("stats/funnel.json", stats)
    say(
        f"accounting: {check['input_rows']} input rows = {check['kept']} kept + {check['rejected']} rejected; "
        f"{check['unique_uids']} distinct URLs, each exactly once"
    )
    manifest = {
        "status": "complete",
        **outputs,
        "config_hash": config_hash(cfg),
        "stages": list(cfg.stages),
        "seconds": round(time.monotonic() - start, 1),
        "seconds_by_step": clock.seconds,
        "versions": package_versions(),
    }
    manifest["counts"] = {"input_rows": check["input_rows"], **manifest["counts"], "rejected": check["rejected"]}
    run.write_json("manifest.json", manifest)
    run.remove("work")  # after the commit point: a kill here leaves a complete run with a stale work/
    return manifest


def _text_rows(cfg: BuildConfig):
    ds = run_stages(read_candidates(cfg.input, cfg.s3), [StageSpec(canonicalize)])
    return run_stages(one_record_per_url(ds), text_phase(cfg))


def _live(ds) -> int:
    from ray.data.expressions import col

    return ds.filter(expr=col("reject_reason").is_null()).count()


def text_only(cfg: BuildConfig, run: RunDir, matched, clock: Clock, say: Say) -> dict:
    """[text, match, balance]: balance the candidates and write curated/ + rejects/ (no downloads)."""
    ds, balance_info = matched, {}
    with clock("balance"):
        if "balance" in cfg.stages:
            counts = count_entries(matched, len(load_entries(cfg.match.metadata, cfg.s3)))
            run.write_npy("stats/entry_counts_pre.npy", counts)
            t, balance_info = choose_t(cfg.balance, counts, matched, say)
            stage_cfg = BalanceStageConfig(counts=run.path("stats/entry_counts_pre.npy"), t=t, seed=cfg.balance.seed)
            ds = run_stages(matched, [StageSpec(BalanceStage, stage_cfg.model_copy(update={"s3": cfg.s3}))])
    with clock("write"):
        n_kept, _ = write_outputs(run, ds)
        if "match" in cfg.stages:
            kept = run.read("curated")
            run.write_npy(
                "stats/entry_counts_post.npy", count_entries(kept, len(load_entries(cfg.match.metadata, cfg.s3)))
            )
    return {
        "kind": "curated_candidates",
        "counts": {"kept": n_kept},
        "balance": balance_info,
        "outputs": {"curated": "curated/", "rejects": "rejects/", "stats": "stats/"},
    }


def write_outputs(run: RunDir, ds) -> tuple[int, int]:
    """Barrier: materialise the final rows once, then write kept rows to curated/ and the rest to rejects/."""
    from ray.data.expressions import col

    ds = run.checkpoint("final", ds)
    run.remove("curated")  # a killed earlier run's files would otherwise be counted twice
    kept = ds.filter(expr=col("reject_reason").is_null())
    cols = [c for c in KEPT_COLUMNS if c in ds.schema().names]
    fs, path = run.fs("curated")
    kept.select_columns(cols).write_parquet(path, filesystem=fs)
    write_rejects(run, [ds])
    return kept.count(), ds.filter(expr=col("reject_reason").is_not_null()).count()
