"""`BuildConfig`: every knob of `clipforge build`, one strict section per phase; no behaviour here.

`configs/base.yaml` documents each key with its default; the generated reference is docs/config_build.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curation.images import ImageConfig
from curation.langid import LangIdConfig
from curation.text import CaptionFilterConfig
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options
from pipeline.dedup.config import DedupConfig
from pipeline.stages.download import DownloadConfig
from pipeline.stages.model_configs import ClipFilterConfig, EmbedConfig, SemDedupConfig

Stage = Literal["text", "match", "pre_balance", "download", "dedup", "embed", "clip_filter", "semdedup", "balance"]
STAGE_ORDER: tuple[str, ...] = (
    "text", "match", "pre_balance", "download", "dedup", "embed", "clip_filter", "semdedup", "balance",
)  # fmt: skip
TEXT_ONLY: tuple[str, ...] = ("text", "match", "balance")


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
    keep_columns: list[str] | Literal["all"] = "all"
    """Input columns carried into the shard sidecars (and each sample's .json), a text-only build's curated/ files and
    rejects/, so results join back to the input (img2dataset's save_additional_columns): all, or a list ([] = none).
    A name clipforge uses itself (uid, url, ...) is kept as input_<name>. CSV/TSV values are kept as strings."""
    on_bad_rows: Literal["error", "skip"] = "error"
    """A CSV/TSV row that does not parse (wrong number of fields): error stops the build naming the file and line; skip
    goes on and keeps the row's file, line and text in rejects/ as a bad_row (counted in the funnel)."""


class BuildLangIdConfig(LangIdConfig):
    """fastText language ID of a build: `keep` may follow the metadata."""

    keep: list[str] | Literal["metadata"] | None = "metadata"
    """Languages kept, as lid.176 labels them (ISO 639-1 where one exists: en, fr, de, zh, ...). None keeps all.
    metadata: the languages the metadata has lists for — en for a single-file (English) list; with a metadata
    directory every language passes, and the match stage rejects a caption whose language has no list as
    no_metadata_language (curation/langmap.py maps lid.176 labels to list languages)."""


class TextConfig(StrictModel):
    """Text stage: URL canonicalisation, caption normalisation and length filters, language ID."""

    filters: CaptionFilterConfig = CaptionFilterConfig()
    """Caption length limits (DataComp's basic filter by default)."""
    langid: BuildLangIdConfig = BuildLangIdConfig()
    """fastText language ID: which languages to keep and the score threshold."""


class MatchConfig(StrictModel):
    """Match stage: MetaCLIP substring matching of captions against a metadata list."""

    metadata: str = ""
    """MetaCLIP-format metadata JSON (list of strings; entry id = index; English, MetaCLIP's rule), or a directory
    of {lang}.json lists (worldwide: each caption matched against its own language's list with Meta CLIP 2's
    spaced-metadata rule); `clipforge metadata build [--languages ...]` makes either."""


class BalanceConfig(StrictModel):
    """Balance stage: MetaCLIP balancing, p_e = min(1, t / count_e), keep with 1 - prod(1 - p_e)."""

    t: float | Literal["auto"] = "auto"
    """Max matches per entry; auto: the t at which tail entries (count < t) hold `tail_share` of all matches."""
    tail_share: float = Field(0.06, gt=0, lt=1)
    """Tail share for t: auto (MetaCLIP's 6 % rule)."""
    seed: int = Field(0, ge=0)
    """Seed of the per-(uid, entry) uniforms (and of the draw of one matched caption per URL): same seed, same kept
    set, however the rows are partitioned."""
    oversample: float = Field(2.0, ge=1.0)
    """pre_balance stage: cut head entries before download at t_pre = oversample × t (t from the pre-download
    counts), so downloads are not spent on rows the final balance would drop; > 1 leaves room for failed downloads
    and duplicates. Its uniforms use another seed than the final balance's, so the two draws are independent."""


class ShardConfig(StrictModel):
    """Output shards: WebDataset tars ({key}.jpg/.txt/.json) with one parquet sidecar each."""

    samples_per_shard: int = Field(1000, ge=1, le=1_000_000)
    """Target samples per shard. Shards = ceil(kept / this); a row's shard is a hash of its uid (sizes vary by a few
    %), so a shard's content never depends on partitioning, worker count or which shards a killed run finished."""


class BuildConfig(StrictModel):
    """`clipforge build`: candidates in, curated dataset out."""

    input: InputConfig = InputConfig()
    """The candidate list."""
    output: str = ""
    """Run directory (local path or s3://bucket/prefix)."""
    stages: list[Stage] = ["text", "match", "download", "dedup", "balance"]
    """Stages to run, in pipeline order (DESIGN.md §1). With `download` the run writes shards/; without it
    ([text, match, balance]) it writes the curated candidate list (curated/). `pre_balance` is optional."""
    text: TextConfig = TextConfig()
    match: MatchConfig = MatchConfig()
    balance: BalanceConfig = BalanceConfig()
    download: DownloadConfig = DownloadConfig()
    """Safe fetching of each surviving row's URL; `rows_per_part` sets the unit of resume."""
    image: ImageConfig = ImageConfig()
    """Decode, validation, resize and re-encoding of downloaded images (also used to hash eval-set images)."""
    dedup: DedupConfig = DedupConfig()
    """Exact, near-duplicate and eval-set dedup (the eval sets are listed here)."""
    embed: EmbedConfig = EmbedConfig()
    """Optional embed stage: open_clip image and caption embeddings of the downloaded rows, stored in the run."""
    clip_filter: ClipFilterConfig = ClipFilterConfig()
    """Optional clip_filter stage: drop pairs whose image and caption embeddings disagree (needs embed)."""
    semdedup: SemDedupConfig = SemDedupConfig()
    """Optional semdedup stage: SemDeDup over the image embeddings (needs embed)."""
    shards: ShardConfig = ShardConfig()
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
        for stage in ("balance", "pre_balance", "download"):
            if stage in self.stages and "match" not in self.stages:
                raise ValueError(f"the {stage} stage needs the match stage (entry ids)")
        if "dedup" in self.stages and "download" not in self.stages:
            raise ValueError("the dedup stage needs the download stage (pHashes come from downloaded images)")
        if "embed" in self.stages and "download" not in self.stages:
            raise ValueError("the embed stage needs the download stage (it embeds the stored images)")
        if "embed" in self.stages and not self.embed.model:
            raise ValueError("embed.model is required when the embed stage runs (local-dir:PATH or a config name)")
        for stage in ("clip_filter", "semdedup"):
            if stage in self.stages and "embed" not in self.stages:
                raise ValueError(f"the {stage} stage needs the embed stage (embeddings)")
        if "clip_filter" in self.stages:
            self.clip_filter.check()
        if "pre_balance" in self.stages and "download" not in self.stages:
            raise ValueError("the pre_balance stage only makes sense before the download stage; use balance")
        return self
