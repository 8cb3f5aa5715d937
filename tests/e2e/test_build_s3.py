"""The same build with its run directory on the local S3 server (moto on loopback): shards, sidecars, rejects, stats
and manifest land as objects, the trainer's reader and `webdataset` read them back, accounting holds."""

import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.build import build
from pipeline.build_config import BuildConfig
from pipeline.config import validate_config
from pipeline.storage import S3Options, filesystem, list_uris, read_bytes

N = 800


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=12, n_candidates=N, slow_seconds=4.0, eval_per_concept=2), out)
    return out


def test_build_to_s3(ray_local, local_s3, s3_bucket, web, tmp_path):
    from infra.localweb.concepts import COLOURS, DIGIT_WORDS, SHAPES

    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(["0", "1", "7", "a", "digit", *COLOURS, *SHAPES, *DIGIT_WORDS]))
    s3 = S3Options(endpoint_url=local_s3.endpoint_url)
    run = f"{s3_bucket}/runs/one"
    data = {
        "input": {"path": str(web / "candidates.parquet"), "rows_per_block": 200},
        "output": run,
        "match": {"metadata": str(meta)},
        "download": {
            "fetch": {"allow_cidrs": ["127.0.0.0/8"], "deadline_s": 2.0, "backoff_base_s": 0.1},
            "threads": 32,
            "rows_per_part": 200,
        },
        "image": {"image_size": 32, "min_image_size": 16, "max_aspect_ratio": 4.5},
        "dedup": {"eval_sets": [{"name": "synthetic", "path": str(web / "eval" / "synthetic.parquet")}]},
        "shards": {"samples_per_shard": 150},
        "s3": s3.model_dump(),
    }
    with serve_in_thread(web, prewarm=N):
        manifest = build(validate_config(BuildConfig, data, "test"), say=lambda m: None)
    assert manifest["status"] == "complete" and manifest["counts"]["input_rows"] == N
    keys = {u.path.split("runs/one/", 1)[1] for u in list_uris(run, s3)}
    expected = {s[k] for s in manifest["shards"] for k in ("path", "sidecar")}
    assert {k for k in keys if k.startswith("shards/")} == expected
    assert {"manifest.json", "config.yaml", "stats/funnel.json", "stats/entry_counts_post.npy"} <= keys
    assert not any(k.startswith("work/") for k in keys)
    on_s3 = json.loads(read_bytes(f"{run}/manifest.json", s3))
    assert on_s3["shards"] == manifest["shards"]

    total, uids = 0, []
    for s in manifest["shards"]:
        data_ = read_bytes(f"{run}/{s['path']}", s3)
        with tarfile.open(fileobj=io.BytesIO(data_)) as tar:
            names = tar.getnames()
        side = pq.read_table(io.BytesIO(read_bytes(f"{run}/{s['sidecar']}", s3)))
        assert [n.split(".")[0] for n in names[::3]] == side["key"].to_pylist() and side.num_rows == s["n"]
        total += s["n"]
        uids += side["uid"].to_pylist()
    assert total == manifest["counts"]["kept"] > 50 and len(set(uids)) == total
    rejects = pa.concat_tables([pq.read_table(io.BytesIO(read_bytes(u, s3))) for u in list_uris(f"{run}/rejects", s3)])
    assert rejects.num_rows + total == N

    from training.data import read_manifest, shard_rows

    fs, path = filesystem(run, s3)
    refs = read_manifest(fs, path)
    rows = shard_rows(fs, {"tar": refs[0].tar, "sidecar": refs[0].sidecar})
    assert len(rows["uid"]) == refs[0].n
