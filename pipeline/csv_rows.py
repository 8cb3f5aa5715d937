"""Rows of a CSV/TSV input that do not parse (`input.on_bad_rows`): how they are named, reported and rejected.
Pure pyarrow, no Ray: preflight (`pipeline.ingest`) and the Ray read (`pipeline.csv_source`) share it."""

from __future__ import annotations

from enum import StrEnum

import pyarrow.csv as pacsv

from pipeline.core.errors import ClipforgeError


class InputReject(StrEnum):
    """Why reading the input rejects a row."""

    BAD_ROW = "bad_row"  # a CSV/TSV row that does not parse (input.on_bad_rows: skip); its text is the detail


BAD_ROW_COLUMN = "_clipforge_bad_row"
"""With `on_bad_rows: skip`, a row that does not parse: its file, line, problem and text (null for good rows)."""


def bad_row_text(path: str, row) -> str:
    """One unparsable row (pyarrow's `InvalidRow`) as the reject's detail: where, what, and the row itself."""
    line = f"line {row.number}" if row.number is not None and row.number >= 0 else "a line"
    return f"{path} {line}: expected {row.expected_columns} columns, got {row.actual_columns}: {row.text}"


def bad_row_error(path: str, row) -> ClipforgeError:
    return ClipforgeError(
        f"input row does not parse: {bad_row_text(path, row)}. Fix the file, or set input.on_bad_rows=skip to "
        "skip such rows (each is kept in rejects/ as a bad_row)"
    )


def csv_parse_options(delimiter: str, bad: list | None) -> pacsv.ParseOptions:
    """pyarrow's parse options; with a list, rows that do not parse are appended to it and skipped."""
    if bad is None:
        return pacsv.ParseOptions(delimiter=delimiter)

    def handler(row) -> str:
        bad.append(row)
        return "skip"

    return pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=handler)
