"""Storage against a real S3 endpoint: the session's moto server on loopback, reached over HTTP (never in-process
mocks), including from other processes and through pyarrow."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.core.storage import (
    MULTIPART_THRESHOLD,
    StorageError,
    Uri,
    create_if_absent,
    delete,
    exists,
    filesystem,
    list_uris,
    open_write,
    pyarrow_uri,
    read_bytes,
    write_bytes,
    write_fileobj,
)

BIG = MULTIPART_THRESHOLD + 1  # two parts: 8 MiB + 1 byte


@pytest.fixture
def opts(local_s3):
    return local_s3.options()


def _keys(local_s3, bucket_uri: str) -> list[str]:
    listing = local_s3.client().list_objects_v2(Bucket=Uri.parse(bucket_uri).bucket)
    return [o["Key"] for o in listing.get("Contents", [])]


def _uploads(local_s3, bucket_uri: str) -> list[dict]:
    return local_s3.client().list_multipart_uploads(Bucket=Uri.parse(bucket_uri).bucket).get("Uploads", [])


def _etag(local_s3, uri: str) -> str:
    u = Uri.parse(uri)
    return local_s3.client().head_object(Bucket=u.bucket, Key=u.path)["ETag"]


def test_round_trip_small_and_multipart(local_s3, s3_bucket, opts):
    small, big = f"{s3_bucket}/run/small.bin", f"{s3_bucket}/run/big.bin"
    payload = os.urandom(BIG)
    write_bytes(small, b"hello", opts)
    write_bytes(big, payload, opts)
    assert read_bytes(small, opts) == b"hello"
    assert read_bytes(big, opts) == payload
    assert not _etag(local_s3, small).endswith('-1"')
    assert _etag(local_s3, big).endswith('-2"')  # a multipart upload of 2 parts, completed
    write_bytes(small, b"replaced", opts)
    assert read_bytes(small, opts) == b"replaced"


def test_list_exists_delete(s3_bucket, opts):
    for key in ("run/b/2", "run/a", "run/b/1", "run2/x"):
        write_bytes(f"{s3_bucket}/{key}", key.encode(), opts)
    assert [str(u) for u in list_uris(f"{s3_bucket}/run", opts)] == [
        f"{s3_bucket}/run/a",
        f"{s3_bucket}/run/b/1",
        f"{s3_bucket}/run/b/2",
    ]
    assert len(list_uris(s3_bucket, opts)) == 4
    assert list_uris(f"{s3_bucket}/nothing", opts) == []
    assert exists(f"{s3_bucket}/run/a", opts) and exists(f"{s3_bucket}/run/b", opts) and exists(s3_bucket, opts)
    assert not exists(f"{s3_bucket}/run/c", opts) and not exists("s3://no-such-bucket-42", opts)
    delete(f"{s3_bucket}/run/a", opts)
    delete(f"{s3_bucket}/run/a", opts)  # missing is fine
    assert not exists(f"{s3_bucket}/run/a", opts)
    with pytest.raises(FileNotFoundError, match="run/a"):
        read_bytes(f"{s3_bucket}/run/a", opts)
    delete(f"{s3_bucket}/run", opts, recursive=True)
    assert [str(u) for u in list_uris(s3_bucket, opts)] == [f"{s3_bucket}/run2/x"]


def test_create_if_absent_first_writer_wins(s3_bucket, opts):
    marker = f"{s3_bucket}/run/_SUCCESS"
    assert create_if_absent(marker, b"first", opts) is True
    assert create_if_absent(marker, b"second", opts) is False
    assert read_bytes(marker, opts) == b"first"


def test_conditional_put_is_what_refuses_the_second_writer(local_s3, s3_bucket):
    # create_if_absent's HEAD pre-check aside, the server itself must refuse an overwrite with If-None-Match: *
    from botocore.exceptions import ClientError

    client, bucket = local_s3.client(), Uri.parse(s3_bucket).bucket
    client.put_object(Bucket=bucket, Key="m", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket=bucket, Key="m", Body=b"second", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_missing_bucket_is_a_storage_error_naming_it(opts):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-42' does not exist"):
        write_bytes("s3://no-such-bucket-42/x", b"x", opts)
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-42' does not exist"):
        create_if_absent("s3://no-such-bucket-42/x", b"x", opts)
    with pytest.raises(StorageError, match="names a bucket or prefix, not an object"):
        read_bytes("s3://no-such-bucket-42", opts)


def test_parquet_through_the_pyarrow_filesystem(local_s3, s3_bucket, opts):
    table = pa.table({"uid": ["a", "b", "c"], "n": [1, 2, 3]})
    fs, path = filesystem(f"{s3_bucket}/run/part-0.parquet", opts)
    pq.write_table(table, path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).equals(table)
    assert _keys(local_s3, s3_bucket) == ["run/part-0.parquet"]  # a real object on the server
    from_uri_fs, from_uri_path = pafs.FileSystem.from_uri(pyarrow_uri(f"{s3_bucket}/run", opts))
    assert pq.read_table(f"{from_uri_path}/part-0.parquet", filesystem=from_uri_fs).equals(table)


def test_open_write_publishes_on_clean_exit_only(local_s3, s3_bucket, opts):
    table = pa.table({"x": list(range(10))})
    with open_write(f"{s3_bucket}/run/ok.parquet", opts) as f:
        pq.write_table(table, f)
        assert _keys(local_s3, s3_bucket) == []  # nothing visible before the block ends
    assert pq.read_table(io.BytesIO(read_bytes(f"{s3_bucket}/run/ok.parquet", opts))).equals(table)
    with pytest.raises(RuntimeError, match="boom"), open_write(f"{s3_bucket}/run/bad.bin", opts) as f:
        f.write(os.urandom(BIG))  # spilled to disk, multipart-sized: still nothing may appear
        raise RuntimeError("boom")
    assert _keys(local_s3, s3_bucket) == ["run/ok.parquet"]
    assert _uploads(local_s3, s3_bucket) == []
    with open_write(f"{s3_bucket}/run/big.bin", opts) as f:
        f.write(b"y" * BIG)
    assert _etag(local_s3, f"{s3_bucket}/run/big.bin").endswith('-2"')


class _FailingReader(io.RawIOBase):
    """Yields `ok` bytes, then raises: a source that dies mid-upload."""

    def __init__(self, ok: int):
        self.left = ok

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.left <= 0:
            raise OSError("source died")
        n = min(len(buf), self.left)
        buf[:n] = b"z" * n
        self.left -= n
        return n


def test_failed_multipart_upload_is_aborted_and_leaves_nothing(local_s3, s3_bucket, opts):
    with pytest.raises(OSError, match="source died"):
        write_fileobj(f"{s3_bucket}/run/dead.bin", _FailingReader(MULTIPART_THRESHOLD + 1000), opts)
    assert _keys(local_s3, s3_bucket) == []
    assert _uploads(local_s3, s3_bucket) == []  # aborted, not left to accumulate storage


KILLED_S3_WRITER = """
import io, pathlib, sys, time
from pipeline.core.storage import MULTIPART_THRESHOLD, S3Options, write_fileobj

class Stalls(io.RawIOBase):
    # serves one full part of bytes, then says so and blocks forever: the writer is mid-upload when killed
    def __init__(self):
        self.left = MULTIPART_THRESHOLD
    def readable(self):
        return True
    def readinto(self, buf):
        if self.left == 0:
            pathlib.Path(sys.argv[3]).write_text("first part read")
            time.sleep(600)
        n = min(len(buf), self.left)
        buf[:n] = b"k" * n
        self.left -= n
        return n

write_fileobj(sys.argv[2], Stalls(), S3Options(endpoint_url=sys.argv[1]))
"""


def test_killed_writer_leaves_no_partial_object(local_s3, s3_bucket, tmp_path):
    target, ready = f"{s3_bucket}/run/shard-000000.tar", tmp_path / "ready"
    cmd = [sys.executable, "-c", KILLED_S3_WRITER, local_s3.endpoint_url, target, str(ready)]
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 30
        while not (ready.exists() and _uploads(local_s3, s3_bucket)):
            assert proc.poll() is None and time.monotonic() < deadline, "writer never started its upload"
            time.sleep(0.05)
        (upload,) = _uploads(local_s3, s3_bucket)
        client, bucket = local_s3.client(), Uri.parse(s3_bucket).bucket
        while not client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts"):
            assert time.monotonic() < deadline, "first part never arrived"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert upload["Key"] == "run/shard-000000.tar"  # it really was killed mid-multipart ...
    assert _keys(local_s3, s3_bucket) == []  # ... and the final key does not exist
    assert not exists(target, local_s3.options())


CROSS_PROCESS_READER = """
import hashlib, json, sys
import boto3
from pipeline.core.storage import read_bytes, write_bytes

data = read_bytes(sys.argv[1])  # endpoint from AWS_ENDPOINT_URL*, as a Ray worker would get it
plain = boto3.client("s3").get_object(Bucket=sys.argv[2], Key="shared/in.bin")["Body"].read()
write_bytes(sys.argv[1] + ".echo", data[::-1])
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "same": plain == data}))
"""


def test_another_process_uses_the_server_through_the_endpoint(local_s3, s3_bucket, opts):
    uri, payload = f"{s3_bucket}/shared/in.bin", os.urandom(4096)
    write_bytes(uri, payload, opts)
    env = {**os.environ, **local_s3.env()}
    env.pop("AWS_PROFILE", None)
    out = subprocess.run(
        [sys.executable, "-c", CROSS_PROCESS_READER, uri, Uri.parse(s3_bucket).bucket],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == {"sha256": hashlib.sha256(payload).hexdigest(), "same": True}
    assert read_bytes(uri + ".echo", opts) == payload[::-1]
