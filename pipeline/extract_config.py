"""`ExtractConfig`: every knob of `clipforge extract` (WAT files in, candidate pairs out); no behaviour here."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options


class WatConfig(StrictModel):
    """How WAT files are found and read."""

    base_url: str = "s3://commoncrawl/"
    """Where the relative paths of a Common Crawl listing (`wat.paths.gz`, `*.paths[.gz]`) live: an s3:// prefix or a
    local directory. Common Crawl's own bucket by default; a listing line that is already absolute is used as is."""
    prefilter: bool = True
    """Skip a record's JSON unless its bytes contain `IMG@/src` (most records have no image; same pairs, faster)."""
    check_inputs: bool = True
    """Before anything is written, open every input file and check that it starts as a WARC file (64 KiB read per
    file, 16 at a time), so a wrong or missing file is an error naming it."""
    cpus_per_file: float = Field(1.0, gt=0, le=16)
    """CPUs Ray reserves per file task (one task per file; parsing is CPU-bound)."""


class ExtractConfig(StrictModel):
    """`clipforge extract`: image-text pairs from Common Crawl WAT files."""

    input: list[str] = []
    """WAT files (.warc.wat.gz, gzipped or not), directories, globs, s3:// prefixes or `*.paths[.gz]` listings."""
    output: str = ""
    """Output directory (local path or s3://bucket/prefix): candidates/, stats/extract.json, manifest.json."""
    extract: WatConfig = WatConfig()
    """Listings' base, the prefilter, the input check, CPUs per file task."""
    s3: S3Options = S3Options()
    """Endpoint and region for s3:// locations (credentials come from the standard AWS chain)."""

    @model_validator(mode="after")
    def _check(self) -> ExtractConfig:
        if not self.input:
            raise ValueError("input is required (WAT files, directories, globs, s3:// prefixes or a listing)")
        if not self.output:
            raise ValueError("output is required (a directory, local or s3://)")
        return self
