"""Local S3: moto's server mode on loopback — a real HTTP endpoint that other processes (Ray workers) can use.

It is a stand-in for tests and demos, not storage: every bucket lives in the memory of the serving process and is
gone when it stops. It has no authentication (any key pair is accepted), so it refuses a non-loopback address unless
forced. `LocalS3` runs it on a thread of this process; `LocalS3Process` runs it as a child process
(`python -m infra.locals3 serve`) when it must not share this process's lifetime or GIL.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
from typing import Any

from infra import child
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, Uri

DUMMY_KEY = "testing"
"""The access key id and secret the local server is used with; moto accepts any."""


def check_loopback(host: str, allow_non_loopback: bool = False) -> None:
    """Raise `ClipforgeError` naming `host` unless it is a loopback address (or `allow_non_loopback`)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not allow_non_loopback:
        raise ClipforgeError(
            f"refusing to serve local S3 on {host!r}: it has no authentication, so it binds loopback only "
            "(127.0.0.1, the default); pass --allow-non-loopback to override"
        )


def s3_env(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """Environment for a process that should use the server at `endpoint_url` with dummy credentials: boto3 reads
    AWS_ENDPOINT_URL*, checksums only when required, and no EC2 metadata lookups (which stall offline).
    AWS_PROFILE must also be unset (a mapping cannot say so)."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class _Endpoint:
    """What both server handles offer once started: the endpoint, its environment, a client, bucket helpers."""

    endpoint_url: str
    region: str

    def env(self) -> dict[str, str]:
        return s3_env(self.endpoint_url, self.region)

    def export_lines(self) -> list[str]:
        """Shell lines a user pastes into another shell to point boto3/clipforge at this server."""
        return [f"export {k}={v}" for k, v in self.env().items()] + ["unset AWS_PROFILE"]

    def options(self) -> S3Options:
        return S3Options(endpoint_url=self.endpoint_url, region=self.region)

    def client(self) -> Any:
        """A boto3 client with explicit dummy credentials: works whatever this process's environment holds."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket `name` (validated like any `s3://` URI) and return `s3://name`."""
        uri = Uri.parse(f"s3://{name}")
        if uri.path:
            raise ClipforgeError(f"bucket name {name!r} must not contain '/'")
        self.client().create_bucket(Bucket=uri.bucket)
        return str(uri)

    def delete_bucket(self, name: str) -> None:
        """Delete bucket `name` with every object and incomplete multipart upload in it."""
        client = self.client()
        for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)

    def __enter__(self):
        return self.start()  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.stop()  # type: ignore[attr-defined]


class LocalS3(_Endpoint):
    """moto's `ThreadedMotoServer` on a thread of this process, bound to `host` (loopback) and `port` (0: a free
    one, read back after binding, so parallel sessions never collide)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        region: str = "us-east-1",
        allow_non_loopback: bool = False,
        quiet: bool = True,
    ):
        check_loopback(host, allow_non_loopback)
        self.host, self.port, self.region, self.quiet = host, port, region, quiet
        self._server: Any = None

    @property
    def endpoint_url(self) -> str:  # type: ignore[override]
        if self._server is None:
            raise RuntimeError("LocalS3 is not started: call start() or use it as a context manager")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> LocalS3:
        """Bind and serve; a port that cannot be bound is a `ClipforgeError` (moto's own `start` would hang)."""
        from moto.server import ThreadedMotoServer

        class _Server(ThreadedMotoServer):
            error: BaseException | None = None

            def _server_entry(self) -> None:  # moto 5.2: report a bind failure instead of never setting "ready"
                try:
                    super()._server_entry()
                except BaseException as e:
                    self.error = e
                    self._server_ready_event.set()

        if self.quiet:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
        server = _Server(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        if server.error is not None:
            raise ClipforgeError(f"cannot serve local S3 on {self.host}:{self.port}: {server.error}")
        self._server = server
        self.port = server.get_host_and_port()[1]
        return self

    def ready_info(self) -> dict[str, Any]:
        """What `serve --ready-file` writes once serving: `{"endpoint_url", "port", "pid"}` (this process's id)."""
        return {"endpoint_url": self.endpoint_url, "port": self.port, "pid": os.getpid()}

    def stop(self) -> None:
        """Stop serving; every bucket is lost. Idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None


class LocalS3Process(_Endpoint):
    """The same server in a child process (`python -m infra.locals3 serve --ready-file F`, see `infra.child`),
    started and stopped from here; it reports its endpoint through the ready file."""

    def __init__(
        self, port: int = 0, *, region: str = "us-east-1", buckets: tuple[str, ...] = (), timeout: float = 30
    ):
        self.port, self.region, self.buckets, self.timeout = port, region, buckets, timeout
        self._child: child.ChildServer | None = None
        self.endpoint_url = ""

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The child process (None before `start`)."""
        return self._child.proc if self._child is not None else None

    def start(self) -> LocalS3Process:
        args = ["serve", "--port", str(self.port), "--region", self.region]
        args += [arg for b in self.buckets for arg in ("--bucket", b)]
        self._child = child.ChildServer("infra.locals3", args, name="local S3", timeout=self.timeout)
        info = self._child.start()
        self.endpoint_url, self.port = info["endpoint_url"], info["port"]
        return self

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        if self._child is not None:
            self._child.stop()
