"""The shard writer's bytes are a pure function of the rows: pinned digests catch any change to the tar layout."""

import hashlib
import json

import pyarrow as pa

from pipeline.core.tar import iter_samples
from pipeline.shards import ShardWriteConfig, write_shard

# sha256 of the shard tar written from ROWS below, pinned before the tar writer moved to pipeline.core.tar.
PINNED_TAR_SHA256 = "3fc11cf6d82a9705859a8a9aa2eaafcab3be9309567cd054a16018245501f900"


def rows() -> pa.Table:
    return pa.table(
        {
            "uid": pa.array(["u2" * 12, "u1" * 12, "u3" * 12]),
            "url": pa.array(["http://a.invalid/2.jpg", "http://a.invalid/1.jpg", "http://a.invalid/3.jpg"]),
            "caption": pa.array(["a red circle", "ünïcode caption", None]),
            "lang": pa.array(["en", "de", None]),
            "entry_ids": pa.array([[0, 5], [1], []], pa.list_(pa.int32())),
            "keep_prob": pa.array([0.5, 1.0, 0.25]),
            "width": pa.array([4, 2, 3], pa.int32()),
            "height": pa.array([4, 2, 1], pa.int32()),
            "sha256": pa.array(["ab" * 32, "cd" * 32, "ef" * 32]),
            "phash": pa.array([0x0123456789ABCDEF, None, 7], pa.uint64()),
            "image": pa.array([b"\xff\xd8jpeg-2", b"\xff\xd8jpeg-1", b"x" * 700], pa.binary()),
            "shard": pa.array([3, 3, 3], pa.int64()),
        }
    )


def test_shard_tar_bytes_are_pinned(tmp_path):
    entry = write_shard(rows(), ShardWriteConfig(run=str(tmp_path))).to_pylist()[0]
    data = (tmp_path / "shards" / "shard-000003.tar").read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() == PINNED_TAR_SHA256
    assert entry["n"] == 3 and entry["bytes"] == len(data)


def test_shard_tar_reads_back_as_samples_in_uid_order(tmp_path):
    write_shard(rows(), ShardWriteConfig(run=str(tmp_path)))
    with (tmp_path / "shards" / "shard-000003.tar").open("rb") as f:
        samples = list(iter_samples(f))
    assert [s["__key__"] for s in samples] == ["000003000000", "000003000001", "000003000002"]
    assert [sorted(s) for s in samples] == [["__key__", "jpg", "json", "txt"]] * 3
    assert [json.loads(s["json"])["uid"] for s in samples] == ["u1" * 12, "u2" * 12, "u3" * 12]
    assert samples[0]["txt"] == "ünïcode caption".encode() and samples[2]["txt"] == b""
    assert json.loads(samples[1]["json"])["phash"] == "0123456789abcdef" and samples[2]["jpg"] == b"x" * 700
