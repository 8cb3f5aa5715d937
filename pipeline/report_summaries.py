"""The curation report's numbers: pure functions of a run's artifacts (funnel, entry counts, dedup, sidecars).

No I/O and no HTML: inputs are dicts, numpy arrays and Arrow tables already read by `pipeline.report_inputs`;
outputs are plain lists and dicts that `pipeline.report` renders and the unit tests check exactly.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STAGE_ORDER = (
    "ingest",
    "canonicalize",
    "text",
    "langid",
    "match",
    "pre_balance",
    "prebalance",
    "download",
    "fetch_images",
    "images",
    "dedup",
    "eval_dedup",
    "balance",
    "write",
)
"""Pipeline order of the reject stage names (DESIGN.md §1). Stages not listed come last, by name; a funnel.json
with a `stages` list (pipeline order) overrides this."""

DOWNLOAD_STAGES = ("download", "fetch_images")
IMAGE_STAGES = ("images",)
HTTP_DETAIL_REASONS = ("http_error", "http_5xx")


def stage_order(funnel: dict) -> list[str]:
    """The stages of `funnel["by_reason"]` in pipeline order (`funnel["stages"]` first when present)."""
    present = {r["stage"] for r in funnel.get("by_reason", [])}
    explicit = [s for s in funnel.get("stages", []) if s in present]
    known = [s for s in STAGE_ORDER if s in present and s not in explicit]
    rest = sorted(present - set(explicit) - set(known))
    return explicit + known + rest


def funnel_steps(funnel: dict) -> list[dict]:
    """Rows remaining after each stage: `[{stage, before, dropped, after, reasons: [(reason, rows), ...]}]` in
    pipeline order, starting from `funnel["input_rows"]`; the last `after` equals input − rejected. Reasons of a
    stage are sorted by rows (most first), then name."""
    left = int(funnel["input_rows"])
    steps = []
    for stage in stage_order(funnel):
        reasons = sorted(
            ((r["reason"], int(r["rows"])) for r in funnel["by_reason"] if r["stage"] == stage),
            key=lambda x: (-x[1], x[0]),
        )
        dropped = sum(n for _, n in reasons)
        steps.append({"stage": stage, "before": left, "dropped": dropped, "after": left - dropped, "reasons": reasons})
        left -= dropped
    return steps


def funnel_problems(funnel: dict) -> list[str]:
    """Inconsistencies between the funnel's totals and its per-reason rows (empty when it adds up)."""
    rejected = sum(int(r["rows"]) for r in funnel.get("by_reason", []))
    out = []
    if rejected != int(funnel.get("rejected", rejected)):
        out.append(f"per-reason rows sum to {rejected}, but rejected = {funnel['rejected']}")
    if int(funnel["input_rows"]) - rejected != int(funnel["kept"]):
        out.append(f"input {funnel['input_rows']} − rejected {rejected} ≠ kept {funnel['kept']}")
    return out


def reasons_for(funnel: dict, stages: tuple[str, ...]) -> list[tuple[str, int]]:
    """(reason, rows) of the given stages, most first, then by name."""
    rows = Counter()
    for r in funnel.get("by_reason", []):
        if r["stage"] in stages:
            rows[r["reason"]] += int(r["rows"])
    return sorted(rows.items(), key=lambda x: (-x[1], x[0]))


def http_details(rejects: pa.Table) -> list[tuple[str, int]]:
    """`HTTP <detail>` counts of download rejects whose reason carries the status code in `detail`
    (columns stage, reason, detail; null details count as `HTTP ?`), most first."""
    if rejects.num_rows == 0:
        return []
    in_download = pc.is_in(rejects["stage"], pa.array(DOWNLOAD_STAGES))
    mask = pc.and_(in_download, pc.is_in(rejects["reason"], pa.array(HTTP_DETAIL_REASONS)))
    details = rejects.filter(mask)["detail"].to_pylist()
    counts = Counter(f"HTTP {d}" if d else "HTTP ?" for d in details)
    return sorted(counts.items(), key=lambda x: (-x[1], x[0]))


def value_counts(values: list, top: int = 20, null_label: str = "(unknown)") -> list[tuple[str, int]]:
    """The `top` most frequent values (most first, then by label) plus an `(other)` bucket for the rest."""
    counts = Counter(null_label if v is None or v == "" else str(v) for v in values)
    ranked = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    head, tail = ranked[:top], ranked[top:]
    return head + ([("(other)", sum(n for _, n in tail))] if tail else [])


def log_spaced_indices(n: int, max_points: int = 2000) -> np.ndarray:
    """Sorted unique int64 indices into range(n), all of them when n ≤ max_points, else ~max_points spaced
    evenly in log(rank) — what a log-log rank plot needs — always including the first and the last."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    idx = np.unique(np.geomspace(1, n, max_points).astype(np.int64) - 1)
    return np.unique(np.concatenate([[0], idx, [n - 1]]))


def rank_curves(pre: np.ndarray, post: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(entry ids, pre counts, post counts) of the entries matched at least once, ordered by pre count descending
    (ties: smaller id first). Post is shown in the same entry order, so the cap at t reads directly off the plot."""
    pre, post = np.asarray(pre, np.int64), np.asarray(post, np.int64)
    if pre.shape != post.shape:
        raise ValueError(f"entry count vectors differ in length: pre {pre.shape}, post {post.shape}")
    ids = np.flatnonzero(pre > 0)
    ids = ids[np.lexsort((ids, -pre[ids]))]
    return ids, pre[ids], post[ids]


def head_entries(pre: np.ndarray, post: np.ndarray, t: float | None, names: list[str] | None, n: int = 20) -> list:
    """The `n` entries with the most matches before balancing: `[{id, name, pre, cap, post}]` where cap =
    min(pre, t) is the expected matches kept (None without t) and name is None without metadata."""
    ids, pre_s, post_s = rank_curves(pre, post)
    out = []
    for i, a, b in zip(ids[:n].tolist(), pre_s[:n].tolist(), post_s[:n].tolist(), strict=True):
        name = names[i] if names is not None and i < len(names) else None
        out.append({"id": i, "name": name, "pre": a, "cap": None if t is None else min(float(a), float(t)), "post": b})
    return out


def cluster_sizes(artifact: pa.Table) -> list[tuple[int, int]]:
    """(cluster size, number of clusters) from a dedup artifact (one row per dropped uid with its representative and
    cluster_size, `pipeline.dedup.ARTIFACT_SCHEMA`), by size ascending."""
    if artifact.num_rows == 0:
        return []
    reps = artifact.group_by("representative").aggregate([("cluster_size", "max")])
    sizes = Counter(reps["cluster_size_max"].to_pylist())
    return sorted(sizes.items())


def pick_rows(n_rows: int, k: int, seed: int) -> list[int]:
    """`k` distinct row indices of `n_rows` (all when fewer), chosen by `seed` alone, ascending."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n_rows, size=min(k, n_rows), replace=False).tolist())


def pick_pairs(artifact: pa.Table, reachable: set[str], k: int, seed: int) -> list[dict]:
    """Up to `k` (dropped uid, representative, distance, cluster_size) rows of a dedup artifact, one per cluster,
    seeded; clusters whose representative is in `reachable` (its image can be shown) come first."""
    if artifact.num_rows == 0:
        return []
    rows = artifact.to_pylist()
    order = np.random.default_rng(seed).permutation(len(rows))
    seen, first, later = set(), [], []
    for i in order.tolist():
        r = rows[i]
        if r["representative"] in seen:
            continue
        seen.add(r["representative"])
        (first if r["representative"] in reachable else later).append(r)
    return (first + later)[:k]


def word_counts(captions: list[str | None]) -> np.ndarray:
    """Whitespace-separated words per caption (0 for null), int64."""
    return np.asarray([len(c.split()) if c else 0 for c in captions], np.int64)
