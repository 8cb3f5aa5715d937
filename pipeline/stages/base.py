"""Stage plumbing: resource profiles, reject annotation, and the one function that calls `map_batches`.

Stages annotate, they never drop: a rejected row keeps flowing with `reject_stage`/`reject_reason`/
`reject_detail` set (the first rejection wins), so every input uid can be accounted for at the end. Stages
with equal resource profiles fuse into one Ray operator; fractional CPUs keep a 2-core machine from hanging.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REJECT_COLUMNS = ("reject_stage", "reject_reason", "reject_detail")


@dataclass(frozen=True)
class Resources:
    """What one task or actor of a stage asks Ray for."""

    num_cpus: float
    num_gpus: float = 0.0
    max_actors: int | None = None
    actors: bool = False
    """Always an actor pool, GPU or not (a model that should stay resident in its process, e.g. the embed stage)."""


IO_BOUND = Resources(0.25)  # network-bound work (downloads): many small slots per core
CPU_LIGHT = Resources(0.5)  # cheap per-row transforms
# Compute-bound actors (model inference, automata, image decode) still ask for half a logical CPU: pools reserve
# their first actor up front, and two 1-CPU pools on a 2-core machine leave no CPU for the read tasks (a hang).
CPU_HEAVY = Resources(0.5)


@dataclass(frozen=True)
class StageSpec:
    """A stage in a plan: a callable class (setup in __init__) or a plain function, plus its config."""

    stage: Any
    config: Any = None
    batch_size: int | None = 1024
    extra: dict = field(default_factory=dict)
    resources: Resources | None = None
    """Overrides the stage's class `resources` (decided at run time, e.g. GPUs only when the cluster has them)."""

    @property
    def name(self) -> str:
        return getattr(self.stage, "name", getattr(self.stage, "__name__", "stage"))


def with_reject_columns(batch: pa.Table) -> pa.Table:
    """Add the three reject columns (all null) when absent."""
    for col in REJECT_COLUMNS:
        if col not in batch.column_names:
            batch = batch.append_column(col, pa.nulls(batch.num_rows, pa.string()))
    return batch


def live_mask(batch: pa.Table) -> np.ndarray:
    """Bool mask of rows no stage has rejected yet."""
    if "reject_reason" not in batch.column_names:
        return np.ones(batch.num_rows, dtype=bool)
    return pc.is_null(batch["reject_reason"]).to_numpy(zero_copy_only=False)


def mark_rejected(
    batch: pa.Table, reasons: pa.Array | list, *, stage: str, details: pa.Array | list | None = None
) -> pa.Table:
    """Record `reasons` (null = pass) for rows not yet rejected; never removes a row. First rejection wins."""
    batch = with_reject_columns(batch)
    reasons = pa.array(reasons, pa.string()) if not isinstance(reasons, pa.Array) else reasons.cast(pa.string())
    newly = pc.and_(pc.is_valid(reasons), pc.is_null(batch["reject_reason"]))
    if details is None:
        details = pa.nulls(batch.num_rows, pa.string())
    elif not isinstance(details, pa.Array):
        details = pa.array(details, pa.string())
    updates = {
        "reject_reason": reasons,
        "reject_stage": pa.array([stage] * batch.num_rows, pa.string()),
        "reject_detail": details.cast(pa.string()),
    }
    for col, new in updates.items():
        i = batch.column_names.index(col)
        batch = batch.set_column(i, col, pc.if_else(newly, new, batch[col]))
    return batch


def default_max_actors(res: Resources) -> int:
    """Cap a stage's concurrent workers at a quarter of the cluster's CPUs: stages that together claim every CPU
    starve the other operators (reads, shuffles, the next stage) and the job hangs — seen on 2-core machines."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 2.0))
    return max(1, int(cpus * 0.25 / res.num_cpus)) if res.num_cpus else 4


# Class stages (setup in __init__: a fastText model, a matcher automaton, a counts file) run as Ray *tasks*, and
# each worker process keeps the instances it built for the current setup scope. Ray reuses its worker processes
# across executions, so a model loads once per worker per build, not once per actor pool per phase; an actor pool
# costs ~2 s of process start-up per execution on a 2-core box, a task ~0.3 s (benchmarks/RESULTS.md, #19). Ray
# Data actors live only as long as one execution, which is why they cannot carry a model across a build's phases.
# GPU stages keep actors (a GPU is claimed by a process, and its model should stay resident there);
# CLIPFORGE_STAGE_COMPUTE=actors gives every class stage an actor pool again (the reference execution that
# tests/e2e/test_build_identity.py compares against: same rows out either way).
_scope = threading.local()
_instances: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_instances_scope: list[str] = [""]
MAX_INSTANCES = 4
"""Stage instances one worker keeps (least recently used dropped first): a build fuses at most two class stages
into one task (text → match), so four never rebuild within an execution, and a worker that ran the matcher
(~0.35 GiB at 500k entries, docs/scaling.md) lets it go once it has run four other class stages."""


@contextmanager
def setup_scope():
    """Within this block every class stage built from the same class and config is built once per worker process
    (`build.execute` opens one per build: inputs a stage reads at setup never change within a build). Outside
    one, each `apply_stage` call is its own scope, so nothing built for one dataset is reused by another."""
    previous = getattr(_scope, "token", None)
    _scope.token = uuid.uuid4().hex
    try:
        yield _scope.token
    finally:
        _scope.token = previous


def _stage_key(spec: StageSpec) -> tuple[str, str, str]:
    token = getattr(_scope, "token", None) or uuid.uuid4().hex
    stage = f"{spec.stage.__module__}.{spec.stage.__qualname__}"
    return token, stage, hashlib.sha256(pickle.dumps(spec.config)).hexdigest()


def stage_instance(stage: type, config: Any, key: tuple[str, str, str]) -> Any:
    """The instance of `stage` built from `config` in this worker process for `key` (scope, class, config hash);
    a new scope drops every instance of the previous one, and at most `MAX_INSTANCES` are kept."""
    if key[0] != _instances_scope[0]:
        _instances.clear()
        _instances_scope[0] = key[0]
    instance = _instances.get(key)
    if instance is None:
        instance = _instances[key] = stage(config)
        while len(_instances) > MAX_INSTANCES:
            _instances.popitem(last=False)
    else:
        _instances.move_to_end(key)
    return instance


def _as_task(spec: StageSpec):
    """A plain function that runs class stage `spec` on a batch (or group) through `stage_instance`; named after
    the stage so Ray Data's operator names and stats read as before."""
    stage, config, key = spec.stage, spec.config, _stage_key(spec)

    def run(batch: pa.Table) -> pa.Table:
        return stage_instance(stage, config, key)(batch)

    run.__name__ = run.__qualname__ = stage.__name__
    return run


def _map_kwargs(spec: StageSpec, **kw: Any) -> tuple[Any, dict[str, Any]]:
    """(callable, map_batches keyword arguments) for `spec`: tasks for functions and CPU class stages, an actor
    pool for GPU class stages."""
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    res: Resources = spec.resources or getattr(spec.stage, "resources", CPU_LIGHT)
    kw.update(batch_format="pyarrow", num_cpus=res.num_cpus)
    if res.num_gpus:
        kw["num_gpus"] = res.num_gpus
    if not isinstance(spec.stage, type):
        return spec.stage, {**kw, "fn_kwargs": {"config": spec.config}}
    size = res.max_actors or default_max_actors(res)
    if res.num_gpus or res.actors or os.environ.get("CLIPFORGE_STAGE_COMPUTE") == "actors":
        pool = ActorPoolStrategy(min_size=1, max_size=size)
        return spec.stage, {**kw, "compute": pool, "fn_constructor_kwargs": {"config": spec.config}}
    return _as_task(spec), {**kw, "compute": TaskPoolStrategy(size=size)}


def apply_stage(ds, spec: StageSpec):
    """The one place clipforge calls `map_batches`: tasks (actors for GPU stages), Arrow batches."""
    fn, kw = _map_kwargs(spec, batch_size=spec.batch_size)
    kw.update(spec.extra)
    return ds.map_batches(fn, **kw)


def run_stages(ds, specs: list[StageSpec]):
    """Apply each stage in order (lazily; Ray Data fuses neighbours with equal resources)."""
    for spec in specs:
        ds = apply_stage(ds, spec)
    return ds


def apply_group_stage(ds, key: str, spec: StageSpec, num_partitions: int | None = None):
    """`map_groups` counterpart of `apply_stage`: group `ds` on `key` and call the stage once per whole group,
    Arrow in and out. For stages whose unit of work is a group that must be committed as one file (download parts,
    shards)."""
    fn, kw = _map_kwargs(spec)
    return ds.groupby(key, num_partitions=num_partitions).map_groups(fn, **kw)


class StageChain:
    """Several stages in one actor, applied in order: one actor pool instead of one per stage. A 2-core machine
    runs out of CPUs with three half-CPU pools plus read and write tasks (seen: the dedup → eval_dedup → balance
    chain hung). Each part keeps its own name in the reject columns; only class stages with equal resources."""

    name = "chain"
    resources: Resources = CPU_LIGHT

    def __init__(self, config: list[StageSpec]) -> None:
        self.parts = [spec.stage(spec.config) if isinstance(spec.stage, type) else spec for spec in config]

    def __call__(self, batch: pa.Table) -> pa.Table:
        for part in self.parts:
            batch = part.stage(batch, config=part.config) if isinstance(part, StageSpec) else part(batch)
        return batch


def chained(specs: list[StageSpec]) -> list[StageSpec]:
    """`specs` (light stages) as one `StageChain` stage; an empty or one-stage list as it is."""
    return list(specs) if len(specs) <= 1 else [StageSpec(StageChain, list(specs), batch_size=specs[0].batch_size)]
