"""Ray bootstrap: a local Ray sized for the machine, reused on a second call, usable by Ray Data."""

import ray

from pipeline.core.ray_setup import GiB, init_ray, local_object_store_bytes


def test_object_store_sizing_is_clamped():
    assert local_object_store_bytes(2 * GiB) == 1 * GiB
    assert local_object_store_bytes(24 * GiB) == int(0.2 * 24 * GiB)
    assert local_object_store_bytes(512 * GiB) == 8 * GiB


def test_local_ray_is_sized_and_reused(ray_local):
    assert ray_local.local and ray_local.num_cpus == 2.0
    assert 0 < ray_local.object_store_bytes <= 8 * GiB
    again = init_ray()
    assert again.address == ray_local.address


def test_ray_data_runs_on_it(ray_local):
    ds = ray.data.range(1000, override_num_blocks=8).map_batches(lambda b: {"x": b["id"] * 2}, num_cpus=0.25)
    assert sum(r["x"] for r in ds.take_all()) == 2 * sum(range(1000))
