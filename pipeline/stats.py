"""Build statistics from durable artifacts (rejects/, shard sidecars or curated/, manifest) — never from actor memory.

`funnel` groups rejects by (stage, reason); `accounting` proves every input row is exactly once kept or rejected.
"""

from __future__ import annotations

from importlib import metadata as md

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from pipeline.core.errors import ClipforgeError
from pipeline.rundir import RunDir
from pipeline.stages.text import RecordReject

DUPLICATE_REASONS = frozenset({RecordReject.OTHER_CAPTION})


def read_table(run: RunDir, name: str, columns: list[str]) -> pa.Table:
    """`columns` of the parquet dataset RUN/NAME (a directory of parquet files); no rows when it does not exist."""
    if not run.exists(name):
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    fs, path = run.fs(name)
    return pads.dataset(path, filesystem=fs, format="parquet").to_table(columns=columns)


def kept_uids(run: RunDir) -> pa.ChunkedArray:
    """uids of the kept rows: the shard sidecars (an image build) or curated/ (a text-only build)."""
    from pipeline.shards import read_sidecars

    if run.exists("shards"):
        return read_sidecars(run, ["uid"])["uid"]
    return read_table(run, "curated", ["uid"])["uid"]


def funnel(run: RunDir, n_kept: int, stage_order: tuple[str, ...] = ()) -> dict:
    """Rows rejected per (stage, reason), most first; per stage in `stage_order` (the build's steps' order: rejected
    there, rows left after it; a stage not listed goes last, by name); and the kept total."""
    rejects = read_table(run, "rejects", ["stage", "reason"])
    # use_threads=False: a threaded group_by over a table read from S3 failed ("thread index 11 is out of range")
    rows = rejects.group_by(["stage", "reason"], use_threads=False).aggregate([([], "count_all")]).to_pylist()
    rows.sort(key=lambda r: (-r["count_all"], r["stage"], r["reason"]))
    per_stage: dict[str, int] = {}
    for r in rows:
        per_stage[r["stage"]] = per_stage.get(r["stage"], 0) + r["count_all"]
    order = sorted(per_stage, key=lambda st: (stage_order.index(st) if st in stage_order else len(stage_order), st))
    left, by_stage = rejects.num_rows + n_kept, []
    for st in order:
        left -= per_stage[st]
        by_stage.append({"stage": st, "rejected": per_stage[st], "remaining": left})
    return {
        "input_rows": rejects.num_rows + n_kept,
        "kept": n_kept,
        "rejected": rejects.num_rows,
        "by_reason": [{"stage": r["stage"], "reason": r["reason"], "rows": r["count_all"]} for r in rows],
        "by_stage": by_stage,
    }


def accounting(run: RunDir, input_rows: int) -> dict:
    """Check the build invariant; raise `ClipforgeError` (the run fails loudly) if it breaks.

    Every input row is exactly once in the kept set (shard sidecars, or curated/ for a text-only build) or in
    rejects/; kept uids are unique; apart from `other_caption` rejects (the other captions of a kept or rejected
    URL), each distinct uid appears exactly once overall. Runs on the driver over the uid columns (fine to ~10^8
    rows; larger runs should check per uid-hash partition).
    """
    kept = kept_uids(run)
    rejects = read_table(run, "rejects", ["uid", "reason"])
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
        problems.append("an other_caption reject has no kept or rejected representative")
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
    """The funnel as terminal text: the `top` reasons, then how many more (and their rows) when there are more."""
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
    rest = stats["by_reason"][top:]
    if rest:
        n_rows = sum(r["rows"] for r in rest)
        lines.append(f"  +{len(rest)} more reasons ({n_rows} rows): stats/funnel.json lists them all")
    if stats.get("nothing_kept"):
        lines.append(stats["nothing_kept"])
    return "\n".join(lines)


def load_stats(run_uri: str) -> dict:
    """The funnel of a finished run (stats/funnel.json), or a clear error."""
    run = RunDir(run_uri)
    if not run.exists("stats", "funnel.json"):
        raise ClipforgeError(f"{run_uri!r} has no stats/funnel.json: not a finished clipforge build run directory")
    return run.read_json("stats/funnel.json")


def run_progress(run_uri: str) -> list[str] | None:
    """What an unfinished build run (work/started.json, no stats/funnel.json) has committed so far, one line per step
    reached (#18 item 6); None for anything else. Reads only the commit markers, plans and ledgers the build writes,
    so it is right while the build runs, after it was killed, locally and on S3."""
    from pipeline.shards import committed_shards
    from pipeline.stages.download_parts import committed_parts

    run = RunDir(run_uri)
    if run.exists("stats", "funnel.json") or not run.exists("work", "started.json"):
        return None
    lines = [f"{run_uri} is a build in progress (or killed: re-run the same command to resume); committed so far:"]
    if not run.exists("work", "matched.done"):
        return [*lines, "  text + match: running, nothing committed yet"]
    lines.append(f"  text + match: {run.read_json('work/matched.done')['rows']} input rows checkpointed")
    if run.exists("work", "selected.done"):
        lines.append(f"  pre_balance: {run.read_json('work/selected.done')['rows']} rows checkpointed")
    if run.exists("work", "download_plan.json"):
        plan = run.read_json("work/download_plan.json")
        done = len(committed_parts(run.path("work", "download"), run.s3))
        lines.append(f"  download: {done}/{plan['parts']} parts committed ({plan['rows']} rows to download in all)")
    dedup = [name for name in ("exact", "near", "eval_hashes") if run.exists("dedup", f"{name}.json")]
    if dedup:
        lines.append(f"  dedup: {', '.join(dedup)} done")
    if run.exists("work", "final.done"):
        lines.append("  balance: decisions checkpointed")
    if run.exists("work", "shards_plan.json"):
        plan = run.read_json("work/shards_plan.json")
        lines.append(f"  shards: {len(committed_shards(run))}/{plan['shards']} written ({plan['samples']} samples)")
    return lines
