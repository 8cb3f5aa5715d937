"""CSV/TSV candidates as a Ray Data source: every value a string, and rows that do not parse either a clear error
naming the file and line (`input.on_bad_rows: error`) or carried as `bad_row` rejects (`skip`) — never lost.

Ray's own `read_csv` takes pyarrow's `invalid_row_handler`, but a handler can only say skip or error: the skipped
rows vanish, and an error surfaces as a worker traceback without the line. This source (Ray Data's documented
extension point, `FileBasedDatasource._read_stream`) keeps pyarrow's streaming parser and adds only the row
bookkeeping. Imports Ray: `pipeline.ingest` loads it lazily, so preflight answers without Ray.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
from ray.data.datasource import FileBasedDatasource

from pipeline.csv_rows import BAD_ROW_COLUMN, bad_row_error, bad_row_text, csv_parse_options


class CandidateCsvSource(FileBasedDatasource):
    """`columns` (the first file's header) read as strings from every file; see the module docstring."""

    def __init__(self, paths: list[str], *, delimiter: str, columns: list[str], on_bad_rows: str, **kwargs) -> None:
        super().__init__(paths, **kwargs)
        self.delimiter, self.columns, self.on_bad_rows = delimiter, columns, on_bad_rows

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        bad: list = []
        convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in self.columns})
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=csv_parse_options(self.delimiter, bad),
            convert_options=convert,
        )
        skip = self.on_bad_rows == "skip"
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            if bad and not skip:
                raise bad_row_error(path, bad[0])
            table = pa.Table.from_batches([batch])
            if skip:
                table = table.append_column(BAD_ROW_COLUMN, pa.nulls(table.num_rows, pa.string()))
            yield table
        if bad and not skip:  # a bad row after the last batch
            raise bad_row_error(path, bad[0])
        if bad:
            n = len(bad)
            cols = {name: pa.nulls(n, pa.string()) for name in reader.schema.names}
            yield pa.table({**cols, BAD_ROW_COLUMN: pa.array([bad_row_text(path, r) for r in bad], pa.string())})
