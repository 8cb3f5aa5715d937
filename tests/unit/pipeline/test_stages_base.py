"""Reject annotation (stages mark, never drop; the first rejection wins) and how class stages run: tasks that keep
their setup for a build's setup scope, actors for GPU stages."""

import pyarrow as pa

from pipeline.stages.base import StageSpec, live_mask, mark_rejected, with_reject_columns


def table(n=4):
    return pa.table({"uid": [f"u{i}" for i in range(n)]})


def test_with_reject_columns_adds_null_strings_once():
    t = with_reject_columns(with_reject_columns(table()))
    assert t.column_names == ["uid", "reject_stage", "reject_reason", "reject_detail"]
    assert t["reject_reason"].null_count == 4 and t["reject_reason"].type == pa.string()


def test_first_rejection_wins_and_rows_are_kept():
    t = mark_rejected(table(), [None, "too_short", None, "empty"], stage="text", details=[None, "2 words", None, None])
    t = mark_rejected(t, ["lang", "lang", None, None], stage="langid")
    assert t.num_rows == 4
    assert t["reject_stage"].to_pylist() == ["langid", "text", None, "text"]
    assert t["reject_reason"].to_pylist() == ["lang", "too_short", None, "empty"]
    assert t["reject_detail"].to_pylist() == [None, "2 words", None, None]
    assert live_mask(t).tolist() == [False, False, True, False]


def test_live_mask_without_columns_is_all_true():
    assert live_mask(table(3)).tolist() == [True, True, True]


def test_chunked_input():
    t = pa.concat_tables([table(2), table(2)])
    t = mark_rejected(t, pa.array([None, "x", "y", None]), stage="s")
    assert t["reject_reason"].to_pylist() == [None, "x", "y", None]


class Counted:
    """A class stage that counts how often it is built."""

    built: list = []

    def __init__(self, config):
        self.config = config
        Counted.built.append(config)

    def __call__(self, batch):
        return batch


def test_a_class_stage_is_built_once_per_setup_scope_and_config():
    from pipeline.stages import base

    Counted.built.clear()
    with base.setup_scope():
        a, b = base._stage_key(StageSpec(Counted, {"t": 1})), base._stage_key(StageSpec(Counted, {"t": 1}))
        other = base._stage_key(StageSpec(Counted, {"t": 2}))
        assert a == b and a != other
        first = base.stage_instance(Counted, {"t": 1}, a)
        assert base.stage_instance(Counted, {"t": 1}, b) is first
        assert base.stage_instance(Counted, {"t": 2}, other) is not first
    assert Counted.built == [{"t": 1}, {"t": 2}]
    with base.setup_scope():  # the next build: everything is built again, the previous build's instances dropped
        again = base._stage_key(StageSpec(Counted, {"t": 1}))
        assert again != a and base.stage_instance(Counted, {"t": 1}, again) is not first
    assert len(Counted.built) == 3 and a not in base._instances


def test_outside_a_setup_scope_each_application_builds_its_own_instance():
    from pipeline.stages import base

    a, b = base._stage_key(StageSpec(Counted, {"t": 1})), base._stage_key(StageSpec(Counted, {"t": 1}))
    assert a != b, "two datasets built outside a build must not share an instance (its inputs may have changed)"


def test_class_stages_run_as_named_tasks_and_gpu_stages_as_actors(monkeypatch):
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    from pipeline.stages import base

    monkeypatch.setattr(base, "default_max_actors", lambda res: 3)
    monkeypatch.delenv("CLIPFORGE_STAGE_COMPUTE", raising=False)
    fn, kw = base._map_kwargs(StageSpec(Counted, {"t": 1}))
    assert fn.__name__ == "Counted" and isinstance(kw["compute"], TaskPoolStrategy) and kw["compute"].size == 3
    assert "fn_constructor_kwargs" not in kw and fn(table(2)).num_rows == 2

    class OnGpu(Counted):
        resources = base.Resources(num_cpus=1, num_gpus=1)

    fn, kw = base._map_kwargs(StageSpec(OnGpu, {"t": 1}))
    assert fn is OnGpu and isinstance(kw["compute"], ActorPoolStrategy) and kw["num_gpus"] == 1
    monkeypatch.setenv("CLIPFORGE_STAGE_COMPUTE", "actors")
    fn, kw = base._map_kwargs(StageSpec(Counted, {"t": 1}))
    assert fn is Counted and isinstance(kw["compute"], ActorPoolStrategy)


def test_a_worker_keeps_at_most_max_instances_least_recently_used_first():
    from pipeline.stages import base

    with base.setup_scope():
        keys = [base._stage_key(StageSpec(Counted, {"t": i})) for i in range(base.MAX_INSTANCES + 1)]
        first = base.stage_instance(Counted, {"t": 0}, keys[0])
        for i, key in enumerate(keys[1:-1], start=1):
            base.stage_instance(Counted, {"t": i}, key)
        assert base.stage_instance(Counted, {"t": 0}, keys[0]) is first  # used again: now the most recent
        base.stage_instance(Counted, {"t": base.MAX_INSTANCES}, keys[-1])
        assert len(base._instances) == base.MAX_INSTANCES
        assert keys[0] in base._instances and keys[1] not in base._instances
