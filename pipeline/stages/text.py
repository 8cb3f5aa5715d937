"""Ray Data text stages: URL canonicalisation + uid, one record per URL, caption normalise/filter, language ID.

Thin wrappers over `curation.text` and `curation.langid`; rows are annotated, never dropped.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

from curation.langid import LanguageIdentifier
from curation.text import canonicalize_urls, clean_captions, url_uids
from pipeline.build_config import TextConfig
from pipeline.stages.base import CPU_HEAVY, CPU_LIGHT, Resources, live_mask, mark_rejected


class RecordReject(StrEnum):
    """Why one-record-per-URL rejects a row."""

    DUPLICATE_URL = "duplicate_url"  # another caption of the same canonical URL was kept


def canonicalize(batch: pa.Table, config: None = None) -> pa.Table:
    """`url` → canonical form (raw kept in `url_raw`); `uid = sha224(canonical url)[:24]` (raw URL if it has no
    canonical form, so a rejected row still has a stable uid); bad URLs rejected by stage `text`."""
    raw = batch["url"].combine_chunks() if isinstance(batch["url"], pa.ChunkedArray) else batch["url"]
    canon, reasons = canonicalize_urls(raw)
    url = pc.if_else(pc.is_valid(canon), canon, pc.fill_null(raw.cast(pa.string()), ""))
    batch = batch.set_column(batch.column_names.index("url"), "url", url)
    batch = batch.append_column("url_raw", raw.cast(pa.string())).append_column("uid", url_uids(url))
    return mark_rejected(batch, reasons, stage=TextStage.name)


canonicalize.name = "canonicalize"
canonicalize.resources = CPU_LIGHT


def pick_one_per_url(group: pa.Table) -> pa.Table:
    """All rows of one uid → the same rows, all but one rejected as `duplicate_url` (detail: the kept caption's
    row is the representative). The representative is deterministic: a row not yet rejected, then the longest
    caption, then the smallest caption string — independent of input order and partitioning."""
    if group.num_rows == 1:
        return group
    captions = [c or "" for c in group["caption"].to_pylist()]
    live = live_mask(group).tolist()
    best = min(range(group.num_rows), key=lambda i: (not live[i], -len(captions[i].strip()), captions[i]))
    reasons = [None if i == best else RecordReject.DUPLICATE_URL for i in range(group.num_rows)]
    uid = group["uid"][best].as_py()
    return mark_rejected(
        group, reasons, stage=TextStage.name, details=[f"kept another caption of {uid}"] * len(reasons)
    )


def one_record_per_url(ds):
    """Barrier: group rows by uid and keep one per URL (MetaCLIP/DataComp: one record per image URL)."""
    return ds.groupby("uid").map_groups(pick_one_per_url, batch_format="pyarrow", num_cpus=CPU_LIGHT.num_cpus)


class TextStage:
    """Caption normalisation (ftfy + whitespace), length filters, fastText language ID → `lang`, `lang_score`."""

    name = "text"
    langid_stage = "langid"  # the stage its language-ID rejects carry
    resources: Resources = CPU_HEAVY

    def __init__(self, config: TextConfig) -> None:
        self.config = config
        self.lid = LanguageIdentifier(config.langid)

    def __call__(self, batch: pa.Table) -> pa.Table:
        captions, reasons = clean_captions(batch["caption"], self.config.filters)
        batch = batch.set_column(batch.column_names.index("caption"), "caption", captions)
        batch = mark_rejected(batch, reasons, stage=self.name)
        codes, scores, lang_reasons = self.lid.classify(captions)
        batch = batch.append_column("lang", codes).append_column("lang_score", pa.array(scores, pa.float32()))
        return mark_rejected(batch, lang_reasons, stage=self.langid_stage)
