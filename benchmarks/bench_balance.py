"""Count + balance through Ray Data on this machine: rows/s and peak memory (issue: text curation, part (c)).

Rows carry Zipf-distributed entry ids (3.5 matches per text on average, as MetaCLIP's pool) over a 500k-entry
metadata; the pipeline is the build's own: `count_entries` (per-block bincount, summed on the driver), t by the
6 % tail rule, then `BalanceStage`, then a count of kept rows. There is no peer for this step (MetaCLIP's
reference is a single-process numpy loop over saved inverted indices); the figure is throughput and memory.

    python benchmarks/bench_balance.py --rows 10000000
    python benchmarks/bench_balance.py --smoke          # 2,000 rows: does it run
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N_ENTRIES = 500_000


def make_block(batch: pa.Table, config: int) -> pa.Table:
    """Synthetic matched rows: uid strings and Zipf entry ids, a pure function of the row ids."""
    ids = batch["id"].to_numpy()
    rng = np.random.default_rng(int(ids[0]) + config)
    n = len(ids)
    lengths = rng.poisson(2.5, n) + 1
    flat = (rng.zipf(1.3, lengths.sum()) - 1) % N_ENTRIES
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    entry_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.astype(np.int32)))
    uids = pa.array([f"{i:024x}" for i in ids.tolist()])
    return pa.table({"uid": uids, "entry_ids": entry_ids})


make_block.name = "synthesize"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--smoke", action="store_true", help="2,000 rows: checks the benchmark works (seconds)")
    args = ap.parse_args()
    if args.smoke:
        args.rows = 2000
    import ray

    from curation.balancing import t_for_tail_share
    from pipeline.core.ray_setup import init_ray
    from pipeline.stages.balance import BalanceStage, BalanceStageConfig, count_entries
    from pipeline.stages.base import CPU_LIGHT, StageSpec, apply_stage

    make_block.resources = CPU_LIGHT
    init_ray()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        ds = apply_stage(
            ray.data.range(args.rows, override_num_blocks=max(8, args.rows // 50_000)),
            StageSpec(make_block, 0, batch_size=None),
        )
        ds = ds.materialize()
        t1 = time.monotonic()
        counts = count_entries(ds, N_ENTRIES)
        t = float(t_for_tail_share(counts, 0.06))
        np.save(Path(tmp) / "counts.npy", counts)
        t2 = time.monotonic()
        cfg = BalanceStageConfig(counts=str(Path(tmp) / "counts.npy"), t=t, seed=0)
        balanced = apply_stage(ds, StageSpec(BalanceStage, cfg, batch_size=10_000))
        kept = balanced.filter(expr=ray.data.expressions.col("reject_reason").is_null()).count()
        t3 = time.monotonic()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store = ray.cluster_resources().get("object_store_memory", 0) / 2**30
    n = args.rows
    print(
        f"| count + balance, {n:,} rows, {N_ENTRIES:,} entries, 2 cores | count {n / (t2 - t1):,.0f} rows/s, "
        f"balance {n / (t3 - t2):,.0f} rows/s, end to end {n / (t3 - t1):,.0f} rows/s (synthesis "
        f"{t1 - t0:.1f} s excluded) | t = {t:g}, kept {kept:,} ({kept / n:.1%}) | driver peak RSS "
        f"{rss_mib:,.0f} MiB, object store {store:.1f} GiB | `python benchmarks/bench_balance.py --rows {n}` |"
    )


if __name__ == "__main__":
    main()
