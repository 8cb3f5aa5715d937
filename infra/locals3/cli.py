"""`clipforge s3 ...` commands: serve an S3-compatible server (moto) on loopback for demos, tests and other shells."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

s3_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@s3_app.callback()
def _s3() -> None:
    """Run an S3-compatible server on loopback (moto server mode); state lives in memory only."""


@s3_app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 0,
    host: Annotated[str, typer.Option(help="Address to bind: loopback unless --allow-non-loopback.")] = "127.0.0.1",
    bucket: Annotated[
        list[str] | None, typer.Option("--bucket", "-b", help="Create this bucket at start (repeatable).")
    ] = None,
    region: Annotated[str, typer.Option(help="Region the printed environment names.")] = "us-east-1",
    ready_file: Annotated[
        Path | None, typer.Option(help="Once serving, write {endpoint_url, port, pid} as JSON here.")
    ] = None,
    allow_non_loopback: Annotated[
        bool, typer.Option("--allow-non-loopback", help="Allow a non-loopback address (it has no authentication).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request.")] = False,
) -> None:
    """Serve an in-memory S3 until Ctrl-C (or SIGTERM), printing its endpoint and the `export` lines for another
    shell. Everything stored is lost when it stops."""
    from infra.child import hold_until, stop_on_signals
    from infra.locals3.server import LocalS3, check_loopback
    from pipeline.core.storage import Uri

    check_loopback(host, allow_non_loopback)
    buckets = [Uri.parse(f"s3://{b}").bucket for b in bucket or []]  # bad names fail before anything starts
    stop = stop_on_signals()
    with LocalS3(host, port, region=region, allow_non_loopback=allow_non_loopback, quiet=not verbose) as server:
        for name in buckets:
            server.create_bucket(name)
        lines = [
            f"clipforge s3: in-memory S3 (moto) serving at {server.endpoint_url} (region {region})",
            "buckets: " + (" ".join(f"s3://{b}" for b in buckets) or "(none yet)"),
            "State lives in this process's memory and is lost when it stops. Ctrl-C to stop.",
            "# paste into another shell:",
            *server.export_lines(),
        ]
        typer.echo("\n".join(lines))
        typer.get_text_stream("stdout").flush()  # a pipe is block-buffered: readers wait for these lines
        hold_until(stop, ready_file, server.ready_info())
    typer.echo("clipforge s3: stopped.")
