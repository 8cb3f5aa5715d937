"""Reading candidate lists (img2dataset formats) into Ray Data with small blocks; no curation here."""

from __future__ import annotations

from pipeline.build_config import InputConfig
from pipeline.errors import ClipforgeError
from pipeline.storage import S3Options, Uri, exists, filesystem, list_uris

_EXT = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def detect_format(paths: list[str]) -> str:
    """The one format of `paths` by extension (.gz allowed for text formats)."""
    found = set()
    for p in paths:
        name = p[:-3] if p.endswith(".gz") else p
        ext = "." + name.rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else ""
        if ext not in _EXT:
            raise ClipforgeError(f"cannot tell the format of input file {p!r}; set input.format")
        found.add(_EXT[ext])
    if len(found) != 1:
        raise ClipforgeError(f"input mixes formats {sorted(found)}; point input.path at one format")
    return found.pop()


def read_candidates(cfg: InputConfig, s3: S3Options | None = None):
    """Candidates as a Ray Dataset with exactly the columns `url` and `caption` (strings), `rows_per_block` rows
    per block. A missing input or column is a `ClipforgeError` naming it."""
    import pyarrow.csv as pacsv
    import ray

    if not exists(cfg.path, s3):
        raise ClipforgeError(f"input.path {cfg.path!r} does not exist")
    files = [str(u) for u in list_uris(cfg.path, s3)] or [str(Uri.parse(cfg.path))]
    fmt = cfg.format if cfg.format != "auto" else detect_format(files)
    fs, _ = filesystem(files[0], s3)
    paths = [filesystem(f, s3)[1] for f in files]
    if fmt == "parquet":
        ds = ray.data.read_parquet(paths, filesystem=fs)
    elif fmt in ("csv", "tsv"):
        opts = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
        ds = ray.data.read_csv(paths, filesystem=fs, parse_options=opts)
    else:
        ds = ray.data.read_json(paths, filesystem=fs, lines=True)
    missing = {cfg.url_col, cfg.caption_col} - set(ds.schema().names)
    if missing:
        raise ClipforgeError(f"input {cfg.path!r} has no column(s) {sorted(missing)}; set input.url_col/caption_col")
    ds = ds.select_columns([cfg.url_col, cfg.caption_col]).rename_columns(
        {cfg.url_col: "url", cfg.caption_col: "caption"}
    )
    return ds.repartition(target_num_rows_per_block=cfg.rows_per_block)
