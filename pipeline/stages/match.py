"""Ray Data match stage: MetaCLIP substring matching of captions → `entry_ids`; no match → rejected.

The metadata is one English list (MetaCLIP rule, as always) or a directory of `{lang}.json` lists (worldwide, Meta
CLIP 2): each caption is matched against its own language's list only, with the spaced-metadata rule, and gets a
`metadata_lang` column; a caption whose LID language has no list is rejected as `no_metadata_language`
(`curation.langmap`). A single-file list is read and its matcher built once per worker process per build
(`__init__`, kept by `stages.base.setup_scope`); a language's matcher is built the first time a batch needs it.
"""

from __future__ import annotations

import json
from enum import StrEnum

import numpy as np
import pyarrow as pa

from curation.langmap import metadata_languages
from curation.matching import EntryMatcher
from curation.metadata import parse_metadata
from curation.metadata_worldwide import SOURCES_FILE
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options, Uri, list_uris, read_bytes
from pipeline.stages.base import CPU_HEAVY, CPU_LIGHT, Resources, StageSpec, apply_stage, live_mask, mark_rejected

METADATA_LANG = "metadata_lang"


class MatchReject(StrEnum):
    """Why the match stage rejects a caption."""

    NO_MATCH = "no_match"  # no metadata entry occurs in the caption (MetaCLIP: such texts are never sampled)


class MatchStageConfig(StrictModel):
    """Where the metadata is (the stage reads it itself: constructor arguments stay small)."""

    metadata: str
    s3: S3Options = S3Options()


def load_entries(uri: str, s3: S3Options | None = None) -> list[str]:
    """A MetaCLIP-format metadata list from a local path or s3:// URI."""
    return parse_metadata(read_bytes(uri, s3), repr(uri))


def metadata_files(uri: str, s3: S3Options | None = None) -> dict[str, str] | None:
    """{lang: list URI} of a metadata directory — its `{lang}.json` files, `sources.json` aside, English first then
    by name — or None when `uri` is a single-file list (which means English). A directory without lists is a
    ValueError."""
    base = Uri.parse(uri)
    found = [u for u in list_uris(base, s3) if u.path.rsplit("/", 1)[0] == base.path.rstrip("/")]
    if not found:
        return None
    names = sorted(u.name for u in found if u.name.endswith(".json") and u.name != SOURCES_FILE)
    if not names:
        raise ValueError(f"metadata directory {uri!r} holds no {{lang}}.json list")
    langs = sorted((n.removesuffix(".json") for n in names), key=lambda lang: (lang != "en", lang))
    return {lang: str(base.join(f"{lang}.json")) for lang in langs}


class EntryLayout(StrictModel):
    """How per-language entry ids sit in one global id space: English first (so an English build's ids, counts and
    draws are unchanged), then the other languages; global id = offset of the row's language + its entry id."""

    sizes: dict[str, int]
    """Entries per language, in layout order."""
    worldwide: bool = False
    """A metadata directory (rows carry `metadata_lang`); False: one English list."""

    @property
    def offsets(self) -> dict[str, int]:
        starts = np.concatenate(([0], np.cumsum(list(self.sizes.values()), dtype=np.int64)))
        return dict(zip(self.sizes, starts[:-1].tolist(), strict=True))

    @property
    def n_entries(self) -> int:
        return int(sum(self.sizes.values()))

    def slice(self, lang: str) -> slice:
        start = self.offsets[lang]
        return slice(start, start + self.sizes[lang])


def entry_layout(uri: str, s3: S3Options | None = None) -> EntryLayout:
    """The layout of the metadata at `uri` (reads every list once)."""
    files = metadata_files(uri, s3)
    if files is None:
        return EntryLayout(sizes={"en": len(load_entries(uri, s3))})
    return EntryLayout(sizes={lang: len(load_entries(f, s3)) for lang, f in files.items()}, worldwide=True)


class MatchStage:
    """`caption` → `entry_ids` (`list<int32>`, sorted unique; null for rows already rejected); worldwide also
    `metadata_lang` (the list matched against; null when none)."""

    name = "match"
    resources: Resources = CPU_HEAVY

    def __init__(self, config: MatchStageConfig) -> None:
        self.config = config
        self.files = metadata_files(config.metadata, config.s3)
        self.matchers: dict[str, EntryMatcher] = {}
        if self.files is None:
            self.matcher = EntryMatcher(load_entries(config.metadata, config.s3))

    def matcher_for(self, lang: str) -> EntryMatcher:
        """The Meta CLIP 2 matcher of `lang`'s list, built on first use in this worker."""
        if lang not in self.matchers:
            entries = load_entries(self.files[lang], self.config.s3)
            self.matchers[lang] = EntryMatcher(entries, rule="metaclip2")
        return self.matchers[lang]

    def __call__(self, batch: pa.Table) -> pa.Table:
        live = np.flatnonzero(live_mask(batch))
        ids: list = [None] * batch.num_rows
        reasons: list = [None] * batch.num_rows
        if self.files is not None:
            return self._worldwide(batch, live, ids, reasons)
        if len(live):
            captions = batch["caption"].take(pa.array(live, pa.int64()))
            for i, found in zip(live.tolist(), self.matcher.match_batch(captions), strict=True):
                ids[i] = found
                if len(found) == 0:
                    reasons[i] = MatchReject.NO_MATCH
        batch = batch.append_column("entry_ids", pa.array(ids, pa.list_(pa.int32())))
        return mark_rejected(batch, reasons, stage=self.name)

    def _worldwide(self, batch: pa.Table, live: np.ndarray, ids: list, reasons: list) -> pa.Table:
        """Each live caption against its own language's list; no list → `no_metadata_language` (detail: label)."""
        labels = batch["lang"] if "lang" in batch.column_names else pa.array(["en"] * batch.num_rows, pa.string())
        langs, lang_reasons, details = metadata_languages(labels.take(pa.array(live, pa.int64())), self.files)
        out_langs: list = [None] * batch.num_rows
        all_details: list = [None] * batch.num_rows
        groups: dict[str, list[int]] = {}
        for i, lang, reason, detail in zip(live.tolist(), langs.to_pylist(), lang_reasons, details, strict=True):
            if lang is None:
                reasons[i], all_details[i] = reason.as_py(), detail.as_py()
            else:
                groups.setdefault(lang, []).append(i)
                out_langs[i] = lang
        for lang, rows in groups.items():
            captions = batch["caption"].take(pa.array(rows, pa.int64()))
            for i, found in zip(rows, self.matcher_for(lang).match_batch(captions), strict=True):
                ids[i] = found
                if len(found) == 0:
                    reasons[i] = MatchReject.NO_MATCH
        batch = batch.append_column("entry_ids", pa.array(ids, pa.list_(pa.int32())))
        batch = batch.append_column(METADATA_LANG, pa.array(out_langs, pa.string()))
        return mark_rejected(batch, reasons, stage=self.name, details=all_details)


FUNNEL_KEYS = ("candidates", "matched")
"""Per-language funnel at the match stage: rows that reached it (by the language of their list, or their LID label
when it has none) and rows it matched."""


def language_funnel_block(batch: pa.Table, config: None = None) -> pa.Table:
    """One block of the text+match checkpoint → one row: JSON {language: [candidates, matched]} over the rows that
    reached the match stage (not rejected before it), keyed by `metadata_lang`, or by the LID label when the
    language has no list (`no_metadata_language`)."""
    stages = batch["reject_stage"].to_pylist() if "reject_stage" in batch.column_names else [None] * batch.num_rows
    labels = batch["lang"].to_pylist() if "lang" in batch.column_names else ["en"] * batch.num_rows
    langs = batch[METADATA_LANG].to_pylist() if METADATA_LANG in batch.column_names else labels
    out: dict[str, list[int]] = {}
    for stage, label, lang in zip(stages, labels, langs, strict=True):
        if stage is not None and stage != MatchStage.name:
            continue
        counts = out.setdefault(lang if lang is not None else (label or "(none)"), [0, 0])
        counts[0] += 1
        counts[1] += stage is None
    return pa.table({"funnel": pa.array([json.dumps(out)], pa.string())})


language_funnel_block.name = "language_funnel"
language_funnel_block.resources = CPU_LIGHT


def language_funnel(ds) -> dict[str, dict[str, int]]:
    """Barrier: {language: {candidates, matched}} over the text+match checkpoint `ds` (see `language_funnel_block`)."""
    total: dict[str, list[int]] = {}
    for batch in apply_stage(ds, StageSpec(language_funnel_block, batch_size=None)).iter_batches(
        batch_format="pyarrow", batch_size=None
    ):
        for blob in batch["funnel"].to_pylist():
            for lang, counts in json.loads(blob).items():
                acc = total.setdefault(lang, [0, 0])
                acc[0], acc[1] = acc[0] + counts[0], acc[1] + counts[1]
    return {lang: dict(zip(FUNNEL_KEYS, v, strict=True)) for lang, v in sorted(total.items())}
