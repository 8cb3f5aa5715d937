"""The `clipforge` console script: one typer app, one subcommand per user journey.

Heavy imports (Ray, torch, the local web) happen inside the commands so `clipforge --help` stays fast.
User errors (`ClipforgeError`, including config errors) print one paragraph and exit 2 — never a traceback.
Commands whose issue has not landed say so plainly and exit 2; they do not pretend.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline import __version__
from pipeline.core.errors import ClipforgeError, user_error

app = typer.Typer(
    name="clipforge",
    help="Curate web image-text data (MetaCLIP/WIT), train and evaluate CLIP models, on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigArg = Annotated[Path | None, typer.Argument(help="YAML config file (defaults apply when omitted).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a config key: --set a.b=c (repeatable).")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More logging (Ray's included).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final summary.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipforge {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """clipforge: build curated image-text datasets, train CLIP on them, evaluate, report."""


@app.command()
def build(
    config: ConfigArg = None,
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and exit.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete the run directory first (else an unfinished run resumes).")
    ] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
):
    """Build a curated dataset: ingest -> text -> match -> count -> [pre-balance] -> download -> dedup -> balance ->
    WebDataset shards + rejects + stats + manifest. Re-running a killed build resumes it."""
    from pipeline.build_config import BuildConfig
    from pipeline.core.config import load_config

    cfg = load_config(BuildConfig, config, set_)
    from pipeline.build import dry_run_report, ignored_line, open_run, plan, preflight
    from pipeline.rundir import RunDir
    from pipeline.stats import format_funnel, load_stats

    if dry_run:
        # The preflight's findings go to stderr, the plan alone to stdout (one numbered step a line, for scripts).
        lines, warnings = dry_run_report(cfg, overwrite)  # preflight and the output check: a problem exits 2
        typer.echo("\n".join(["preflight:", *(f"  {line}" for line in lines)]), err=True)
        typer.echo("\n".join(f"{i + 1:>2}. {step}" for i, step in enumerate(plan(cfg))))
        for warning in warnings:
            typer.echo(f"warning: {warning}", err=True)
        return
    say = (lambda m: None) if quiet else (lambda m: typer.echo(f"build: {m}"))
    # Everything that needs no cluster answers before Ray starts: bad input, a refused output, a config mismatch
    # and an already complete run.
    inputs = preflight(cfg)
    if inputs.ignored:
        typer.echo(f"note: {ignored_line(inputs)}", err=True)
    manifest = open_run(cfg, RunDir(cfg.output, cfg.s3), say, overwrite)
    if manifest is None:
        manifest = _execute_build(cfg, say, verbose, quiet, _build_command(config, set_))
    typer.echo(format_funnel(load_stats(cfg.output)) if not quiet else f"kept {manifest['counts']['kept']}")
    typer.echo(f"run directory: {cfg.output}")


def _execute_build(cfg, say, verbose: bool, quiet: bool, command: str) -> dict:
    """Start Ray and run the opened build; an interruption or a user error mid-build says how to resume."""
    from pipeline.build import execute
    from pipeline.core.ray_setup import init_ray, show_progress_bars

    init_ray(verbose=verbose)
    show_progress_bars(quiet)
    resume = (
        f"{cfg.output} keeps what was committed. Resume with the same command:\n  {command}\n"
        "or add --overwrite to start again."
    )
    try:
        return execute(cfg, say=say)
    except KeyboardInterrupt:
        typer.echo(f"\nbuild interrupted; {resume}", err=True)
        raise typer.Exit(130) from None
    except Exception as e:
        user = user_error(e)  # a user error raised in a Ray task arrives wrapped in the worker's traceback
        if user is None:
            raise
        raise ClipforgeError(f"{user}\nThe build stopped; {resume}") from None


def _build_command(config: Path | None, set_: list[str] | None) -> str:
    """The `clipforge build` command line that resumes this build (its config and --set overrides)."""
    import shlex

    args = ["clipforge", "build", *([str(config)] if config is not None else [])]
    for item in set_ or []:
        args += ["--set", item]
    return shlex.join(args)


@app.command()
def extract(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="WAT files (.warc.wat.gz, gzipped or not), directories, globs, s3:// prefixes or a Common Crawl "
            "listing (wat.paths.gz; relative lines are joined to extract.base_url).",
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Output directory (local or s3://).")],
    set_: SetOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete an earlier extract run there first (else it resumes).")
    ] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
):
    """Extract image-text pairs from Common Crawl WAT files: OUT/candidates/ (url, caption, caption_source,
    page_url, pages; what `clipforge build --set input.path=OUT/candidates` reads), OUT/stats/extract.json and
    OUT/manifest.json. One Ray task per file; re-running a killed run skips the files it committed."""
    from pipeline.core.config import apply_overrides, validate_config
    from pipeline.extract_config import ExtractConfig

    source = "the command line" + (" with --set " + " ".join(set_) if set_ else "")
    cfg = validate_config(ExtractConfig, apply_overrides({"input": inputs, "output": output}, set_ or []), source)
    from pipeline.extract import execute, open_run, preflight

    say = (lambda m: None) if quiet else (lambda m: typer.echo(f"extract: {m}"))
    files = preflight(cfg)  # bad input exits 2 before anything is written under OUT
    manifest = open_run(cfg, say, overwrite)
    if manifest is None:
        from pipeline.core.ray_setup import init_ray, show_progress_bars

        init_ray(verbose=verbose)
        show_progress_bars(quiet)
        manifest = execute(cfg, files, say)
    counts = manifest["counts"]
    typer.echo(
        f"extract: {counts['files']} files, {counts['pairs']} pairs, {counts['candidates']} candidates "
        f"-> {output.rstrip('/')}/candidates (stats: stats/extract.json)"
    )
    if manifest["status"] != "complete":
        typer.echo(
            f"error: {counts['errors']} file(s) could not be read (stats/extract.json lists them); "
            "re-run the same command to retry them",
            err=True,
        )
        raise typer.Exit(1)


@app.command()
def train(config: ConfigArg = None, set_: SetOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False):
    """Train a CLIP model with Ray Train on a build's shards; re-running with the same name resumes."""
    import os

    from pipeline.core.config import load_config
    from pipeline.core.ray_setup import init_ray
    from training.config import TrainConfig, config_warnings
    from training.console import progress_line, summary_text
    from training.trainer import preflight, run_training

    cfg = load_config(TrainConfig, config, set_)
    for warning in config_warnings(cfg):
        typer.echo(f"warning: {warning}", err=True)
    preflight(cfg)  # a missing build, an unknown model or another run's name is reported before Ray starts
    # A local Ray's default soft limit (= CPUs) recycles idle task processes between epochs, and every new data
    # process re-imports open_clip (~10 CPU-s on 2 cores); a few warm spares make epochs 5x cheaper there.
    os.environ.setdefault("RAY_num_workers_soft_limit", "8")
    init_ray(verbose=verbose)
    summary = run_training(cfg, on_progress=None if quiet else lambda m: typer.echo(progress_line(m)))
    typer.echo(summary_text(summary))


@app.command("eval")
def eval_(
    config: ConfigArg = None,
    set_: SetOpt = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="A local-dir export (directory) or a weights file for --model.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="open_clip config name or local-dir:PATH.")] = None,
    benchmarks: Annotated[
        str | None, typer.Option(help="Comma-separated: digits, synthetic:PATH, imagefolder:PATH, wds:PATH, ...")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output directory.")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run the evaluation as a Ray task.")] = False,
    num_gpus: Annotated[float | None, typer.Option(help="GPUs for the Ray task (implies --ray).")] = None,
    verbose: VerboseOpt = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors, the result tables and their path (no progress).")
    ] = False,
):
    """Evaluate an open_clip checkpoint: zero-shot, retrieval, linear probe -> results.json + results.md."""
    import logging
    import warnings

    from evaluation.command import load_eval_config, run_eval

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR)
    if quiet:
        warnings.simplefilter("ignore")  # library warnings (sklearn convergence, torch) are progress noise here
    cfg = load_eval_config(config, set_, checkpoint, model, benchmarks, output, ray, num_gpus)
    out, markdown = run_eval(cfg, say=None if quiet else lambda m: typer.echo(f"eval: {m}"))
    typer.echo(markdown)
    typer.echo(f"results: {out / 'results.json'}, {out / 'results.md'}")


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="A build's run directory (local or s3://).")],
    out: Annotated[str | None, typer.Option("--out", "-o", help="Where to write (default RUN/report.html).")] = None,
    train_run: Annotated[
        str | None, typer.Option("--train-run", help="A training run directory (default: RUN/train/ if present).")
    ] = None,
    eval_dir: Annotated[
        str | None, typer.Option("--eval", help="An evaluation output directory (default: RUN/eval/ if present).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample grid and duplicate examples.")] = 0,
):
    """Write RUN/report.html, the self-contained curation report (no network, no scripts)."""
    from pipeline.report import write_report

    typer.echo(f"report: {write_report(run, out, train_run=train_run, eval_dir=eval_dir, seed=seed)}")


@app.command()
def stats(run: Annotated[str, typer.Argument(help="A build's run directory (local or s3://).")]):
    """Print a build's funnel and top rejection reasons; for a build still running, what it has committed so far."""
    from pipeline.stats import format_funnel, load_stats, run_progress

    progress = run_progress(run)
    typer.echo("\n".join(progress) if progress else format_funnel(load_stats(run)))


submit_app = typer.Typer(
    help="Run build/train/eval as Ray jobs on a cluster (Ray Job Submission) and follow, query or stop them.",
    no_args_is_help=True,
)
app.add_typer(submit_app, name="submit")
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="Ray job server (dashboard) URL, e.g. http://HEAD:8265; default: $RAY_ADDRESS."),
]
JobArg = Annotated[str, typer.Argument(help="Submission id, as `clipforge submit` printed it.")]
FollowOpt = Annotated[bool, typer.Option("--follow", "-f", help="Stream the logs; exit with the job's status.")]


def _submit_command(command: str):
    def run(
        config: ConfigArg = None,
        set_: SetOpt = None,
        address: AddressOpt = None,
        follow: FollowOpt = False,
        installed: Annotated[
            bool, typer.Option("--installed", help="The cluster image has clipforge: ship only the config.")
        ] = False,
        working_dir: Annotated[
            Path | None, typer.Option("--working-dir", help="Checkout to ship (default: this clipforge's).")
        ] = None,
        env: Annotated[list[str] | None, typer.Option("--env", "-e", help="Job env var KEY=VALUE (repeated).")] = None,
        pip: Annotated[list[str] | None, typer.Option("--pip", help="Extra pip requirement (repeatable).")] = None,
        exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Leave out of the package.")] = None,
        entrypoint_num_cpus: Annotated[float | None, typer.Option(help="CPUs reserved for the driver.")] = None,
        entrypoint_num_gpus: Annotated[float | None, typer.Option(help="GPUs reserved for the driver.")] = None,
        submission_id: Annotated[str | None, typer.Option(help="Job id to use (default: Ray picks one).")] = None,
    ):
        from infra import submit as jobs
        from pipeline.app.configs import resolve_config

        spec = jobs.JobSpec(
            command=command,
            config_yaml=resolve_config(command, config, set_),  # a bad config exits 2 before any network
            mode="installed" if installed else "working_dir",
            project_dir=working_dir,
            env_vars=jobs.parse_env(env),
            pip=list(pip or []),
            excludes=list(exclude or []),
            entrypoint_num_cpus=entrypoint_num_cpus,
            entrypoint_num_gpus=entrypoint_num_gpus,
            submission_id=submission_id,
        )
        client = jobs.connect(address)
        job_id = jobs.submit(client, spec)
        typer.echo(job_id)
        if not follow:
            typer.echo(f"follow: clipforge submit logs {job_id} --follow   status: clipforge submit status {job_id}")
            return
        status = jobs.follow(client, job_id, write=lambda s: typer.echo(s, nl=False))
        typer.echo(f"job {job_id}: {status}")
        raise typer.Exit(jobs.exit_code(status))

    run.__doc__ = f"Submit `clipforge {command} CONFIG` as a Ray job (CONFIG is validated here first); print its id."
    return run


for _command in ("build", "train", "eval"):
    submit_app.command(_command)(_submit_command(_command))


@submit_app.command("status")
def submit_status(job: JobArg, address: AddressOpt = None):
    """Print a job's status, command and times."""
    from infra import submit as jobs

    typer.echo(jobs.describe(jobs.job_info(jobs.connect(address), job)))


@submit_app.command("logs")
def submit_logs(
    job: JobArg,
    address: AddressOpt = None,
    follow: FollowOpt = False,
):
    """Print a job's logs (or stream them until it ends with --follow)."""
    from infra import submit as jobs

    client = jobs.connect(address)
    if not follow:
        typer.echo(jobs.job_logs(client, job), nl=False)
        return
    status = jobs.follow(client, job, write=lambda s: typer.echo(s, nl=False))
    typer.echo(f"job {job}: {status}")
    raise typer.Exit(jobs.exit_code(status))


@submit_app.command("stop")
def submit_stop(job: JobArg, address: AddressOpt = None):
    """Stop a running job."""
    from infra import submit as jobs

    stopped = jobs.stop_job(jobs.connect(address), job)
    typer.echo(f"job {job}: {'stop requested' if stopped else 'already finished'}")


@submit_app.command("list")
def submit_list(address: AddressOpt = None):
    """List the cluster's jobs, oldest first."""
    from infra import submit as jobs

    for info in jobs.list_jobs(jobs.connect(address)):
        command = (info.metadata or {}).get("clipforge_command", "-")
        typer.echo(f"{info.submission_id or info.job_id}  {info.status.value:<9}  {command:<5}  {info.entrypoint}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its web, run and outputs.")] = Path("demo-out"),
    s3: Annotated[bool, typer.Option("--s3", help="Use the local S3 server as storage.")] = False,
    s3_endpoint: Annotated[
        str | None,
        typer.Option(
            "--s3-endpoint",
            metavar="URL",
            help="Implies --s3: use the S3-compatible server at URL (bucket clipforge-demo, created if absent; "
            "credentials from the AWS environment) instead of starting one.",
        ),
    ] = None,
    size: Annotated[int, typer.Option(help="Number of synthetic candidates.")] = 4000,
    steps: Annotated[int, typer.Option(help="Training steps (global batch 64).")] = 900,
    from_list: Annotated[
        bool,
        typer.Option(
            "--from-list",
            help="Build from the web's candidate list (web/candidates.parquet) instead of extracting its crawl's "
            "WAT files first.",
        ),
    ] = False,
    languages: Annotated[
        str | None,
        typer.Option(
            "--languages",
            help="Metadata languages, comma-separated (default: English and every language of the web's captions "
            "with an offline list: worldwide curation); en alone builds the English-only demo (one metadata.json).",
        ),
    ] = None,
    verbose: VerboseOpt = False,
):
    """Run the main job end to end on the embedded default: a synthetic web on 127.0.0.1 and its crawl (WAT files),
    a local Ray, extract -> build -> train -> eval -> report."""
    from pipeline.app.demo import DEMO_LANGUAGES, run_demo

    chosen = DEMO_LANGUAGES if languages is None else tuple(x.strip() for x in languages.split(",") if x.strip())

    run_demo(
        workdir=workdir,
        use_s3=s3,
        size=size,
        steps=steps,
        verbose=verbose,
        s3_endpoint=s3_endpoint,
        from_list=from_list,
        languages=chosen,
    )


metadata_app = typer.Typer(help="Build or inspect MetaCLIP-format metadata (entry lists).", no_args_is_help=True)
app.add_typer(metadata_app, name="metadata")


@metadata_app.command("build")
def metadata_build(
    config: ConfigArg = None,
    set_: SetOpt = None,
    target: Annotated[
        int | None, typer.Option(help="Stop at this many entries (config key `target`; default 500000).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON list to write (config key `output`); a directory with --languages."),
    ] = None,
    languages: Annotated[
        str | None,
        typer.Option(
            "--languages",
            help="Worldwide: comma-separated languages (en,de,zh,...) or all; writes {lang}.json + sources.json "
            "into the --output directory.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing list (new entry ids!).")] = False,
):
    """Build a metadata list offline (WordNet, wordfreq, PMI bigrams, titles, numbers), or with --languages one
    list per language (Meta CLIP 2's worldwide metadata)."""
    import time

    from curation.metadata import MetadataConfig, build_metadata, write_metadata
    from pipeline.core.config import load_config

    overrides = list(set_ or [])
    overrides += [f"target={target}"] if target is not None else []
    overrides += [f"output={output}"] if output is not None else []
    overrides += ["overwrite=true"] if overwrite else []
    if languages is not None:
        _metadata_build_worldwide(config, overrides, languages)
        return
    cfg = load_config(MetadataConfig, config, overrides)
    if cfg.output.exists() and not cfg.overwrite:
        raise ClipforgeError(
            f"{str(cfg.output)!r} exists; entry ids are frozen once written. Pass --overwrite to replace it."
        )
    start = time.monotonic()
    try:
        built = build_metadata(cfg)
        path, sidecar = write_metadata(built, cfg)
    except (OSError, ValueError) as e:
        raise ClipforgeError(f"metadata build failed: {e}") from None
    counts = ", ".join(f"{name} {n}" for name, n in built.counts().items())
    typer.echo(f"wrote {len(built.entries)} entries to {path} in {time.monotonic() - start:.1f}s ({counts})")
    typer.echo(f"sources sidecar: {sidecar}")


def _metadata_build_worldwide(config: Path | None, overrides: list[str], languages: str) -> None:
    """`metadata build --languages`: one list per language into a directory (curation.metadata_worldwide)."""
    import time

    from curation.metadata_worldwide import WorldwideMetadataConfig, build_worldwide
    from pipeline.core.config import load_config

    chosen = "all" if languages.strip() == "all" else [x.strip() for x in languages.split(",") if x.strip()]
    if not chosen:
        raise ClipforgeError("--languages is empty; give e.g. en,de,zh or all")
    cfg = load_config(WorldwideMetadataConfig, config, overrides).model_copy(update={"languages": chosen})
    start = time.monotonic()
    try:
        record = build_worldwide(cfg, say=typer.echo)
    except (OSError, ValueError) as e:
        raise ClipforgeError(f"metadata build failed: {e}") from None
    total = sum(v["n_entries"] for v in record["languages"].values())
    typer.echo(
        f"wrote {len(record['languages'])} language lists ({total} entries) to {cfg.output} in "
        f"{time.monotonic() - start:.1f}s; sources: {cfg.output / 'sources.json'}"
    )


@metadata_app.command("info")
def metadata_info(
    path: Annotated[Path, typer.Argument(help="metadata.json")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Print counts per source of a metadata list."""
    import json

    from curation.metadata import metadata_info as summarize
    from curation.metadata import sidecar_path

    if not path.is_file():
        raise ClipforgeError(f"metadata file {str(path)!r} does not exist (or is not a file).")
    try:
        info = summarize(path)
    except (OSError, ValueError) as e:
        raise ClipforgeError(f"cannot read metadata: {e}") from None
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{path}: {info['n_entries']} entries, {info['n_unique']} unique, {info['n_duplicates']} duplicates")
    typer.echo(f"sha256: {info['sha256']}")
    if info["sources"] is None:
        why = "no sidecar" if info["sidecar"] == "absent" else "sidecar does not match this file"
        typer.echo(f"sources: unknown ({why}: {sidecar_path(path)})")
    else:
        typer.echo("entries per source:")
        for name, n in info["sources"].items():
            typer.echo(f"  {name:<10} {n:>8}")
    typer.echo(
        f"multi-word: {info['n_multiword']}; empty: {info['n_empty']}; "
        f"single punctuation: {info['n_single_punctuation']}"
    )
    typer.echo("sample: " + "  ".join(f"[{i}] {e!r}" for i, e in info["sample"]))


def _register_infra() -> None:
    from infra.locals3.cli import s3_app
    from infra.localweb.cli import web_app

    app.add_typer(web_app, name="web", help="Generate and serve the synthetic web (for demos, tests, benchmarks).")
    app.add_typer(s3_app, name="s3", help="Run an S3-compatible server on loopback (moto server mode).")


_register_infra()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning user errors into one paragraph and exit status 2."""
    try:
        app(args=argv, prog_name="clipforge")
    except ClipforgeError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
