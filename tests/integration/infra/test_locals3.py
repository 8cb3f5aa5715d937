"""The local S3 server: loopback only, a free port, usable over HTTP from this and other processes, and the
`clipforge s3 serve` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from infra.locals3.server import LocalS3, LocalS3Process
from pipeline.core.errors import ClipforgeError


def test_binds_loopback_on_a_free_port_and_serves_s3():
    with LocalS3() as server:
        assert server.endpoint_url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0
        assert server.create_bucket("bkt-one") == "s3://bkt-one"
        client = server.client()
        client.put_object(Bucket="bkt-one", Key="k", Body=b"v")
        assert client.get_object(Bucket="bkt-one", Key="k")["Body"].read() == b"v"
    with pytest.raises(RuntimeError, match="not started"):
        server.endpoint_url  # noqa: B018


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org"])
def test_refuses_a_non_loopback_address(host):
    with pytest.raises(ClipforgeError, match=f"refusing to serve local S3 on '{host}'"):
        LocalS3(host)


@pytest.mark.timeout(30)
def test_a_busy_port_is_an_error_not_a_hang():
    with LocalS3() as first:
        with pytest.raises(ClipforgeError, match=f"cannot serve local S3 on 127.0.0.1:{first.port}"):
            LocalS3(port=first.port).start()


def test_invalid_bucket_name_names_it():
    with LocalS3() as server, pytest.raises(ClipforgeError, match="'Bad_Name' is not a valid bucket name"):
        server.create_bucket("Bad_Name")


def test_child_process_server_serves_and_stops_cleanly():
    server = LocalS3Process(buckets=("from-child",)).start()
    try:
        client = server.client()
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["from-child"]
        client.put_object(Bucket="from-child", Key="k", Body=b"v")
        assert client.get_object(Bucket="from-child", Key="k")["Body"].read() == b"v"
    finally:
        server.stop()
    assert server.proc is not None and server.proc.returncode == 0  # SIGTERM is a clean stop


def _serve(*args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "pipeline.cli", "s3", "serve", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(60)  # readline() blocks: a hung server must fail the test, not the session
def test_cli_serve_prints_a_usable_endpoint_and_stops_on_ctrl_c():
    import boto3

    proc = _serve("--port", "0", "--bucket", "demo")
    try:
        lines = []
        deadline = time.monotonic() + 30
        while not any(line.startswith("unset AWS_PROFILE") for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(proc.stdout.readline())
        pairs = [line.removeprefix("export ").strip().split("=", 1) for line in lines if line.startswith("export ")]
        exports = dict(pairs)
        endpoint = exports["AWS_ENDPOINT_URL"]
        assert endpoint.startswith("http://127.0.0.1:") and exports["AWS_ENDPOINT_URL_S3"] == endpoint
        assert exports["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
        assert f"serving at {endpoint}" in lines[0]
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=exports["AWS_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        )
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["demo"]
        client.put_object(Bucket="demo", Key="hello.txt", Body=b"hi")
        assert client.get_object(Bucket="demo", Key="hello.txt")["Body"].read() == b"hi"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert out.strip().endswith("clipforge s3: stopped.")


def test_cli_serve_refuses_a_public_address():
    proc = _serve("--host", "0.0.0.0")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "refusing to serve local S3 on '0.0.0.0'" in err
    assert "Traceback" not in err


@pytest.mark.timeout(60)
def test_ready_file_names_the_endpoint_and_is_removed_on_stop(tmp_path):
    import json

    ready = tmp_path / "ready.json"
    proc = _serve("--ready-file", str(ready))
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "server exited or never got ready"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid and info["endpoint_url"] == f"http://127.0.0.1:{info['port']}"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert not ready.exists()
    assert os.listdir(tmp_path) == []
