"""clipforge's Ray bootstrap (`pipeline.core.ray_setup`): a local Ray sized for the machine, quiet by default,
reused (settings and all) on a second call."""

import logging

from ray.data import DataContext

from pipeline.core.ray_setup import GiB, init_ray, local_object_store_bytes


def test_object_store_sizing_is_clamped():
    assert local_object_store_bytes(2 * GiB) == 1 * GiB  # a fifth would be 0.4 GiB: the 1 GiB floor
    assert local_object_store_bytes(5 * GiB) == 1 * GiB
    assert local_object_store_bytes(24 * GiB) == int(0.2 * 24 * GiB)
    assert local_object_store_bytes(40 * GiB) == 8 * GiB
    assert local_object_store_bytes(512 * GiB) == 8 * GiB  # the 8 GiB ceiling


def test_local_ray_has_the_requested_cpus_and_the_computed_object_store(ray_local):
    assert ray_local.local and ray_local.num_cpus == 2.0
    assert ray_local.object_store_bytes == local_object_store_bytes()  # not Ray's 30 % default


def test_local_ray_is_quiet_by_default(ray_local):
    # Only the logger: DataContext flags are process state that in-process CLI tests set (`build -q` or not).
    assert logging.getLogger("ray.data").getEffectiveLevel() == logging.WARNING


def test_a_second_call_reuses_the_session_and_its_settings(ray_local):
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = ctx.print_on_execution_start = False  # whatever earlier tests in this process set
    again = init_ray(verbose=True, num_cpus=1)
    assert again == ray_local  # same address, CPUs and store: nothing restarted or resized
    assert not ctx.enable_progress_bars and not ctx.print_on_execution_start  # verbose applies only at start
