"""Build statistics from durable artifacts (rejects/, curated/, work/final, manifest) — never from actor memory.

`funnel` groups rejects by (stage, reason); `accounting` proves every input row is exactly once kept or rejected.
"""

from __future__ import annotations

from importlib import metadata as md

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from pipeline.errors import ClipforgeError
from pipeline.rundir import RunDir

DUPLICATE_REASONS = frozenset({"duplicate_url"})


def _table(run: RunDir, name: str, columns: list[str]) -> pa.Table:
    fs, path = run.fs(name)
    return pads.dataset(path, filesystem=fs, format="parquet").to_table(columns=columns)


def funnel(run: RunDir, n_kept: int) -> dict:
    """Rows rejected per (stage, reason), most first, and the kept total."""
    rejects = _table(run, "rejects", ["stage", "reason"])
    rows = rejects.group_by(["stage", "reason"]).aggregate([([], "count_all")]).to_pylist()
    rows.sort(key=lambda r: (-r["count_all"], r["stage"], r["reason"]))
    return {
        "input_rows": rejects.num_rows + n_kept,
        "kept": n_kept,
        "rejected": rejects.num_rows,
        "by_reason": [{"stage": r["stage"], "reason": r["reason"], "rows": r["count_all"]} for r in rows],
    }


def accounting(run: RunDir, input_rows: int) -> dict:
    """Check the build invariant; raise `ClipforgeError` (the run fails loudly) if it breaks.

    Every input row is exactly once in curated/ or rejects/; kept uids are unique; apart from `duplicate_url`
    rejects (the other captions of a kept or rejected URL), each distinct uid appears exactly once overall.
    Runs on the driver over the uid columns (fine to ~10^8 rows; larger runs should check per uid-hash partition).
    """
    kept = _table(run, "curated", ["uid"])["uid"]
    rejects = _table(run, "rejects", ["uid", "reason"])
    problems = []
    if len(kept) + rejects.num_rows != input_rows:
        problems.append(f"{input_rows} input rows but {len(kept)} kept + {rejects.num_rows} rejected")
    primary = rejects.filter(pc.invert(pc.is_in(rejects["reason"], pa.array(sorted(DUPLICATE_REASONS)))))["uid"]
    everyone = pa.chunked_array(kept.chunks + primary.chunks, pa.string())
    n_unique = len(pc.unique(everyone))
    if n_unique != len(everyone):
        problems.append(f"{len(everyone) - n_unique} uids appear more than once among kept and rejected rows")
    dup_uids = pc.unique(rejects.filter(pc.is_in(rejects["reason"], pa.array(sorted(DUPLICATE_REASONS))))["uid"])
    if len(dup_uids) and not pc.all(pc.is_in(dup_uids, pc.unique(everyone))).as_py():
        problems.append("a duplicate_url reject has no kept or rejected representative")
    if problems:
        raise ClipforgeError(f"accounting invariant broken in {run.uri}: " + "; ".join(problems))
    return {"input_rows": input_rows, "kept": len(kept), "rejected": rejects.num_rows, "unique_uids": n_unique}


def package_versions() -> dict[str, str]:
    """Versions of the packages a run's output depends on (recorded in the manifest)."""
    out = {}
    for name in ("clipforge", "ray", "pyarrow", "numpy", "pillow", "fasttext", "open_clip_torch", "torch"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def format_funnel(stats: dict, top: int = 15) -> str:
    """The funnel as terminal text."""
    lines = [
        f"input rows {stats['input_rows']:>10}",
        f"kept       {stats['kept']:>10}",
        "rejected by (stage, reason):",
    ]
    for r in stats["by_reason"][:top]:
        share = r["rows"] / stats["input_rows"] if stats["input_rows"] else 0
        lines.append(f"  {r['stage']:<10} {r['reason']:<22} {r['rows']:>10}  {share:6.1%}")
    if not stats["by_reason"]:
        lines.append("  (none)")
    return "\n".join(lines)


def load_stats(run_uri: str) -> dict:
    """The funnel of a finished run (stats/funnel.json), or a clear error."""
    run = RunDir(run_uri)
    if not run.exists("stats", "funnel.json"):
        raise ClipforgeError(f"{run_uri!r} has no stats/funnel.json: not a finished clipforge build run directory")
    return run.read_json("stats/funnel.json")
