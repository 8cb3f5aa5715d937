"""Ray bootstrap: connect to `RAY_ADDRESS` when set, else start a local Ray sized for this machine.

The one place clipforge calls `ray.init`. Quiet by default (workers' logs not forwarded, Ray's own logger at
WARNING, no usage-stats call home); `verbose=True` forwards worker logs and Ray Data progress bars.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pipeline.core.errors import ClipforgeError

GiB = 1024**3
# Object store for a local Ray: a fifth of RAM, at least 1 GiB, at most 8 GiB. Ray's default (30 % of RAM)
# is generous for a 2-core box whose other processes (the local web, the trainer) need memory too.
_MIN_STORE, _MAX_STORE, _STORE_FRACTION = 1 * GiB, 8 * GiB, 0.2


@dataclass(frozen=True)
class RayInfo:
    """What `init_ray` connected to."""

    address: str
    local: bool
    num_cpus: float
    object_store_bytes: int


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # non-POSIX; fall back to a conservative guess
        return 8 * GiB


def local_object_store_bytes(total_memory: int | None = None) -> int:
    """Object-store size for a local Ray on a machine with `total_memory` bytes of RAM."""
    total = total_memory if total_memory is not None else _total_memory_bytes()
    return int(min(_MAX_STORE, max(_MIN_STORE, _STORE_FRACTION * total)))


def check_ray_address(address: str | None = None) -> None:
    """A `ClipforgeError` (one line) when `address` or $RAY_ADDRESS is an HTTP URL: that is the dashboard / job
    server, which `clipforge submit` talks to; `ray.init` joins a cluster through its GCS address (HEAD:6379)."""
    source = "address" if address else "RAY_ADDRESS"
    value = address or os.environ.get("RAY_ADDRESS") or ""
    if value.lower().startswith(("http://", "https://")):
        raise ClipforgeError(
            f"{source}={value!r} is a Ray dashboard URL, which only `clipforge submit` uses (it runs the command on "
            f"the cluster); commands run here join a cluster by its GCS address (HEAD:6379), or start a local Ray "
            f"when RAY_ADDRESS is unset: unset it (`unset RAY_ADDRESS`) or use `clipforge submit`"
        )


def small_data_defaults(ctx) -> None:
    """Ray Data settings whose fixed cost a build pays per execution, unless the environment chose otherwise.

    Measured on the 2-core box with Ray 2.60 (benchmarks/RESULTS.md, #19): `read_parquet` through datasource V2
    starts 32 FooterReader actors (32 processes) per read, ~45 s of a 1,000-candidate build; the V1 reader reads
    footers in its read tasks. A `groupby` of 1,000 rows takes 8–13 s with the default SHUFFLE_V2 strategy (its
    map/reduce operators and partitions) and 0.3–0.5 s with the pull-based sort shuffle, which also scales to the
    sizes a build sorts by key. Set RAY_DATA_USE_DATASOURCE_V2 or RAY_DATA_DEFAULT_SHUFFLE_STRATEGY to override.
    """
    from ray.data.context import ShuffleStrategy

    if "RAY_DATA_USE_DATASOURCE_V2" not in os.environ:
        ctx.use_datasource_v2 = False
    if "RAY_DATA_DEFAULT_SHUFFLE_STRATEGY" not in os.environ:
        ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED


def quiet_ray_data() -> None:
    """Without -v, the terminal holds clipforge's own lines and Ray's warnings and errors: Ray Data's per-execution
    INFO lines stay in Ray's logs, and two hints about choices clipforge makes on purpose are marked as already
    shown (Ray's own `log_once` keys): "Progress bars disabled" (`-q` turns them off) and "Truncating long operator
    name" (a bar shows a fused chain of stages by its first and last names); and Ray Data's UserWarning that a
    stage's task cap exceeds its inputs (the cap is a ceiling clipforge sets so stages leave CPUs to each other,
    `stages.base.default_max_actors`; one download part or one block is a normal small build), and Ray Data's
    no-available-CPU hint (below)."""
    import warnings

    from ray.util.debug import log_once

    warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks for", category=UserWarning)

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    log_once("ray_data_progress_manager_disabled")
    log_once("ray_data_truncate_operator_name")
    # "The Ray cluster currently does not have any available CPUs. The Dataset job will hang…": checked once at the
    # start of an execution, it fires when a build starts one execution while the last one's tasks still hold their
    # CPUs (back-to-back barriers); the build's heartbeat shows a real stall.
    log_once("cpu_warning")


def show_progress_bars(quiet: bool) -> None:
    """Ray Data's progress bars (one per execution, and the parquet reader's "Parquet dataset sampling") on a
    terminal unless `-q`; never into a log or a pipe, where each redraw is one more line of noise (#18 item 9)."""
    import sys

    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = not quiet and sys.stderr.isatty()


def init_ray(verbose: bool = False, num_cpus: int | None = None, address: str | None = None) -> RayInfo:
    """Connect to or start Ray once per process and return what it is; calling again reuses the session.

    `address` (or the `RAY_ADDRESS` environment variable) joins an existing cluster; otherwise a local Ray is
    started with `num_cpus` (default: all cores) and an object store from `local_object_store_bytes`. A dashboard
    URL (http://HEAD:8265, what `clipforge submit` takes) there is a `ClipforgeError` before anything connects.
    """
    check_ray_address(address)  # before `import ray`: nothing has connected anywhere yet
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network here; never try to report usage
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset's albumentations phones home on import
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        if not verbose:  # a note, not a problem: token auth is Ray's default for the clusters it starts (-v shows it)
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        address = address or os.environ.get("RAY_ADDRESS") or None
        common = dict(
            logging_level=logging.INFO if verbose else logging.WARNING,
            log_to_driver=verbose,
            configure_logging=True,
        )
        if address:
            ray.init(address=address, **common)
        else:
            cpus = num_cpus or os.cpu_count() or 1
            ray.init(
                num_cpus=cpus,
                object_store_memory=local_object_store_bytes(),
                include_dashboard=False,
                # Keep as many idle workers as half-CPU stages run at once (Ray's default keeps one per CPU and
                # kills the rest after 1 s idle): a new worker costs ~2 s of imports on a 2-core box, and a build
                # runs ~20 short executions back to back (#19).
                _system_config={"num_workers_soft_limit": 2 * cpus},
                **common,
            )
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = verbose
        ctx.print_on_execution_start = verbose
        small_data_defaults(ctx)
        if not verbose:
            quiet_ray_data()
    resources = ray.cluster_resources()
    ctx_addr = ray.get_runtime_context().gcs_address
    return RayInfo(
        address=ctx_addr,
        local=not (address or os.environ.get("RAY_ADDRESS")),
        num_cpus=float(resources.get("CPU", 0.0)),
        object_store_bytes=int(resources.get("object_store_memory", 0)),
    )


def shutdown_ray() -> None:
    """Stop the Ray session this process started or joined (no-op if none)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
