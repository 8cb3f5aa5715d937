"""Dedup configs: the `dedup.*` keys of `clipforge build` (`DedupConfig`, `EvalSetConfig`); no behaviour here."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.core.config import StrictModel


class EvalSetConfig(StrictModel):
    """One benchmark whose images training rows must not copy: a parquet file (or directory) of encoded images."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    """Short name, used in reject details ("synthetic:1099511627777 d=2")."""
    path: str
    """Local path, file:// or s3:// URI of the parquet file(s), e.g. the synthetic web's eval/synthetic.parquet."""
    image_column: str = "image"
    """Column holding encoded image bytes (JPEG, PNG, WebP, GIF)."""
    id_column: str = "image_id"
    """Column identifying an image within the set (any type; stored as its string form)."""


class DedupConfig(StrictModel):
    """Duplicate removal: exact (sha256 or identical pHash), near (pHash Hamming ≤ k), and against benchmarks."""

    exact: bool = True
    """Drop rows with the same source bytes (sha256) or the same non-degenerate pHash as a kept row."""
    near: bool = True
    """Drop rows whose pHash is within Hamming k of a kept row's (clusters are connected components). Needs exact."""
    k: int = Field(4, ge=1, le=8)
    """Near-duplicate radius in bits. Real pHashes have popcount 32, so distances are even: k = 4 ≡ 5 (35 tables),
    k = 2 ≡ 3 (10 tables). On the synthetic web k = 4 finds 99.7 % of re-encoded/resized/cropped/darkened copies
    and no distinct pair (k = 2: ~97 %); beyond ~6 unrelated images start to match."""
    eval_sets: list[EvalSetConfig] = []
    """Benchmark images no training row may be a copy of (test-set leakage); empty: no eval dedup."""
    k_eval: int = Field(4, ge=0, le=8)
    """Drop training rows whose pHash is within this Hamming distance of any benchmark image's."""
    max_pairs: int = Field(10**8, ge=1)
    """Most candidate edges collected on the driver (near: 16 B each); more is a `DedupError`, not an OOM."""
    rows_per_group: int = Field(200_000, ge=1)
    """Rows per table in one groupby group (groups per table = ceil(rows / this)); bounds a group's memory."""

    @model_validator(mode="after")
    def _near_needs_exact(self) -> DedupConfig:
        if self.near and not self.exact:
            raise ValueError(
                "dedup.near needs dedup.exact: near search links distinct pHashes; identical ones are "
                "the exact step's (set dedup.exact: true, or dedup.near: false)"
            )
        return self
