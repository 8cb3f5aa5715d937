"""`clipforge build`: the curation graph on Ray Data, top to bottom; each global step is a named barrier.

Phases (the stages in the config choose which run; DESIGN.md §1):
  preflight (input files, metadata, eval sets — before anything is written)
  ingest → canonicalize → text (normalise, filters, LID) → match → one record per URL   [work/matched]
  count₁ (entry counts, t)                                                            [stats/entry_counts_pre.npy]
  text-only: balance → curated/ + rejects/
  images: pre_balance (optional, t_pre = oversample × t) [work/selected] → download parts [work/download/part-*]
          → dedup barriers [dedup/*.parquet] → count₂ [stats/entry_counts_dedup.npy] → balance at t [work/final]
          → shards/ (tar + sidecar, ledger work/shards/*.json) → rejects/
  count of kept entries [stats/entry_counts_post.npy], funnel, accounting, manifest.json (written last; its
  `status: complete` is the commit point). A killed run re-run with the same config resumes (docs/build.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.build_checks import config_differences, foresight_lines, guard_output, recorded_config, sample_urls
from pipeline.build_config import BuildConfig, TextConfig
from pipeline.build_images import image_steps
from pipeline.core.config import config_hash
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import Uri, exists
from pipeline.extract import KIND as EXTRACT_KIND
from pipeline.extract import extract_source
from pipeline.ingest import check_candidates, input_columns, read_candidates
from pipeline.nothing_kept import why_nothing_kept
from pipeline.rundir import RunDir, enter_run, write_rejects
from pipeline.stages.balance import (
    BalanceStage,
    BalanceStageConfig,
    choose_t,
    count_entries,
    worldwide_balance,
    write_counts,
    write_language_funnel,
    write_languages,
)
from pipeline.stages.base import StageSpec, run_stages, setup_scope
from pipeline.stages.download import load_opt_out
from pipeline.stages.embed import check_model, check_stored_width
from pipeline.stages.match import (
    METADATA_LANG,
    MatchStage,
    MatchStageConfig,
    entry_layout,
    language_funnel,
    metadata_files,
)
from pipeline.stages.text import TextStage, canonicalize, one_record_per_url
from pipeline.stats import accounting, funnel, package_versions
from pipeline.steps import BuildState, Say, Step, reject_order, run_steps

KEPT_COLUMNS = ["uid", "url", "caption", "lang", "lang_score", METADATA_LANG, "entry_ids", "keep_prob"]


def text_config(cfg: BuildConfig) -> TextConfig:
    """`cfg.text` with what follows the metadata resolved. `langid.keep: metadata`: en for a single-file (English)
    list — English-only builds as before — and every language for a metadata directory, whose match stage rejects a
    caption in a language without a list as `no_metadata_language`. `filters.script_chars_as_words: null`: on for a
    metadata directory (CJK/Thai captions have no spaces to count words by), off otherwise."""
    langid, filters = cfg.text.langid, cfg.text.filters
    if langid.keep != "metadata" and filters.script_chars_as_words is not None:
        return cfg.text
    worldwide = "match" in cfg.stages and metadata_files(cfg.match.metadata, cfg.s3) is not None
    if langid.keep == "metadata":
        langid = langid.model_copy(update={"keep": None if worldwide else ["en"]})
    if filters.script_chars_as_words is None:
        filters = filters.model_copy(update={"script_chars_as_words": worldwide})
    return cfg.text.model_copy(update={"langid": langid, "filters": filters})


def text_phase(cfg: BuildConfig) -> list[StageSpec]:
    specs = [StageSpec(TextStage, text_config(cfg))] if "text" in cfg.stages else []
    if "match" in cfg.stages:
        specs.append(StageSpec(MatchStage, MatchStageConfig(metadata=cfg.match.metadata, s3=cfg.s3)))
    return specs


def _text_plan(cfg: BuildConfig) -> list[str]:
    return [
        "ingest",
        "canonicalize",
        *[s.name for s in text_phase(cfg)],
        "one_record_per_url (barrier: sort by uid; one matched caption drawn per URL)",
        "checkpoint work/matched",
    ]


def _text_step(state: BuildState) -> None:
    cfg, run = state.cfg, state.run
    t0 = time.monotonic()
    matched = run.checkpoint_once("matched", lambda: _text_rows(cfg))
    state.values.update(matched=matched, input_rows=run.read_json("work/matched.done")["rows"])
    took = time.monotonic() - t0
    state.say(f"text + match: {state.values['input_rows']} rows checkpointed ({_live(matched)} live) in {took:.1f}s")


TEXT = Step("text", _text_step, _text_plan, rejects=(TextStage.name, TextStage.langid_stage, MatchStage.name))


def _balance_text_only(state: BuildState) -> None:
    cfg, run, matched = state.cfg, state.run, state.values["matched"]
    layout = entry_layout(cfg.match.metadata, cfg.s3)
    counts = count_entries(matched, layout)
    write_counts(run, "pre", counts, layout)
    t, state.values["balance"] = choose_t(cfg.balance, counts, matched, state.say, layout)
    write_languages(run, layout, state.values["balance"])
    stage_cfg = BalanceStageConfig(
        counts=run.path("stats/entry_counts_pre.npy"),
        t=t,
        seed=cfg.balance.seed,
        s3=cfg.s3,
        **worldwide_balance(layout, state.values["balance"]),
    )
    state.values["decided"] = run_stages(matched, [StageSpec(BalanceStage, stage_cfg)])


def _write_text_only(state: BuildState) -> None:
    cfg, run = state.cfg, state.run
    n_kept, _ = write_outputs(run, state.values.get("decided", state.values["matched"]))
    if "match" in cfg.stages:
        layout = entry_layout(cfg.match.metadata, cfg.s3)
        # nothing kept: curated/ may hold no file to read back
        counts = count_entries(run.read("curated"), layout) if n_kept else np.zeros(layout.n_entries, np.uint64)
        write_counts(run, "post", counts, layout)
        if layout.worldwide:
            langs = []
            if n_kept:
                for b in run.read("curated", columns=[METADATA_LANG]).iter_batches(batch_format="pyarrow"):
                    langs += b[METADATA_LANG].to_pylist()
            write_language_funnel(run, layout, language_funnel(state.values["matched"]), langs)
    state.values["outputs"] = {
        "kind": "curated_candidates",
        "counts": {"kept": n_kept},
        "balance": state.values.get("balance", {}),
        "outputs": {"curated": "curated/", "rejects": "rejects/", "stats": "stats/"},
    }


TEXT_ONLY_BALANCE = Step(
    "balance",
    _balance_text_only,
    lambda cfg: ["count_entries (barrier) -> stats/entry_counts_pre.npy, t", "balance"],
    rejects=(BalanceStage.name,),
)
TEXT_ONLY_WRITE = Step(
    "write",
    _write_text_only,
    lambda cfg: ["write curated/ + rejects/", "count_entries (kept) -> stats/entry_counts_post.npy"],
)


def _accounting(state: BuildState) -> None:
    run, outputs = state.run, state.values["outputs"]
    check = accounting(run, input_rows=state.values["input_rows"])
    stats = funnel(run, outputs["counts"]["kept"], reject_order(steps(state.cfg)))
    why = why_nothing_kept(run, stats)
    if why:
        stats["nothing_kept"] = why
    run.write_json("stats/funnel.json", stats)
    state.values["accounting"] = check
    state.say(
        f"accounting: {check['input_rows']} input rows = {check['kept']} kept + {check['rejected']} rejected; "
        f"{check['unique_uids']} distinct URLs, each exactly once"
    )
    if why:
        state.say(why)


ACCOUNTING = Step(
    "accounting",
    _accounting,
    lambda cfg: ["every input row kept or rejected exactly once (checked); stats/funnel.json"],
)


def steps(cfg: BuildConfig) -> list[Step]:
    """The steps `build` runs for `cfg`, in order; `plan` prints them and the funnel orders its stages by them."""
    if "download" in cfg.stages:
        middle = image_steps(cfg)
    else:
        middle = ([TEXT_ONLY_BALANCE] if "balance" in cfg.stages else []) + [TEXT_ONLY_WRITE]
    return [TEXT, *middle, ACCOUNTING]


def plan(cfg: BuildConfig) -> list[str]:
    """The steps `build` runs, for `--dry-run`: each step's name and what it does, from the list `build` executes."""
    lines = ["preflight: input files, metadata, eval sets"]
    for step in steps(cfg):
        lines += [f"{step.name}: {line}" for line in step.plan(cfg)]
    return lines + ["manifest.json (written last: the commit point)"]


@dataclass(frozen=True)
class Inputs:
    """What preflight found: {input file: rows, None when unknown without a full read}, its format, the number of
    metadata entries (None without the match stage), the eval sets' paths and the input files it skips."""

    files: dict[str, int | None]
    format: str
    entries: int | None
    eval_sets: list[str]
    ignored: list[str] = field(default_factory=list)
    """Files in the input directory that are not of its format (not read)."""

    @property
    def rows(self) -> int | None:
        known = [n for n in self.files.values() if n is not None]
        return sum(known) if len(known) == len(self.files) else None


def ignored_line(inputs: Inputs) -> str:
    """The input directory's files that a build skips, for `--dry-run` and the build's first line."""
    names = ", ".join(Uri.parse(f).path.rsplit("/", 1)[-1] for f in inputs.ignored[:5])
    more = f" (+{len(inputs.ignored) - 5} more)" if len(inputs.ignored) > 5 else ""
    return f"{len(inputs.ignored)} file(s) in the input that are not {inputs.format}, not read: {names}{more}"


def preflight(cfg: BuildConfig) -> Inputs:
    """Check what a build reads before it writes anything; a problem is a `ClipforgeError` (exit 2)."""
    rows, resolved = check_candidates(cfg.input, cfg.s3)
    entries = None
    if "match" in cfg.stages:
        try:
            entries = entry_layout(cfg.match.metadata, cfg.s3).n_entries
        except (OSError, ValueError) as e:
            raise ClipforgeError(f"match.metadata {cfg.match.metadata!r}: {e}") from None
        if not entries:
            raise ClipforgeError(f"match.metadata {cfg.match.metadata!r} is an empty list")
    if "download" in cfg.stages:
        load_opt_out(cfg.download.opt_out_registry, cfg.s3)  # malformed: exit 2 naming the file and line
    if "embed" in cfg.stages:  # a missing or unloadable model, or another width than stored embeddings: exit 2 now
        check_stored_width(RunDir(cfg.output, cfg.s3), cfg.embed, check_model(cfg.embed))
    eval_sets = [s.path for s in cfg.dedup.eval_sets] if "dedup" in cfg.stages else []
    for s in cfg.dedup.eval_sets if "dedup" in cfg.stages else []:
        if not exists(s.path, cfg.s3):
            raise ClipforgeError(f"dedup.eval_sets[{s.name}].path {s.path!r} does not exist")
    return Inputs(rows, resolved.format, entries, eval_sets, resolved.ignored)


def dry_run_report(cfg: BuildConfig, overwrite: bool = False) -> tuple[list[str], list[str]]:
    """(lines, warnings) for `--dry-run`: preflight (errors raise, exit 2), the resolved inputs with row counts, what
    the build would do with `output`, and — with the download stage — the refusals foreseeable from the first
    URLs. Reads only."""
    inputs = preflight(cfg)
    lines = [f"input     {f}  ({inputs.format}, {'?' if n is None else n} rows)" for f, n in inputs.files.items()]
    if inputs.rows is None:
        lines.append("          (row counts of csv/tsv/jsonl files are known only after a full read)")
    if inputs.ignored:
        lines.append(f"ignored   {ignored_line(inputs)}")
    if inputs.entries is not None:
        lines.append(f"metadata  {Uri.parse(cfg.match.metadata)}  ({inputs.entries} entries)")
    lines += [f"eval set  {path}" for path in inputs.eval_sets]
    state = check_output(cfg, RunDir(cfg.output, cfg.s3), overwrite)
    lines.append(f"output    {Uri.parse(cfg.output)}  ({OUTPUT_STATES[state]})")
    warnings = []
    if "download" in cfg.stages:
        urls = sample_urls(cfg.input, list(inputs.files), inputs.format, cfg.s3)
        line, warning = foresight_lines(urls, cfg.download.fetch)
        lines.append(f"download  {line}")
        warnings += [warning] if warning else []
    return lines, warnings


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


OUTPUT_STATES = {
    "new": "nothing there: a new run",
    "overwrite": "an earlier clipforge run: --overwrite deletes it first",
    "resume": "an unfinished run with the same config: resumed",
    "complete": "already complete with the same config: nothing to do",
}


def check_output(cfg: BuildConfig, run: RunDir, overwrite: bool = False) -> str:
    """What a build would do with `cfg.output` (a key of OUTPUT_STATES), changing nothing. A location that is not
    empty and not recognisably a run (`build_checks.guard_output`), or a run started with a config that differs
    other than in EXECUTION_ONLY knobs (without `overwrite`), is a `ClipforgeError` naming the keys."""
    if not guard_output(cfg, run, overwrite):
        return "new"
    if overwrite:
        return "overwrite"
    old = recorded_config(run)
    if resume_identity(old) != resume_identity(cfg):
        names = [f"{s}.{k}" for s, k in EXECUTION_ONLY]
        only = " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
        differ = config_differences(old, cfg, ignore=[*names, "output"])
        listed = "; ".join(differ[:8]) + (f"; +{len(differ) - 8} more" if len(differ) > 8 else "")
        raise ClipforgeError(
            f"run directory {cfg.output!r} was started with a different config; these keys differ from its "
            f"config.yaml: {listed}. Re-run with the same config to resume (only {only} may change), or pass "
            "--overwrite to start again"
        )
    complete = run.exists("manifest.json") and run.read_json("manifest.json").get("status") == "complete"
    return "complete" if complete else "resume"


def open_run(cfg: BuildConfig, run: RunDir, say: Say, overwrite: bool = False) -> dict | None:
    """The manifest if the run is already complete (same config); None after recording config.yaml (and the run
    marker work/started.json) for a new, resumed or — with `overwrite`, after deleting the earlier run — restarted
    run. Refusals are those of `check_output`. Needs no Ray: the CLI calls it before starting Ray."""
    return enter_run(run, cfg, check_output(cfg, run, overwrite), say, "rebuild")


def build(cfg: BuildConfig, say: Say = print, overwrite: bool = False) -> dict:
    """Run the build into `cfg.output` and return the manifest. Re-running a completed run is a no-op; re-running a
    killed one resumes it; `overwrite` deletes an earlier run there first. An output that is not empty and not a
    clipforge run is refused, `overwrite` or not."""
    inputs = preflight(cfg)
    if inputs.ignored:
        say(ignored_line(inputs))
    done = open_run(cfg, RunDir(cfg.output, cfg.s3), say, overwrite)
    return done if done is not None else execute(cfg, say)


def execute(cfg: BuildConfig, say: Say = print) -> dict:
    """The steps of a run `open_run` has opened, then manifest.json (the commit point); returns the manifest."""
    run = RunDir(cfg.output, cfg.s3)
    start = time.monotonic()
    state = BuildState(cfg, run, say)
    source = extract_source(cfg.input.path, cfg.s3)  # the extraction funnel, kept with the run (the report's)
    if source is not None:
        run.write_json("stats/extract.json", {"extract": source["extract"], **source["stats"]})
    with setup_scope():  # each worker builds a stage (fastText, the matcher) once for the whole build
        run_steps(state, steps(cfg))
    outputs, check = state.values["outputs"], state.values["accounting"]
    manifest = {
        "status": "complete",
        **outputs,
        "config_hash": config_hash(cfg),
        "stages": list(cfg.stages),
        "seconds": round(time.monotonic() - start, 1),
        "seconds_by_step": state.clock.seconds,
        "versions": package_versions(),
    }
    if source is not None:
        manifest["input"] = {"kind": EXTRACT_KIND, "extract": source["extract"], "stats": "stats/extract.json"}
    manifest["counts"] = {"input_rows": check["input_rows"], **manifest["counts"], "rejected": check["rejected"]}
    run.write_json("manifest.json", manifest)
    run.remove("work")  # after the commit point: a kill here leaves a complete run with a stale work/
    return manifest


def _text_rows(cfg: BuildConfig):
    ds = run_stages(read_candidates(cfg.input, cfg.s3), [StageSpec(canonicalize), *text_phase(cfg)])
    return one_record_per_url(ds, cfg.balance.seed)


def _live(ds) -> int:
    from ray.data.expressions import col

    return ds.filter(expr=col("reject_reason").is_null()).count()


def write_outputs(run: RunDir, ds) -> tuple[int, int]:
    """Barrier: materialise the final rows once, then write kept rows to curated/ and the rest to rejects/."""
    from ray.data.expressions import col

    ds = run.checkpoint("final", ds)
    run.remove("curated")  # a killed earlier run's files would otherwise be counted twice
    kept = ds.filter(expr=col("reject_reason").is_null())
    names = ds.schema().names
    cols = [c for c in KEPT_COLUMNS if c in names] + input_columns(names)
    fs, path = run.fs("curated")
    kept.select_columns(cols).write_parquet(path, filesystem=fs)
    write_rejects(run, [ds])
    return kept.count(), ds.filter(expr=col("reject_reason").is_not_null()).count()
