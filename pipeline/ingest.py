"""Reading candidate lists (img2dataset formats) into Ray Data with small blocks; no curation here."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass

import pyarrow.csv as pacsv

from pipeline.build_config import InputConfig
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, Uri, exists, filesystem, list_uris
from pipeline.csv_rows import BAD_ROW_COLUMN, bad_row_error, csv_parse_options

_EXT = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}

RESERVED_COLUMNS = frozenset(
    {
        # text phase and balance
        "uid", "url", "url_raw", "caption", "lang", "lang_score", "metadata_lang", "entry_ids", "keep_prob",
        "keep_prob_pre",
        "reject_stage", "reject_reason", "reject_detail",
        # download parts: fetch and image columns, the part; shards: key, shard; rejects/ file columns
        "final_url", "fetch_status", "http_status", "content_type", "attempts", "elapsed_s", "image", "width",
        "height", "orig_width", "orig_height", "sha256", "phash", "phash_degenerate", "part", "key", "shard",
        "stage", "reason", "detail",
    }
)  # fmt: skip
"""Every column a build adds, uses or writes (tests/unit/pipeline/test_keep_columns.py checks the stage modules'
lists against it): an input column of the same name is carried as `input_<name>`."""


def input_column_map(cfg: InputConfig, names: list[str]) -> dict[str, str]:
    """{input column: its name in the build's outputs} for the columns `input.keep_columns` carries, from the
    input's column `names` (the URL and caption columns are carried as `url` and `caption` anyway)."""
    extra = [n for n in names if n not in (cfg.url_col, cfg.caption_col)]
    if cfg.keep_columns != "all":
        missing = sorted(set(cfg.keep_columns) - set(names))
        if missing:
            raise ClipforgeError(
                f"input.keep_columns names {missing}, which input {cfg.path!r} does not have (it has {sorted(names)})"
            )
        extra = [n for n in extra if n in cfg.keep_columns]
    mapping = {n: f"input_{n}" if n in RESERVED_COLUMNS else n for n in extra}
    clash = sorted(n for n in mapping.values() if list(mapping.values()).count(n) > 1)
    if clash:
        raise ClipforgeError(
            f"input columns {sorted(set(clash))} would be kept under the same name (a clipforge column's input_ "
            "prefix); list the ones to keep in input.keep_columns"
        )
    return mapping


def input_columns(names: list[str]) -> list[str]:
    """The kept input columns among a build dataset's column `names` (every name that is not clipforge's own)."""
    return [n for n in names if n not in RESERVED_COLUMNS]


_DELIMITER = {"csv": ",", "tsv": "\t"}
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class InputFiles:
    """What `input.path` resolves to: the files to read (sorted), their format and the files it skipped (a
    directory's README, DataComp's .npz beside its .parquet, a glob's non-matches are not listed)."""

    files: list[str]
    format: str
    ignored: list[str]


def input_files(cfg: InputConfig, s3: S3Options | None = None) -> InputFiles:
    """Resolve `input.path` — a file, a glob (`dir/*.parquet`, `s3://bucket/p/part-*.tsv`; `*` may cross `/`) or a
    directory (recursively) — to the files of one format. A file or a glob names its files: all are read, and two
    formats among them are an error. In a directory the files of `input.format` are read (auto: the one known format
    present; two are an error naming both) and the others — a README, DataComp's .npz beside each .parquet — are
    skipped and listed in `ignored`."""
    files, directory = expand_path(cfg.path, s3, "input.path")
    if directory:
        return _directory_files(cfg, files)
    return InputFiles(files, cfg.format if cfg.format != "auto" else detect_format(files), [])


def expand_path(path: str, s3: S3Options | None = None, what: str = "input") -> tuple[list[str], bool]:
    """(files, is a directory) for `path`: a file, a glob (`*` may cross `/`; its matches, sorted) or a directory
    (every file under it, recursively, sorted; an empty directory gives []). A missing path or a glob that matches
    nothing is a `ClipforgeError` naming `what` and the path."""
    glob = _GLOB.search(path)
    if glob:
        base = path[: glob.start()].rsplit("/", 1)[0] or "/"
        pattern = str(Uri.parse(path))
        listed = [str(u) for u in list_uris(base, s3)] if exists(base, s3) else []
        files = [f for f in listed if fnmatch.fnmatchcase(f, pattern)]
        if not files:
            raise ClipforgeError(f"{what} {path!r} matches no file")
        return files, False
    if not exists(path, s3):
        raise ClipforgeError(f"{what} {path!r} does not exist")
    files = [str(u) for u in list_uris(path, s3)]
    local = Uri.parse(path)
    if files or (not local.is_s3 and os.path.isdir(local.path)) or (local.is_s3 and not _is_object(path, s3)):
        return files, True
    return [str(local)], False


def _is_object(path: str, s3: S3Options | None) -> bool:
    """True when an S3 `path` names an object (not only a prefix)."""
    import pyarrow.fs as pafs

    fs, p = filesystem(path, s3)
    return fs.get_file_info(p).type == pafs.FileType.File


def _directory_files(cfg: InputConfig, files: list[str]) -> InputFiles:
    if not files:
        raise ClipforgeError(f"input.path {cfg.path!r} is an empty directory: no candidates to build from")
    formats = sorted({f for f in map(_format_of, files) if f})
    fmt = cfg.format
    if fmt == "auto" and len(formats) > 1:
        counts = ", ".join(f"{sum(_format_of(f) == k for f in files)} {k}" for k in formats)
        raise ClipforgeError(
            f"input.path {cfg.path!r} holds files of several formats ({counts}); set input.format to the one to read, "
            "or name its files with a glob (e.g. dir/*.parquet)"
        )
    if fmt == "auto":
        if not formats:
            raise ClipforgeError(
                f"input.path {cfg.path!r} holds no .parquet/.csv/.tsv/.jsonl file (e.g. {files[0]!r}); "
                "set input.format"
            )
        fmt = formats[0]
    chosen = [f for f in files if _format_of(f) == fmt]
    if not chosen:
        raise ClipforgeError(f"input.path {cfg.path!r} holds no {fmt} file (e.g. {files[0]!r})")
    return InputFiles(chosen, fmt, [f for f in files if _format_of(f) != fmt])


def _format_of(path: str) -> str | None:
    name = path[:-3] if path.endswith(".gz") else path
    base = name.rsplit("/", 1)[-1]
    return _EXT.get("." + base.rsplit(".", 1)[-1]) if "." in base else None


def detect_format(paths: list[str]) -> str:
    """The one format of `paths` by extension (.gz allowed for text formats)."""
    found = set()
    for p in paths:
        fmt = _format_of(p)
        if fmt is None:
            raise ClipforgeError(f"cannot tell the format of input file {p!r}; set input.format")
        found.add(fmt)
    if len(found) != 1:
        raise ClipforgeError(f"input mixes formats {sorted(found)}; point input.path at one format")
    return found.pop()


def read_candidates(cfg: InputConfig, s3: S3Options | None = None):
    """Candidates as a Ray Dataset with exactly the columns `url` and `caption` (strings), `rows_per_block` rows
    per block. A missing input or column is a `ClipforgeError` naming it."""
    import ray

    resolved = input_files(cfg, s3)
    files, fmt = resolved.files, resolved.format
    fs, _ = filesystem(files[0], s3)
    paths = [filesystem(f, s3)[1] for f in files]
    if fmt == "parquet":
        ds = ray.data.read_parquet(paths, filesystem=fs)
    elif fmt in ("csv", "tsv"):
        from pipeline.csv_source import CandidateCsvSource

        # every value as it is written: a caption column of digits stays text, and a kept column has one type in
        # every file (type inference runs per file); rows that do not parse as input.on_bad_rows says
        header, _ = _peek(fs, paths[0], fmt, cfg.on_bad_rows)
        source = CandidateCsvSource(
            paths, delimiter=_DELIMITER[fmt], columns=header, on_bad_rows=cfg.on_bad_rows, filesystem=fs
        )
        ds = ray.data.read_datasource(source)
    else:
        ds = ray.data.read_json(paths, filesystem=fs, lines=True)
    names = [n for n in ds.schema().names if n != BAD_ROW_COLUMN]
    missing = {cfg.url_col, cfg.caption_col} - set(names)
    if missing:
        raise ClipforgeError(f"input {cfg.path!r} has no column(s) {sorted(missing)}; set input.url_col/caption_col")
    kept = input_column_map(cfg, names)
    renames = {cfg.url_col: "url", cfg.caption_col: "caption", **{k: v for k, v in kept.items() if k != v}}
    bad = [BAD_ROW_COLUMN] if BAD_ROW_COLUMN in ds.schema().names else []
    ds = ds.select_columns([cfg.url_col, cfg.caption_col, *kept, *bad]).rename_columns(renames)
    return ds.repartition(target_num_rows_per_block=cfg.rows_per_block)


def check_candidates(cfg: InputConfig, s3: S3Options | None = None) -> tuple[dict[str, int | None], InputFiles]:
    """Preflight on the driver, before a run writes anything: every input file opens as its format, is not empty
    and has the URL and caption columns. Returns ({file: rows or None when unknown without a full read}, the
    resolved `InputFiles`). Any problem is a `ClipforgeError` naming the file (and the column) — never a traceback
    from a Ray worker."""
    resolved = input_files(cfg, s3)
    files, fmt = resolved.files, resolved.format
    found: dict[str, int | None] = {}
    for f in files:
        fs, path = filesystem(f, s3)
        if fs.get_file_info(path).size == 0:
            raise ClipforgeError(f"input file {f!r} is empty (0 bytes): no candidates to build from")
        try:
            columns, rows = _peek(fs, path, fmt, cfg.on_bad_rows)
        except ClipforgeError:
            raise
        except Exception as e:  # pyarrow raises ArrowInvalid/OSError/… for files that are not what they claim
            raise ClipforgeError(f"cannot read input file {f!r} as {fmt}: {str(e).splitlines()[0][:300]}") from None
        if rows == 0 and not columns:
            raise ClipforgeError(f"input file {f!r} holds no rows: no candidates to build from")
        missing = sorted({cfg.url_col, cfg.caption_col} - set(columns))
        if missing:
            raise ClipforgeError(
                f"input file {f!r} has no column(s) {missing} (it has {sorted(columns)}); "
                "set input.url_col / input.caption_col"
            )
        input_column_map(cfg.model_copy(update={"path": f}), columns)  # keep_columns it lacks: an error naming it
        found[f] = rows
    if all(n == 0 for n in found.values()):
        raise ClipforgeError(f"input {cfg.path!r} holds no candidate rows")
    return found, resolved


def _peek(fs, path: str, fmt: str, on_bad_rows: str = "error") -> tuple[list[str], int | None]:
    """(column names, row count — None when it would need a full read, 0 when there is no row) of one file."""
    import json

    import pyarrow.parquet as pq

    if fmt == "parquet":
        meta = pq.read_metadata(path, filesystem=fs)
        return meta.schema.to_arrow_schema().names, meta.num_rows
    with fs.open_input_stream(path, compression="detect") as stream:
        if fmt in ("csv", "tsv"):
            bad: list = []
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(use_threads=False),  # the bad row's line number is known
                parse_options=csv_parse_options(_DELIMITER[fmt], bad),
            )
            try:
                first = reader.read_next_batch()
            except StopIteration:
                return reader.schema.names, 0
            if bad and on_bad_rows == "error":
                raise bad_row_error(path, bad[0])
            return reader.schema.names, None if first.num_rows else 0
        head = stream.read(1 << 20).decode("utf-8", errors="replace")
    line = next((x for x in head.splitlines() if x.strip()), None)
    if line is None:
        return [], 0
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ClipforgeError(f"input file {path!r}: a JSON lines row must be an object, got {type(row).__name__}")
    return list(row), None
