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
from pipeline.errors import ClipforgeError, NotImplementedYet

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


def _not_yet(command: str, issue: int, what: str) -> None:
    raise NotImplementedYet(
        f"`clipforge {command}` is not implemented yet: {what} lands with issue #{issue}. Nothing was run."
    )


@app.command()
def build(
    config: ConfigArg = None,
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and exit.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete the run directory first.")] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
):
    """Build a curated dataset: ingest -> text -> match -> balance (text-only today; images with issue #5)."""
    from pipeline.build_config import BuildConfig
    from pipeline.config import load_config

    cfg = load_config(BuildConfig, config, set_)
    from pipeline.build import build as run_build
    from pipeline.build import plan

    if dry_run:
        typer.echo("\n".join(f"{i + 1:>2}. {step}" for i, step in enumerate(plan(cfg))))
        return
    from pipeline.ray_setup import init_ray
    from pipeline.storage import delete

    if overwrite:
        delete(cfg.output, cfg.s3, recursive=True)
    init_ray(verbose=verbose)
    say = (lambda m: None) if quiet else (lambda m: typer.echo(f"build: {m}"))
    manifest = run_build(cfg, say=say)
    from pipeline.stats import format_funnel, load_stats

    typer.echo(format_funnel(load_stats(cfg.output)) if not quiet else f"kept {manifest['counts']['kept']}")
    typer.echo(f"run directory: {cfg.output}")


@app.command()
def train(config: ConfigArg = None, set_: SetOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False):
    """Train a CLIP model with Ray Train on a build's shards; re-running with the same name resumes."""
    import os

    from pipeline.config import load_config
    from pipeline.ray_setup import init_ray
    from training.config import TrainConfig
    from training.console import progress_line, summary_text
    from training.trainer import preflight, run_training

    cfg = load_config(TrainConfig, config, set_)
    preflight(cfg)  # a missing build or unknown model is reported before Ray starts
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
):
    """Evaluate an open_clip checkpoint: zero-shot, retrieval, linear probe -> results.json + results.md."""
    import logging

    from evaluation.command import load_eval_config, run_eval

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR)
    cfg = load_eval_config(config, set_, checkpoint, model, benchmarks, output, ray, num_gpus)
    out, markdown = run_eval(cfg)
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
    """Print a build's funnel and top rejection reasons."""
    from pipeline.stats import format_funnel, load_stats

    typer.echo(format_funnel(load_stats(run)))


@app.command()
def submit(
    what: Annotated[str, typer.Argument(help="build | train | eval | status | logs | stop")],
    target: Annotated[str | None, typer.Argument(help="CONFIG for build/train/eval, JOB id otherwise.")] = None,
):
    """Submit a build/train/eval job to a Ray cluster (Ray Job Submission)."""
    _not_yet("submit", 8, "Ray job submission")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its web, run and outputs.")] = Path("demo-out"),
    s3: Annotated[bool, typer.Option("--s3", help="Use the local S3 server as storage.")] = False,
    size: Annotated[int, typer.Option(help="Number of synthetic candidates.")] = 2000,
    verbose: VerboseOpt = False,
):
    """Run the main job end to end on the embedded default (local Ray, synthetic web on 127.0.0.1)."""
    from pipeline.demo import run_demo

    run_demo(workdir=workdir, use_s3=s3, size=size, verbose=verbose)


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
        Path | None, typer.Option("--output", "-o", help="JSON list to write (config key `output`).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing list (new entry ids!).")] = False,
):
    """Build a metadata list offline (WordNet, wordfreq, PMI bigrams, titles, numbers)."""
    import time

    from curation.metadata import MetadataConfig, build_metadata, write_metadata
    from pipeline.config import load_config

    overrides = list(set_ or [])
    overrides += [f"target={target}"] if target is not None else []
    overrides += [f"output={output}"] if output is not None else []
    overrides += ["overwrite=true"] if overwrite else []
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
