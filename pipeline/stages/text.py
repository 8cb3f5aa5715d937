"""Ray Data text stages: URL canonicalisation + uid, one record per URL, caption normalise/filter, language ID.

Thin wrappers over `curation.text` and `curation.langid`; rows are annotated, never dropped.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.hashing import MASK64, splitmix64, uid_to_u64
from curation.langid import LanguageIdentifier
from curation.text import canonicalize_urls, clean_captions, url_uids
from pipeline.build_config import TextConfig
from pipeline.csv_rows import BAD_ROW_COLUMN, InputReject
from pipeline.stages.base import (
    CPU_HEAVY,
    CPU_LIGHT,
    Resources,
    StageSpec,
    apply_stage,
    live_mask,
    mark_rejected,
    with_reject_columns,
)
from pipeline.stages.match import MatchReject, MatchStage


class RecordReject(StrEnum):
    """Why one-record-per-URL rejects a row."""

    OTHER_CAPTION = "other_caption"  # another caption of the same canonical URL was drawn (detail: which)


def canonicalize(batch: pa.Table, config: None = None) -> pa.Table:
    """`url` → canonical form (raw kept in `url_raw`); `uid = sha224(canonical url)[:24]` (raw URL if it has no
    canonical form, so a rejected row still has a stable uid); bad URLs — and input rows that did not parse
    (`input.on_bad_rows: skip`; uid from the row's file, line and text) — rejected by stage `text`."""
    raw = batch["url"].combine_chunks() if isinstance(batch["url"], pa.ChunkedArray) else batch["url"]
    canon, reasons = canonicalize_urls(raw)
    url = pc.if_else(pc.is_valid(canon), canon, pc.fill_null(raw.cast(pa.string()), ""))
    batch = batch.set_column(batch.column_names.index("url"), "url", url)
    uid = url_uids(url)
    bad = None
    if BAD_ROW_COLUMN in batch.column_names:  # input.on_bad_rows: skip — uid from the row's file, line and text
        bad = batch[BAD_ROW_COLUMN].combine_chunks()
        valid = pc.is_valid(bad)
        uid = pc.replace_with_mask(uid, valid, url_uids(bad.filter(valid)))  # hashes only the bad rows
        batch = batch.drop_columns([BAD_ROW_COLUMN])
    batch = batch.append_column("url_raw", raw.cast(pa.string())).append_column("uid", uid)
    if bad is not None:
        reason = pc.if_else(pc.is_valid(bad), pa.scalar(InputReject.BAD_ROW.value), pa.scalar(None, pa.string()))
        batch = mark_rejected(batch, reason, stage=TextStage.name, details=bad)
    return mark_rejected(batch, reasons, stage=TextStage.name)


canonicalize.name = "canonicalize"
canonicalize.resources = CPU_LIGHT


def pick_one_per_url_block(block: pa.Table, config: int = 0) -> pa.Table:
    """A block holding whole uid groups (after text filters, LID and matching) → the same rows, one per repeated uid
    representing its URL and the others rejected as `other_caption` (detail: the chosen caption, and the row's own
    earlier reason if it had one). MetaCLIP 2's curate.py: every caption of a URL is filtered and matched, and one
    *matched* caption is drawn — here with a hash of (uid, seed `config`) over the matched captions sorted by
    (caption, raw URL), so the draw is independent of input order and partitioning. A URL with no matched caption
    is represented by a `no_match` row (else any row), drawn the same way: it is counted once. Rows whose uid occurs
    once pass untouched (Arrow, no Python per row); only the repeated uids are handled in Python."""
    counts = pc.value_counts(block["uid"])
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return block
    block = with_reject_columns(block)
    rows = np.flatnonzero(pc.is_in(block["uid"], value_set=repeated).to_numpy(zero_copy_only=False))
    sub = block.take(pa.array(rows, pa.int64()))
    uids = sub["uid"].to_pylist()
    captions = sub["caption"].to_pylist()
    raw_urls = sub["url_raw"].to_pylist() if "url_raw" in sub.column_names else [""] * sub.num_rows
    old_reasons, old_stages = sub["reject_reason"].to_pylist(), sub["reject_stage"].to_pylist()
    live = live_mask(sub).tolist()

    groups: dict[str, list[int]] = {}
    for i, u in enumerate(uids):
        groups.setdefault(u, []).append(i)
    keys = list(groups)
    draws = splitmix64(uid_to_u64(keys) ^ splitmix64(np.array([config & MASK64], np.uint64)))
    reasons, stages, details = (block[c].to_pylist() for c in ("reject_reason", "reject_stage", "reject_detail"))
    for u, draw in zip(keys, draws.tolist(), strict=True):
        members = groups[u]
        pool = (
            [i for i in members if live[i]]
            or [i for i in members if old_reasons[i] == MatchReject.NO_MATCH]
            or members
        )
        pool.sort(key=lambda i: (captions[i] or "", captions[i] is None, raw_urls[i] or ""))
        best = pool[draw % len(pool)]
        for i in members:
            if i == best:
                continue
            own = f"; own reason: {old_stages[i]}/{old_reasons[i]}" if old_reasons[i] else ""
            reasons[rows[i]], stages[rows[i]] = RecordReject.OTHER_CAPTION.value, OTHER_CAPTION_STAGE
            details[rows[i]] = f"another caption of {u} was chosen: {captions[best]!r}{own}"
    for name, values in (("reject_reason", reasons), ("reject_stage", stages), ("reject_detail", details)):
        block = block.set_column(block.column_names.index(name), name, pa.array(values, pa.string()))
    return block


pick_one_per_url_block.name = "one_record_per_url"  # type: ignore[attr-defined]
pick_one_per_url_block.resources = CPU_LIGHT  # type: ignore[attr-defined]

OTHER_CAPTION_STAGE = MatchStage.name
"""The stage `other_caption` rejects carry: the draw follows matching (the funnel lists it there)."""


def one_record_per_url(ds, seed: int = 0):
    """Barrier: co-locate each uid's rows and keep one per URL (MetaCLIP/DataComp: one record per image URL), drawn
    among its matched captions with `seed` (`pick_one_per_url_block`).

    Ray Data's `groupby(k).map_groups(f)` is `sort(k)` (or a keyed repartition under a hash shuffle) followed by
    `map_batches(batch_size=None)`, whose blocks hold whole groups, and a Python call of `f` per group: 20,000
    calls cost ~20 s of a 20k-candidate build (#19). The same shuffle with one vectorised call per block does not."""
    from ray.data.context import ShuffleStrategy

    ctx = ds.context
    if ctx.shuffle_strategy in (ShuffleStrategy.HASH_SHUFFLE, ShuffleStrategy.SHUFFLE_V2):
        grouped = ds.repartition(ctx.default_hash_shuffle_parallelism, keys=["uid"], sort=True)
    else:
        grouped = ds.sort("uid")
    return apply_stage(grouped, StageSpec(pick_one_per_url_block, seed, batch_size=None))


class TextStage:
    """Caption normalisation (ftfy + whitespace), length filters, fastText language ID → `lang`, `lang_score`."""

    name = "text"
    langid_stage = "langid"  # the stage its language-ID rejects carry
    resources: Resources = CPU_HEAVY

    def __init__(self, config: TextConfig) -> None:
        self.config = config
        langid = config.langid
        if langid.keep == "metadata":  # not resolved against the metadata (`build.text_config`): an English list
            langid = langid.model_copy(update={"keep": ["en"]})
        self.lid = LanguageIdentifier(langid)

    def __call__(self, batch: pa.Table) -> pa.Table:
        captions, reasons = clean_captions(batch["caption"], self.config.filters)
        batch = batch.set_column(batch.column_names.index("caption"), "caption", captions)
        batch = mark_rejected(batch, reasons, stage=self.name)
        codes, scores, lang_reasons = self.lid.classify(captions)
        batch = batch.append_column("lang", codes).append_column("lang_score", pa.array(scores, pa.float32()))
        return mark_rejected(batch, lang_reasons, stage=self.langid_stage)
