"""`clipforge s3 ...` commands."""

import typer

s3_app = typer.Typer(no_args_is_help=True)
