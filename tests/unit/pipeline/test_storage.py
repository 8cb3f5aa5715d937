"""Storage, locally: URI parsing and joining, S3 option resolution, and atomic local writes (no server needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pyarrow.fs as pafs
import pytest
from pydantic import ValidationError

from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import (
    S3Options,
    StorageError,
    Uri,
    create_if_absent,
    delete,
    exists,
    filesystem,
    list_uris,
    local_path_or_none,
    open_write,
    pyarrow_uri,
    ray_train_storage,
    read_bytes,
    s3_client,
    write_bytes,
)

# --- parsing -----------------------------------------------------------------------------------------------------


def test_parse_local_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Uri.parse("data/x.parquet") == Uri("file", f"{tmp_path}/data/x.parquet")


def test_parse_file_uris():
    assert Uri.parse("file:///tmp/a%20b/c") == Uri("file", "/tmp/a b/c")
    assert Uri.parse("file://localhost/tmp/x") == Uri("file", "/tmp/x")
    assert str(Uri.parse("file:///tmp/x/")) == "/tmp/x"


def test_parse_s3_uris():
    assert Uri.parse("s3://my-bucket/run/shards/a.tar") == Uri("s3", "run/shards/a.tar", "my-bucket")
    assert Uri.parse("s3://my-bucket") == Uri("s3", "", "my-bucket")
    assert Uri.parse("s3://my-bucket/") == Uri("s3", "", "my-bucket")
    assert str(Uri.parse("s3://my-bucket")) == "s3://my-bucket"
    assert str(Uri.parse("s3://my-bucket/run/a.tar")) == "s3://my-bucket/run/a.tar"
    assert Uri.parse("S3://my-bucket/k").is_s3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gs://x/y", "unsupported storage URI 'gs://x/y' (scheme 'gs')"),
        ("s3://", "S3 URI 's3://' has no bucket"),
        ("s3:///key", "S3 URI 's3:///key' has no bucket"),
        ("s3://Bad_Bucket/k", "'Bad_Bucket' is not a valid bucket name"),
        ("file://otherhost/x", "file URI 'file://otherhost/x' must name an absolute local path"),
        ("", "empty or non-text storage location ''"),
    ],
)
def test_parse_errors_name_the_value(value, message):
    with pytest.raises(StorageError) as info:
        Uri.parse(value)
    assert message in str(info.value)
    assert isinstance(info.value, ClipforgeError)  # the CLI prints it and exits 2


def test_join_and_name():
    run = Uri.parse("s3://b12/run")
    assert str(run.join("shards", "shard-000000.tar")) == "s3://b12/run/shards/shard-000000.tar"
    assert str(run.join("shards/", "/x.json")) == "s3://b12/run/shards/x.json"
    assert str(Uri.parse("s3://b12").join("x")) == "s3://b12/x"
    assert str(Uri.parse("s3://b12/run/").join("a")) == "s3://b12/run/a"
    assert str(Uri.parse("/data/run").join("./a", "b")) == "/data/run/a/b"
    assert run.join() is run
    assert run.join("shards", "a.tar").name == "a.tar"
    assert Uri.parse("s3://b12").name == ""
    with pytest.raises(StorageError, match=r"refusing to join '\.\./x' to s3://b12/run"):
        run.join("../x")


# --- S3 options (no network: clients and filesystems are only constructed) -----------------------------------------


def test_s3_options_reject_a_bad_endpoint():
    with pytest.raises(ValidationError, match="'localhost:9000' must look like http://host:port"):
        S3Options(endpoint_url="localhost:9000")
    with pytest.raises(ValidationError, match="extra"):
        S3Options(endpoint="http://x")


def test_s3_client_relaxes_checksums_and_uses_path_style_only_with_an_endpoint(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REQUEST_CHECKSUM_CALCULATION"):
        monkeypatch.delenv(var, raising=False)  # the session's local_s3 may have exported them
    local = s3_client(S3Options(endpoint_url="http://127.0.0.1:9", region="eu-west-1"))
    assert local.meta.endpoint_url == "http://127.0.0.1:9"
    assert local.meta.region_name == "eu-west-1"
    assert local.meta.config.request_checksum_calculation == "when_required"
    assert local.meta.config.response_checksum_validation == "when_required"
    assert local.meta.config.s3["addressing_style"] == "path"
    assert s3_client(S3Options(endpoint_url="http://127.0.0.1:9/", region="eu-west-1")) is local  # cached
    aws = s3_client(S3Options(region="eu-west-1"))
    assert aws.meta.config.request_checksum_calculation == "when_supported"
    assert aws.meta.config.s3["addressing_style"] == "auto"


def test_endpoint_and_region_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert s3_client().meta.endpoint_url == "http://127.0.0.1:8"
    assert s3_client().meta.region_name == "ap-south-1"
    assert s3_client(S3Options(endpoint_url="http://127.0.0.1:9")).meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "127.0.0.1:8")
    with pytest.raises(StorageError, match="AWS_ENDPOINT_URL_S3='127.0.0.1:8' must look like"):
        s3_client()


def test_pyarrow_filesystem_gets_the_endpoint_explicitly(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    opts = S3Options(endpoint_url="http://127.0.0.1:9", region="us-east-1")
    fs, path = filesystem("s3://b12/run/x.parquet", opts)
    assert path == "b12/run/x.parquet"
    assert fs.type_name == "s3"
    saved = fs.__reduce__()[1][0]  # what a Ray worker receives: endpoint, no credentials
    assert (saved["endpoint_override"], saved["scheme"], saved["region"]) == ("127.0.0.1:9", "http", "us-east-1")
    assert saved["access_key"] is None and saved["secret_key"] is None
    assert filesystem("s3://b12", opts)[1] == "b12"
    local_fs, local = filesystem(tmp_path / "x")
    assert (local_fs.type_name, local) == ("local", f"{tmp_path}/x")
    uri = "s3://b12/run?region=us-east-1&endpoint_override=127.0.0.1:9&scheme=http"
    assert pyarrow_uri("s3://b12/run", opts) == uri
    assert pyarrow_uri("s3://b12/a b", opts).startswith("s3://b12/a%20b?region=us-east-1&")
    assert pafs.FileSystem.from_uri(pyarrow_uri("s3://b12/a b", opts))[1] == "b12/a b"
    assert ray_train_storage("s3://b12/ckpt", opts)["storage_path"] == "b12/ckpt"
    assert ray_train_storage(tmp_path) == {"storage_path": str(tmp_path), "storage_filesystem": None}


# --- local atomic writes -----------------------------------------------------------------------------------------


def test_write_and_read_bytes_leave_no_temp_litter(tmp_path):
    target = tmp_path / "sub" / "x.bin"
    write_bytes(target, b"first")
    write_bytes(f"file://{target}", b"second")
    assert read_bytes(target) == b"second"
    assert os.listdir(target.parent) == ["x.bin"]
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "missing")


def test_open_write_publishes_only_on_clean_exit(tmp_path):
    target = tmp_path / "shard.tar"
    with open_write(target) as f:
        f.write(b"partial")
        assert not target.exists()  # never visible at the final name while being written
        (temp,) = os.listdir(tmp_path)
        assert temp.startswith(".shard.tar.clipforge-tmp-")
        assert list_uris(tmp_path) == []  # in-progress temp files are not listed
    assert target.read_bytes() == b"partial"
    assert os.listdir(tmp_path) == ["shard.tar"]


def test_open_write_exception_leaves_no_file_and_no_temp(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), open_write(tmp_path / "shard.tar") as f:
        f.write(b"x" * 1000)
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_open_write_exception_keeps_the_previous_version(tmp_path):
    write_bytes(tmp_path / "m.json", b"v1")
    with pytest.raises(RuntimeError), open_write(tmp_path / "m.json") as f:
        f.write(b"v2")
        raise RuntimeError
    assert read_bytes(tmp_path / "m.json") == b"v1"
    assert os.listdir(tmp_path) == ["m.json"]


def test_create_if_absent_first_writer_wins_locally(tmp_path):
    marker = tmp_path / "done" / "_SUCCESS"
    assert create_if_absent(marker, b"first") is True
    assert create_if_absent(marker, b"second") is False
    assert marker.read_bytes() == b"first"
    assert os.listdir(marker.parent) == ["_SUCCESS"]


KILLED_LOCAL_WRITER = """
import sys, time
from pipeline.core.storage import open_write
with open_write(sys.argv[1]) as f:
    f.write(b"x" * 100_000)
    f.flush()
    print("ready", flush=True)
    time.sleep(60)
"""


def test_killed_local_writer_leaves_no_final_file(tmp_path):
    target = tmp_path / "shard.tar"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_LOCAL_WRITER, str(target)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    assert len(os.listdir(tmp_path)) == 1  # the killed writer's hidden temp file ...
    assert list_uris(tmp_path) == []  # ... which nobody lists as data


def test_list_exists_delete_local(tmp_path):
    for name in ("b/2.txt", "a.txt", "b/1.txt"):
        write_bytes(tmp_path / "run" / name, name.encode())
    write_bytes(tmp_path / "run2" / "x", b"x")
    listed = [str(u) for u in list_uris(tmp_path / "run")]
    assert listed == [f"{tmp_path}/run/{n}" for n in ("a.txt", "b/1.txt", "b/2.txt")]
    assert list_uris(tmp_path / "nothing") == []
    assert exists(tmp_path / "run") and exists(tmp_path / "run" / "a.txt")
    delete(tmp_path / "run" / "a.txt")
    delete(tmp_path / "run" / "a.txt")  # missing is fine
    assert not exists(tmp_path / "run" / "a.txt")
    delete(tmp_path / "run", recursive=True)
    assert not exists(tmp_path / "run") and exists(tmp_path / "run2" / "x")
    assert local_path_or_none(tmp_path) == tmp_path
    assert local_path_or_none("s3://b12/x") is None
