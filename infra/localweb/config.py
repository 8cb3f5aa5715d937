"""`WebConfig`: the knobs of the synthetic web (corpus size, rates, image sizes); it holds no behaviour.

Every rate is a fraction of candidate rows. The rates are disjoint shares of the rows (a row has one role), so
their sum must stay below 1; what is left over is plain, fault-free, unduplicated rows.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from pipeline.core.config import StrictModel, validate_config
from pipeline.core.errors import ClipforgeError

ForeignLanguage = Literal["de", "fr", "es", "ru", "zh", "ja", "th", "ar"]
"""Languages the synthetic web writes captions in besides English (`captions.FOREIGN_LANGUAGES`)."""

WEB_JSON = "web.json"
"""The generated web's manifest (seed, base_url, resolved config, counts); written last by `generate`."""
ACCESS_LOG = "access.log"
"""OUT/access.log: one JSON line per answered request, {"host", "path", "start", "end"} (monotonic seconds),
appended by every server of the web (docs/localweb.md); `generate` starts a new one."""


class WebConfig(StrictModel):
    """The synthetic web: a seeded corpus of (url, caption) candidates, its hidden answers and its server."""

    seed: int = Field(0, ge=0, lt=2**63)
    """Seed of everything: same seed and config give byte-identical candidates, answers and images."""

    n_candidates: int = Field(2000, ge=1, le=10**8)
    """Number of candidate rows written to candidates.parquet."""

    base_url: str = "http://127.0.0.1:0"
    """Scheme, host and port of every URL. Port 0: pick a free loopback port at generate time and record it."""

    allow_non_loopback: bool = False
    """Allow a base_url host other than loopback (the server has no authentication and serves faults)."""

    fault_rate: float = Field(0.15, ge=0, le=0.9)
    """Fraction of rows with a fault (404, 500, 429, slow, reset, ...), split evenly over the fault kinds."""

    dup_exact_rate: float = Field(0.04, ge=0, le=0.5)
    """Fraction of rows drawn into duplicate clusters (~3 rows each) as byte-identical copies: same image, another
    URL. A cluster's first row stays its original, so somewhat fewer rows end up as copies."""

    dup_near_rate: float = Field(0.04, ge=0, le=0.5)
    """Fraction of rows drawn into duplicate clusters as near-duplicates (re-encoded, PNG, resized, 1 % cropped,
    darker); as for dup_exact_rate, a cluster's first row stays its original."""

    dup_url_rate: float = Field(0.02, ge=0, le=0.5)
    """Fraction of rows that repeat an earlier row's URL with another caption."""

    eval_copy_rate: float = Field(0.01, ge=0, le=0.5)
    """Fraction of rows whose image is a held-out evaluation image (exact or a near variant): test leakage."""

    semantic_dup_rate: float = Field(0.0, ge=0, le=0.5)
    """Fraction of rows showing an earlier plain row's image mirrored or heavily cropped: semantic duplicates that
    pHash misses (SemDeDup's targets, #22; answers: role dup_semantic, semantic_dup_of)."""

    caption_mismatch_rate: float = Field(0.0, ge=0, le=0.5)
    """Fraction of plain rows whose caption describes another concept (a CLIP-score filter's targets, #22; answers:
    caption_mismatch, caption_concept)."""

    foreign_rate: float = Field(0.08, ge=0, le=1)
    """Fraction of captions written in one of `foreign_languages` (evenly) instead of English."""

    foreign_languages: list[ForeignLanguage] = Field(
        default_factory=lambda: ["de", "fr", "es", "ru", "zh", "ja", "th", "ar"], min_length=1
    )
    """Languages of the foreign captions, each naming the same concepts in its own words: German, French, Spanish,
    Russian, Chinese, Japanese and Thai (written without spaces), Arabic (right to left). Each row's expected
    language is the answers' `lang`."""

    junk_rate: float = Field(0.06, ge=0, le=1)
    """Fraction of captions with no concept word at all ("IMG_2034.JPG", "click here to enlarge", ...)."""

    partial_rate: float = Field(0.08, ge=0, le=1)
    """Fraction of captions naming only part of the concept: the shape or the colour alone, or "a handwritten digit"
    without which."""

    zipf_a: float = Field(1.1, gt=0, le=4)
    """Zipf exponent of concept frequencies over a seeded permutation of the concepts (head and tail)."""

    eval_per_concept: int = Field(10, ge=1, le=1000)
    """Held-out evaluation images per concept (same concepts, another random stream, held-out digit samples)."""

    min_side: int = Field(64, ge=16, le=4096)
    """Smallest side of a rendered image, in pixels."""

    max_side: int = Field(256, ge=16, le=4096)
    """Largest side of a rendered image, in pixels (sides vary in between, so aspect ratios vary too)."""

    slow_seconds: float = Field(30.0, gt=0, le=3600)
    """How long a `slow` response trickles its body (one byte per `slow_interval`) before sending the rest."""

    slow_interval: float = Field(0.5, gt=0, le=60)
    """Seconds between trickled bytes of a `slow` response: short enough that a per-read timeout never fires."""

    cache_mb: int = Field(256, ge=0, le=65536)
    """Server-side LRU cache of encoded image bytes, in MiB."""

    wat_pages: int = Field(24, ge=0, le=10**6)
    """Pages described in the web's WAT files (OUT/wat/, for `clipforge extract`); 0 writes none."""

    wat_files: int = Field(3, ge=1, le=10**4)
    """WAT files the pages are spread over (the first holds a malformed record; with 2 or more, the last is cut)."""

    crawl_files: int = Field(0, ge=0, le=10**4)
    """WAT files that carry the whole candidate list as a crawl (OUT/crawl/: every candidate an image link on some
    page, what `clipforge demo` extracts); 0 writes none."""

    virtual_hosts: int = Field(0, ge=0, le=100000)
    """Spread the candidates over this many virtual hosts `site-NNN.web.test` (base_url's port; the one loopback
    server tells them apart by the Host header), each with a robots.txt variant (infra/localweb/hosts.py); clients
    resolve the names to 127.0.0.1 (`download.fetch.resolve: {"*.web.test": "127.0.0.1"}`). 0: every URL on
    base_url's host, which serves no robots.txt (404)."""

    host_skew: float = Field(2.0, ge=1, le=8)
    """Host sizes: a row is on host floor(virtual_hosts · u^host_skew), so site-000 is the largest (at 2, with 40
    hosts it holds ~16 % of rows) and the last hosts, which get the robots.txt variants, the smallest."""

    latency_s: float = Field(0.0, ge=0, le=10)
    """Server time added before answering each image, hop or loop request (not robots.txt): with it, requests
    overlap long enough that concurrency per host shows in access.log (the politeness tests use 0.05 s)."""

    crawl_delay_s: float = Field(0.2, ge=0, le=60)
    """The Crawl-delay the `crawl_delay` robots variant asks for."""

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"base_url must look like http://HOST:PORT, got {v!r}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise ValueError(f"base_url needs an explicit port (0: pick a free one), got {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check_ranges(self) -> WebConfig:
        host = urlsplit(self.base_url).hostname or ""
        if not self.allow_non_loopback and not _is_loopback(host):
            raise ValueError(f"base_url host {host!r} is not loopback; set allow_non_loopback: true to serve on it")
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})")
        roles = self.fault_rate + self.dup_exact_rate + self.dup_near_rate + self.dup_url_rate + self.eval_copy_rate
        roles += self.semantic_dup_rate
        if roles >= 1:
            raise ValueError(
                "fault_rate + dup_exact_rate + dup_near_rate + dup_url_rate + eval_copy_rate + semantic_dup_rate "
                f"must be < 1 (got {roles:g})"
            )
        if len(set(self.foreign_languages)) < len(self.foreign_languages):
            raise ValueError(f"foreign_languages repeats a language: {self.foreign_languages}")
        if self.foreign_rate + self.junk_rate + self.partial_rate > 1:
            raise ValueError("foreign_rate + junk_rate + partial_rate must be <= 1")
        return self

    @property
    def port(self) -> int:
        """The port of base_url (0 until generate picks one)."""
        return urlsplit(self.base_url).port or 0

    @property
    def host(self) -> str:
        """The host of base_url."""
        return urlsplit(self.base_url).hostname or ""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def load_web(out_dir: str | os.PathLike[str]) -> tuple[WebConfig, dict[str, Any]]:
    """(config, web.json) of a generated web; a missing or incomplete directory is a `ClipforgeError`."""
    path = Path(out_dir) / WEB_JSON
    if not path.is_file():
        raise ClipforgeError(f"{str(path)!r} not found: run `clipforge web generate {out_dir}` first")
    info = json.loads(path.read_text())
    return validate_config(WebConfig, info["config"], repr(str(path))), info
