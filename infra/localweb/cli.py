"""`clipforge web ...` commands."""

import typer

web_app = typer.Typer(no_args_is_help=True)
