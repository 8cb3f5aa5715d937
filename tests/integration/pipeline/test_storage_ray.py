"""Ray workers (separate processes) read and write the session's local S3 through `filesystem()`: the
"usable from other processes" claim, on the path the build and training take."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from pipeline.core.storage import filesystem, list_uris, ray_train_storage


def test_ray_data_reads_and_writes_parquet_on_local_s3(ray_local, local_s3, s3_bucket):
    opts = local_s3.options()
    fs, path = filesystem(f"{s3_bucket}/in/part-0.parquet", opts)
    pq.write_table(pa.table({"uid": [f"u{i}" for i in range(100)], "n": list(range(100))}), path, filesystem=fs)

    in_fs, in_path = filesystem(f"{s3_bucket}/in", opts)
    out_fs, out_path = filesystem(f"{s3_bucket}/out", opts)
    # one execution (read -> write, both in worker processes) keeps this at a few seconds on 2 cores
    ray.data.read_parquet(in_path, filesystem=in_fs).write_parquet(out_path, filesystem=out_fs)

    written = list_uris(f"{s3_bucket}/out", opts)
    assert written and all(u.name.endswith(".parquet") for u in written)
    back = pq.read_table(out_path, filesystem=out_fs).sort_by("n")
    assert back["n"].to_pylist() == list(range(100))
    assert back["uid"].to_pylist()[:2] == ["u0", "u1"]


def test_ray_train_storage_points_at_the_bucket(local_s3, s3_bucket):
    kwargs = ray_train_storage(f"{s3_bucket}/ckpt", local_s3.options())
    assert kwargs["storage_path"] == f"{s3_bucket.removeprefix('s3://')}/ckpt"
    fs = kwargs["storage_filesystem"]
    fs.create_dir(f"{kwargs['storage_path']}/run-1")
    with fs.open_output_stream(f"{kwargs['storage_path']}/run-1/checkpoint.txt") as f:
        f.write(b"step=1")
    assert [u.name for u in list_uris(f"{s3_bucket}/ckpt", local_s3.options())] == ["checkpoint.txt"]
