"""What one small Ray Data execution costs before it touches a row: the fixed cost a build pays per barrier (#19).

    python benchmarks/bench_ray_overhead.py            # 1,000 rows, 3 repeats of each setting, ~2 min
    python benchmarks/bench_ray_overhead.py --smoke    # clipforge's settings only, 1 repeat: does it run

On a local Ray with 2 CPUs (`pipeline.core.ray_setup.init_ray`), over one 1,000-row parquet file, each measurement is
one whole execution (`materialize`), timed on the driver, after a warm-up execution that starts the workers:
  read        read_parquet → count, with the V1 reader (clipforge's default) and datasource V2 (Ray 2.60's default)
  map task    read → map_batches(function), tasks (how clipforge runs its class stages since #19)
  map actor   read → map_batches(callable class) on a one-actor ActorPoolStrategy (a new pool per execution)
  groupby     read → groupby(key).map_groups(function), with the pull-based sort shuffle (clipforge's default) and
              SHUFFLE_V2 (Ray 2.60's default), Ray's default partition count and 4 partitions
Median of the repeats, seconds. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMMAND = "python benchmarks/bench_ray_overhead.py"


def _identity(batch):
    return batch


class _Identity:
    def __call__(self, batch):
        return batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="clipforge's settings only, one repeat")
    args = p.parse_args()
    if args.smoke:
        args.repeats = 1

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    from ray.data import ActorPoolStrategy, DataContext
    from ray.data.context import ShuffleStrategy

    from pipeline.core.ray_setup import init_ray

    init_ray(num_cpus=2)
    ctx = DataContext.get_current()
    work = Path(tempfile.mkdtemp(prefix="bench_ray_overhead_"))
    pq.write_table(pa.table({"key": np.arange(args.rows) % 300, "x": np.arange(args.rows)}), work / "a.parquet")

    def read():
        return ray.data.read_parquet(str(work))

    cases = [
        ("read → count", "V1 reader", {"use_datasource_v2": False}, lambda: read().count()),
        ("read → count", "datasource V2", {"use_datasource_v2": True}, lambda: read().count()),
        ("map_batches", "task", {}, lambda: read().map_batches(_identity, num_cpus=0.5).materialize()),
        (
            "map_batches",
            "actor pool (1 actor)",
            {},
            lambda: (
                read()
                .map_batches(_Identity, num_cpus=0.5, compute=ActorPoolStrategy(min_size=1, max_size=1))
                .materialize()
            ),
        ),
    ]
    for strategy, label in (
        (ShuffleStrategy.SORT_SHUFFLE_PULL_BASED, "sort shuffle"),
        (ShuffleStrategy.SHUFFLE_V2, "SHUFFLE_V2"),
    ):
        for parts in (None, 4):
            cases.append(
                (
                    f"groupby → map_groups ({'default' if parts is None else parts} partitions)",
                    label,
                    {"shuffle_strategy": strategy},
                    lambda parts=parts: (
                        read().groupby("key", num_partitions=parts).map_groups(_identity, num_cpus=0.5).materialize()
                    ),
                )
            )
    if args.smoke:  # clipforge's own settings only
        cases = [c for c in cases if c[1] in ("V1 reader", "sort shuffle") and "default" not in c[0]]
    base = {"use_datasource_v2": ctx.use_datasource_v2, "shuffle_strategy": ctx.shuffle_strategy}
    read().count()  # warm-up: workers started
    rows = []
    for what, setting, overrides, run in cases:
        for key, value in {**base, **overrides}.items():
            setattr(ctx, key, value)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        rows.append((what, setting, statistics.median(times)))
        print(f"{what:48s} {setting:22s} {statistics.median(times):6.2f} s", file=sys.stderr)
    print(f"\n### Fixed cost of one Ray Data execution (`{COMMAND}`)\n")
    print(f"{os.cpu_count()} cores, local Ray with 2 CPUs, {args.rows} rows, median of {args.repeats}\n")
    print("| execution | setting | seconds |\n|---|---|---|")
    for what, setting, seconds in rows:
        print(f"| {what} | {setting} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
