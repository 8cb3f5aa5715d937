"""MetaCLIP balancing on Ray Data: the global entry count (one reduce of a len(metadata) vector) and the
balance stage (keep with 1 − Π(1 − min(1, t/c_e)), uniforms from a hash of (seed, uid, entry)).

No shuffle: each block emits one `curation.balancing.entry_counts` row; the driver sums them as uint64.
Worldwide (a metadata directory), entry ids are made global with the `EntryLayout` (language offset + id, English
at offset 0), so one count vector holds every language's counts, and each language's slice of the probabilities
uses its own t: t_en from `balance.t`, t_lang (`curation.balancing.t_lang`) for the others (Meta CLIP 2).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.balancing import (
    entry_counts,
    entry_probs,
    expected_kept,
    keep_prob,
    sample_keep,
    t_for_tail_share,
    t_lang,
    tail_share,
)
from pipeline.build_config import BalanceConfig
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options, read_bytes
from pipeline.stages.base import CPU_LIGHT, Resources, StageSpec, apply_stage, live_mask, mark_rejected
from pipeline.stages.match import METADATA_LANG, EntryLayout
from pipeline.stages.text import RecordReject


class BalanceReject(StrEnum):
    """Why (pre-)balancing rejects a row."""

    BALANCED_OUT = "balanced_out"  # the row's draw fell above its keep probability 1 - prod(1 - min(1, t / c_e))


def _live_ids(batch: pa.Table, other_captions: bool = False, layout: EntryLayout | None = None) -> pa.ListArray:
    """Entry ids of the live rows; with `other_captions`, also of the matched captions of a URL that were not drawn
    (`other_caption`: MetaCLIP 2 counts every matched caption of a URL). With a worldwide `layout`, global ids."""
    ids = batch["entry_ids"]
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    rows = pa.array(live_mask(batch))
    if other_captions and "reject_reason" in batch.column_names:
        other = pc.equal(batch["reject_reason"], RecordReject.OTHER_CAPTION.value)
        rows = pc.or_(rows, pc.fill_null(other, False))
    ids = ids.filter(rows)
    if layout is None or not layout.worldwide:
        return ids
    return globalize(ids, batch[METADATA_LANG].filter(rows), layout)


def globalize(ids: pa.ListArray, langs: pa.Array | pa.ChunkedArray, layout: EntryLayout) -> pa.ListArray:
    """Per-language entry ids → global ids (offset of the row's language + id); a null language has no ids."""
    offsets = layout.offsets
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    row_offset = np.array([offsets.get(lang, 0) for lang in langs.to_pylist()], dtype=np.int64)
    lengths = pc.fill_null(pc.list_value_length(ids), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = ids.flatten().to_numpy(zero_copy_only=False).astype(np.int64) + np.repeat(row_offset, lengths)
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(bounds), pa.array(values, pa.int64()))


def as_layout(layout: EntryLayout | int) -> EntryLayout:
    """A layout, or a number of entries meaning one English list."""
    return EntryLayout(sizes={"en": layout}) if isinstance(layout, int) else layout


def entry_count_block(batch: pa.Table, config: EntryLayout | int) -> pa.Table:
    """One block → one row holding the uint64 count vector (length = number of entries of the layout `config`) of
    its live rows' entry ids and its `other_caption` rows' (every matched caption counts), as raw bytes."""
    config = as_layout(config)
    counts = entry_counts(_live_ids(batch, other_captions=True, layout=config), config.n_entries)
    return pa.table({"counts": pa.array([counts.tobytes()], pa.binary())})


entry_count_block.name = "count"
entry_count_block.resources = CPU_LIGHT


def count_entries(ds, layout: EntryLayout | int) -> np.ndarray:
    """Barrier: texts per entry over the live rows of `ds` and its other matched captions of a URL,
    `uint64[n_entries]` (MetaCLIP's entry_count); worldwide, the global vector of the layout (a count of entries
    means one English list)."""
    layout = as_layout(layout)
    total = np.zeros(layout.n_entries, dtype=np.uint64)
    counted = apply_stage(ds, StageSpec(entry_count_block, layout, batch_size=None))
    for batch in counted.iter_batches(batch_format="pyarrow", batch_size=None):
        for blob in batch["counts"].to_pylist():
            total += np.frombuffer(blob, dtype=np.uint64)
    return total


class BalanceStageConfig(StrictModel):
    """What one balance actor needs: the saved entry counts, t and the seed."""

    counts: str
    """URI of the `.npy` count vector written by the count barrier."""
    t: float
    seed: int = 0
    s3: S3Options = S3Options()
    layout: EntryLayout | None = None
    """Worldwide: the global id layout; `t_by_lang` then gives each language's t (t for a language it lacks)."""
    t_by_lang: dict[str, float] = {}


def balance_probs(counts: np.ndarray, t: float, layout: EntryLayout | None, t_by_lang: dict[str, float]) -> np.ndarray:
    """p_e = min(1, t / c_e) over the global count vector, each language's slice at its own t when worldwide."""
    if layout is None or not layout.worldwide:
        return entry_probs(counts, t)
    parts = [entry_probs(counts[layout.slice(lang)], t_by_lang.get(lang, t)) for lang in layout.sizes]
    return np.concatenate(parts) if parts else np.zeros(0)


class BalanceStage:
    """Adds `keep_prob`; rejects rows whose per-(uid, entry) draws all miss as `balanced_out`."""

    name = "balance"
    resources: Resources = CPU_LIGHT

    def __init__(self, config: BalanceStageConfig) -> None:
        counts = np.load(io.BytesIO(read_bytes(config.counts, config.s3)), allow_pickle=False)
        self.probs = balance_probs(counts, config.t, config.layout, config.t_by_lang)
        self.seed = config.seed
        self.layout = config.layout

    def __call__(self, batch: pa.Table) -> pa.Table:
        live = live_mask(batch)
        idx = np.flatnonzero(live)
        probs = np.full(batch.num_rows, np.nan, dtype=np.float32)
        reasons: list = [None] * batch.num_rows
        if len(idx):
            ids = _live_ids(batch, layout=self.layout)
            uids = batch["uid"].take(pa.array(idx, pa.int64()))
            probs[idx] = keep_prob(ids, self.probs)
            keep = sample_keep(uids, ids, self.probs, self.seed)
            for i in idx[~keep].tolist():
                reasons[i] = BalanceReject.BALANCED_OUT
        batch = batch.append_column("keep_prob", pa.array(probs, pa.float32(), mask=~live))
        return mark_rejected(batch, reasons, stage=self.name)


PRE_BALANCE_SALT = 0x7072655F62616C  # "pre_bal": the pre-balance draws are independent of the final balance's


class PreBalanceStage(BalanceStage):
    """The optional cut before download: the balance rule at t_pre = oversample × t. Adds `keep_prob_pre`; rows
    whose draws all miss are rejected as `balanced_out` by stage `pre_balance` (seed salted: independent draws)."""

    name = "pre_balance"

    def __init__(self, config: BalanceStageConfig) -> None:
        super().__init__(config.model_copy(update={"seed": config.seed ^ PRE_BALANCE_SALT}))

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = super().__call__(batch)
        return out.rename_columns(["keep_prob_pre" if c == "keep_prob" else c for c in out.column_names])


def choose_t(
    cfg: BalanceConfig, counts: np.ndarray, ds, say: Callable[[str], None], layout: EntryLayout | None = None
) -> tuple[float, dict]:
    """t from count₁ (fixed, or the tail-share rule) and the balance summary recorded in the manifest. Worldwide
    (`layout`), t is English's (`t_en`, from English's slice of the counts) and the summary adds `t_by_lang` (t_lang
    for every other language, `curation.balancing.t_lang`) and per-language counts under `languages`."""
    worldwide = layout is not None and layout.worldwide
    en = counts[layout.slice("en")] if worldwide and "en" in layout.sizes else counts
    if worldwide and "en" not in layout.sizes:
        en = np.zeros(0, dtype=np.uint64)
    if en.sum() == 0:
        t = 1.0
    elif cfg.t == "auto":
        t = float(t_for_tail_share(en, cfg.tail_share))
    else:
        t = float(cfg.t)
    t = max(t, 1.0)
    t_by_lang = {}
    if worldwide:
        t_by_lang = {
            lang: t if lang == "en" else t_lang(counts[layout.slice(lang)], en, t, cfg.tail_share)
            for lang in layout.sizes
        }
    probs = balance_probs(counts, t, layout, t_by_lang)
    info = {
        "t": t,
        "t_mode": "auto" if cfg.t == "auto" else "fixed",
        "tail_share_at_t": tail_share(en, t) if en.sum() else 0.0,
        "entries_matched": int((counts > 0).sum()),
        "matches": int(counts.sum()),
        "expected_kept": round(_expected(ds, probs, layout), 1),
        "seed": cfg.seed,
    }
    if worldwide:
        info["t_by_lang"] = t_by_lang
        info["languages"] = language_summary(counts, layout, t_by_lang)
    say(
        f"count₁: t = {t:g} ({info['t_mode']}), {info['entries_matched']} entries matched, "
        f"expected kept without losses {info['expected_kept']:.0f}"
        + (f"; t_lang: {', '.join(f'{k} {v:g}' for k, v in t_by_lang.items())}" if worldwide else "")
    )
    return t, info


def language_summary(counts: np.ndarray, layout: EntryLayout, t_by_lang: dict[str, float]) -> dict[str, dict]:
    """Per language: entries, entries matched, matches, its t and the share of its matches in entries below t."""
    out = {}
    for lang in layout.sizes:
        c = counts[layout.slice(lang)]
        t = t_by_lang.get(lang, 1.0)
        out[lang] = {
            "entries": int(len(c)),
            "entries_matched": int((c > 0).sum()),
            "matches": int(c.sum()),
            "t": t,
            "tail_share_at_t": tail_share(c, t) if c.sum() else 0.0,
        }
    return out


def _expected(ds, probs: np.ndarray, layout: EntryLayout | None = None) -> float:
    worldwide = layout is not None and layout.worldwide
    columns = ["entry_ids", "reject_reason"] + ([METADATA_LANG] if worldwide else [])
    total = 0.0
    for batch in ds.select_columns(columns).iter_batches(batch_format="pyarrow"):
        live = pc.is_null(batch["reject_reason"])
        ids = batch["entry_ids"].filter(live).combine_chunks()
        if worldwide:
            ids = globalize(ids, batch[METADATA_LANG].filter(live), layout)
        total += expected_kept(ids, probs)
    return total


def worldwide_balance(layout: EntryLayout, balance: dict, scale: float = 1.0) -> dict:
    """The BalanceStageConfig keys of a worldwide build (layout, t per language, times `scale`: pre_balance's
    oversample); none for an English list."""
    if not layout.worldwide:
        return {}
    return {"layout": layout, "t_by_lang": {lang: scale * t for lang, t in balance["t_by_lang"].items()}}


def write_counts(run, when: str, counts: np.ndarray, layout: EntryLayout) -> None:
    """stats/entry_counts_{when}.npy (the global vector); worldwide also stats/entry_counts_{when}/{lang}.npy, each
    language's counts indexed by its own entry ids."""
    run.write_npy(f"stats/entry_counts_{when}.npy", counts)
    if layout.worldwide:
        for lang in layout.sizes:
            run.write_npy(f"stats/entry_counts_{when}/{lang}.npy", counts[layout.slice(lang)])


def write_languages(run, layout: EntryLayout, balance: dict) -> None:
    """Worldwide: stats/languages.json — the id layout (language order and sizes), t per language and each
    language's entries, matched entries, matches and tail share at its t (count₁)."""
    if layout.worldwide:
        run.write_json(
            "stats/languages.json",
            {"layout": layout.sizes, "t_by_lang": balance["t_by_lang"], "languages": balance["languages"]},
        )


def write_language_funnel(run, layout: EntryLayout, funnel: dict[str, dict[str, int]], kept_langs: list) -> None:
    """Worldwide: stats/language_funnel.json — per language, the rows that reached the match stage (`candidates`),
    whether it has a list (`with_metadata`; without one they were all rejected as no_metadata_language), the rows
    matched and the rows kept (by `metadata_lang` of the kept rows)."""
    if not layout.worldwide:
        return
    kept: dict[str, int] = {}
    for lang in kept_langs:
        kept[lang] = kept.get(lang, 0) + 1
    rows = {
        lang: {**v, "with_metadata": lang in layout.sizes, "kept": kept.get(lang, 0)} for lang, v in funnel.items()
    }
    run.write_json("stats/language_funnel.json", {"languages": rows})
