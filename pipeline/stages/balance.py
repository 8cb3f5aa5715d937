"""MetaCLIP balancing on Ray Data: the global entry count (one reduce of a len(metadata) vector) and the
balance stage (keep with 1 − Π(1 − min(1, t/c_e)), uniforms from a hash of (seed, uid, entry)).

No shuffle: each block emits one `curation.balancing.entry_counts` row; the driver sums them as uint64.
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
    tail_share,
)
from pipeline.build_config import BalanceConfig
from pipeline.core.config import StrictModel
from pipeline.core.storage import S3Options, read_bytes
from pipeline.stages.base import CPU_LIGHT, Resources, StageSpec, apply_stage, live_mask, mark_rejected
from pipeline.stages.text import RecordReject


class BalanceReject(StrEnum):
    """Why (pre-)balancing rejects a row."""

    BALANCED_OUT = "balanced_out"  # the row's draw fell above its keep probability 1 - prod(1 - min(1, t / c_e))


def _live_ids(batch: pa.Table, other_captions: bool = False) -> pa.ListArray:
    """Entry ids of the live rows; with `other_captions`, also of the matched captions of a URL that were not drawn
    (`other_caption`: MetaCLIP 2 counts every matched caption of a URL)."""
    ids = batch["entry_ids"]
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    rows = pa.array(live_mask(batch))
    if other_captions and "reject_reason" in batch.column_names:
        other = pc.equal(batch["reject_reason"], RecordReject.OTHER_CAPTION.value)
        rows = pc.or_(rows, pc.fill_null(other, False))
    return ids.filter(rows)


def entry_count_block(batch: pa.Table, config: int) -> pa.Table:
    """One block → one row holding the uint64 count vector (length `config` = number of entries) of its live
    rows' entry ids and its `other_caption` rows' (every matched caption counts), as raw bytes."""
    counts = entry_counts(_live_ids(batch, other_captions=True), config)
    return pa.table({"counts": pa.array([counts.tobytes()], pa.binary())})


entry_count_block.name = "count"
entry_count_block.resources = CPU_LIGHT


def count_entries(ds, n_entries: int) -> np.ndarray:
    """Barrier: texts per entry over the live rows of `ds` and its other matched captions of a URL,
    `uint64[n_entries]` (MetaCLIP's entry_count)."""
    total = np.zeros(n_entries, dtype=np.uint64)
    counted = apply_stage(ds, StageSpec(entry_count_block, n_entries, batch_size=None))
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


class BalanceStage:
    """Adds `keep_prob`; rejects rows whose per-(uid, entry) draws all miss as `balanced_out`."""

    name = "balance"
    resources: Resources = CPU_LIGHT

    def __init__(self, config: BalanceStageConfig) -> None:
        counts = np.load(io.BytesIO(read_bytes(config.counts, config.s3)), allow_pickle=False)
        self.probs = entry_probs(counts, config.t)
        self.seed = config.seed

    def __call__(self, batch: pa.Table) -> pa.Table:
        live = live_mask(batch)
        idx = np.flatnonzero(live)
        probs = np.full(batch.num_rows, np.nan, dtype=np.float32)
        reasons: list = [None] * batch.num_rows
        if len(idx):
            ids = _live_ids(batch)
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


def choose_t(cfg: BalanceConfig, counts: np.ndarray, ds, say: Callable[[str], None]) -> tuple[float, dict]:
    """t from count₁ (fixed, or the tail-share rule) and the balance summary recorded in the manifest."""
    if counts.sum() == 0:
        t = 1.0
    elif cfg.t == "auto":
        t = float(t_for_tail_share(counts, cfg.tail_share))
    else:
        t = float(cfg.t)
    t = max(t, 1.0)
    info = {
        "t": t,
        "t_mode": "auto" if cfg.t == "auto" else "fixed",
        "tail_share_at_t": tail_share(counts, t) if counts.sum() else 0.0,
        "entries_matched": int((counts > 0).sum()),
        "matches": int(counts.sum()),
        "expected_kept": round(_expected(ds, entry_probs(counts, t)), 1),
        "seed": cfg.seed,
    }
    say(
        f"count₁: t = {t:g} ({info['t_mode']}), {info['entries_matched']} entries matched, "
        f"expected kept without losses {info['expected_kept']:.0f}"
    )
    return t, info


def _expected(ds, probs: np.ndarray) -> float:
    total = 0.0
    for batch in ds.select_columns(["entry_ids", "reject_reason"]).iter_batches(batch_format="pyarrow"):
        live = pc.is_null(batch["reject_reason"])
        total += expected_kept(batch["entry_ids"].filter(live).combine_chunks(), probs)
    return total
