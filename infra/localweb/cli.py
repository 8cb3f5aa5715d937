"""`clipforge web ...` commands: generate a synthetic web, serve it on loopback. Imports stay light (the heavy modules
load inside the commands) because the root CLI imports this module at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

web_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

OutDirArg = Annotated[
    Path, typer.Argument(help="The synthetic web's directory (candidates, answers, eval, web.json).")
]


@web_app.callback()
def _web() -> None:
    """Generate and serve the synthetic web: a seeded corpus of image URLs and captions, and a loopback server that
    serves its images and faults."""


@web_app.command()
def generate(
    out_dir: OutDirArg,
    config: Annotated[Path | None, typer.Argument(help="YAML WebConfig (defaults apply when omitted).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a config key: --set n_candidates=10000.")
    ] = None,
) -> None:
    """Write OUT_DIR/candidates.parquet (url, caption), answers.parquet (ground truth the pipeline must not read),
    eval/ (held-out split), wat/ (pages as Common Crawl WAT files, with their expected pairs) and web.json. Port 0
    in base_url picks a free loopback port and records it."""
    import time

    from infra.localweb.config import WebConfig
    from pipeline.core.config import load_config

    cfg = load_config(WebConfig, config, set_ or [])  # before the heavy imports: a typo fails fast
    from infra.localweb.generate import generate as generate_web

    start = time.monotonic()
    info = generate_web(cfg, out_dir)
    counts = info["counts"]
    faulty = counts["rows"] - counts["by_fault"].get("ok", 0)
    lines = [
        f"clipforge web: wrote {counts['rows']} candidates to {out_dir} in {time.monotonic() - start:.1f} s",
        f"  faults: {faulty} rows over {len(counts['by_fault']) - 1} kinds; roles: {counts['by_role']}",
        f"  duplicate clusters: {counts['dup_clusters']} ({counts['rows_in_dup_clusters']} rows); "
        f"captions: {counts['by_caption_kind']}; languages: {counts['by_lang']}",
        f"  eval split: {counts['eval_images']} images of {len(info['class_names'])} classes in {out_dir / 'eval'}",
        f"  base_url: {info['base_url']}  (serve it with: clipforge web serve {out_dir})",
    ]
    if counts.get("wat"):
        wat = counts["wat"]
        lines.insert(
            -1,
            f"  WAT files: {wat['pages']} pages in {wat['files']} files, {wat['pairs']} pairs in "
            f"{out_dir / 'wat'} (clipforge extract {out_dir / 'wat'} --output PAIRS)",
        )
    typer.echo("\n".join(lines))


@web_app.command()
def serve(
    out_dir: OutDirArg,
    prewarm: Annotated[int, typer.Option(help="Render and cache the first N candidate images before serving.")] = 0,
    threads: Annotated[int, typer.Option(help="Event loops (threads) serving connections round-robin.")] = 2,
    ready_file: Annotated[
        Path | None, typer.Option(help="Once serving, write {base_url, port, pid} as JSON here.")
    ] = None,
    access_log: Annotated[
        bool, typer.Option(help="Append one JSON line per request (host, path, start, end) to OUT_DIR/access.log.")
    ] = True,
) -> None:
    """Serve OUT_DIR's images and faults on the host and port recorded in its web.json until Ctrl-C; with
    virtual_hosts, every site-NNN.web.test by its Host header (map the names to 127.0.0.1)."""
    from infra.localweb.config import load_web

    load_web(out_dir)  # before the heavy imports: a missing web fails fast
    from infra.localweb.handle import serve_forever

    def announce(cfg) -> None:
        typer.echo(f"clipforge web: serving {out_dir} at {cfg.base_url} (loopback only). Ctrl-C to stop.")
        typer.get_text_stream("stdout").flush()  # a pipe is block-buffered: readers wait for this line

    serve_forever(
        out_dir, prewarm=prewarm, threads=threads, ready_file=ready_file, on_ready=announce, access_log=access_log
    )
    typer.echo("clipforge web: stopped.")
