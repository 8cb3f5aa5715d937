"""`BuildConfig`: every knob of `clipforge build`, one strict section per phase; no behaviour here.

`configs/base.yaml` documents each key with its default; the generated reference is docs/config_build.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curation.langid import LangIdConfig
from curation.text import CaptionFilterConfig
from pipeline.config import StrictModel
from pipeline.storage import S3Options

Stage = Literal["text", "match", "balance"]
STAGE_ORDER: tuple[str, ...] = ("text", "match", "balance")


class InputConfig(StrictModel):
    """Where the candidates are: img2dataset-style files with a URL and a caption column."""

    path: str = ""
    """A file or a directory of files (local path, file:// or s3://)."""
    format: Literal["auto", "parquet", "csv", "tsv", "jsonl"] = "auto"
    """File format; auto: from the extension (.parquet, .csv, .tsv, .jsonl/.json, optionally .gz)."""
    url_col: str = "url"
    """Column holding the image URL."""
    caption_col: str = "caption"
    """Column holding the alt-text / caption."""
    rows_per_block: int = Field(2000, ge=10)
    """Rows per Ray Data block after reading (small blocks: parallelism and small failure domains)."""


class TextConfig(StrictModel):
    """Text stage: URL canonicalisation, caption normalisation and length filters, language ID."""

    filters: CaptionFilterConfig = CaptionFilterConfig()
    """Caption length limits (DataComp's basic filter by default)."""
    langid: LangIdConfig = LangIdConfig()
    """fastText language ID: which languages to keep and the score threshold."""


class MatchConfig(StrictModel):
    """Match stage: MetaCLIP substring matching of captions against a metadata list."""

    metadata: str = ""
    """MetaCLIP-format metadata JSON (list of strings; entry id = index); `clipforge metadata build` makes one."""


class BalanceConfig(StrictModel):
    """Balance stage: MetaCLIP balancing, p_e = min(1, t / count_e), keep with 1 - prod(1 - p_e)."""

    t: float | Literal["auto"] = "auto"
    """Max matches per entry; auto: the t at which tail entries (count < t) hold `tail_share` of all matches."""
    tail_share: float = Field(0.06, gt=0, lt=1)
    """Tail share for t: auto (MetaCLIP's 6 % rule)."""
    seed: int = Field(0, ge=0)
    """Seed of the per-(uid, entry) uniforms: same seed, same kept set, however the rows are partitioned."""


class BuildConfig(StrictModel):
    """`clipforge build`: candidates in, curated dataset out."""

    input: InputConfig = InputConfig()
    """The candidate list."""
    output: str = ""
    """Run directory (local path or s3://bucket/prefix)."""
    stages: list[Stage] = ["text", "match", "balance"]
    """Stages to run, in pipeline order. A text-only run ([text, match, balance]) writes the curated candidate list."""
    text: TextConfig = TextConfig()
    match: MatchConfig = MatchConfig()
    balance: BalanceConfig = BalanceConfig()
    s3: S3Options = S3Options()
    """Endpoint and region for s3:// locations (credentials come from the standard AWS chain)."""

    @model_validator(mode="after")
    def _check(self) -> BuildConfig:
        if not self.input.path:
            raise ValueError("input.path is required (a candidate file or directory)")
        if not self.output:
            raise ValueError("output is required (a run directory, local or s3://)")
        order = [STAGE_ORDER.index(s) for s in self.stages]
        if order != sorted(set(order)):
            raise ValueError(f"stages must be unique and in pipeline order {list(STAGE_ORDER)}, got {self.stages}")
        if "match" in self.stages and not self.match.metadata:
            raise ValueError("match.metadata is required when the match stage runs")
        if "balance" in self.stages and "match" not in self.stages:
            raise ValueError("the balance stage needs the match stage (entry ids)")
        return self
