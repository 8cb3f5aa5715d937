"""Ray Data match stage: MetaCLIP substring matching of captions → `entry_ids`; no match → rejected.

The metadata is one English list (MetaCLIP rule, as always) or a directory of `{lang}.json` lists (worldwide, Meta
CLIP 2): each caption is matched against its own language's list only, with the spaced-metadata rule, and gets a
`metadata_lang` column; a caption whose LID language has no list is rejected as `no_metadata_language`
(`curation.langmap`). A single-file list is read and its matcher built once per worker process per build
(`__init__`, kept by `stages.base.setup_scope`); a language's matcher is built the first time a batch needs it.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa

from curation.langmap import metadata_languages
from curation.matching import EntryMatcher
from curation.metadata import parse_metadata
from curation.metadata_worldwide import SOURCES_FILE
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options, Uri, list_uris, read_bytes
from pipeline.stages.base import CPU_HEAVY, Resources, live_mask, mark_rejected

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
