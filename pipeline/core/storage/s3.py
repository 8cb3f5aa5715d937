"""How S3 is reached: connection options, the cached boto3 client, pyarrow filesystems and Ray storage arguments.

It never holds credentials: they come from the standard AWS chain of the process doing the I/O (environment,
~/.aws, instance role), so a filesystem object pickled to a Ray worker carries no secret.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from typing import IO, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import field_validator

from pipeline.core.config import StrictModel
from pipeline.core.storage.uri import Location, StorageError, Uri

MULTIPART_THRESHOLD = 8 * 1024 * 1024
"""S3 objects above this many bytes go multipart, in parts of this size (boto3's default; S3's minimum is 5 MiB)."""

_ENDPOINT = re.compile(r"^https?://[^/?#\s]+/?$")
_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


class S3Options(StrictModel):
    """How to reach S3 or an S3-compatible server. Credentials are deliberately not configurable here: they come from
    the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, an instance role)."""

    endpoint_url: str | None = None
    """S3-compatible endpoint, e.g. `http://127.0.0.1:9000`. None: `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`,
    else AWS itself. With an endpoint set, checksums are sent only where an operation requires them."""
    region: str | None = None
    """Signing region. None: `AWS_REGION`, then `AWS_DEFAULT_REGION`, else us-east-1."""
    addressing_style: Literal["auto", "path", "virtual"] | None = None
    """Bucket addressing. None: `path` when an endpoint is set (what local servers need), else boto3's `auto`."""

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, v: str | None) -> str | None:
        if v is not None and not _ENDPOINT.match(v):
            raise ValueError(f"endpoint_url {v!r} must look like http://host:port or https://host")
        return v.rstrip("/") if v else v


def _resolve(s3: S3Options | None) -> tuple[str | None, str, str]:
    """(endpoint or None, region, addressing style) with environment fallbacks applied; read at call time."""
    s3 = s3 or S3Options()
    endpoint = s3.endpoint_url
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if endpoint is None and os.environ.get(var):
            endpoint = os.environ[var].rstrip("/")
            if not _ENDPOINT.match(endpoint):
                raise StorageError(f"{var}={os.environ[var]!r} must look like http://host:port or https://host")
    region = s3.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return endpoint, region, s3.addressing_style or ("path" if endpoint else "auto")


def s3_client(s3: S3Options | None = None) -> Any:
    """A boto3 S3 client for `s3`, cached per (process, endpoint, region, addressing style); boto3 clients are
    thread-safe. With an endpoint set, `request_checksum_calculation` and `response_checksum_validation` are
    `when_required`: boto3 >= 1.36 otherwise sends CRC checksums that several S3-compatible servers reject."""
    endpoint, region, style = _resolve(s3)
    key = (os.getpid(), endpoint, region, style)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            import boto3
            from botocore.config import Config

            when_required = "when_required"
            checksums = {"request_checksum_calculation": when_required, "response_checksum_validation": when_required}
            config = Config(
                region_name=region,
                retries={"mode": "standard", "max_attempts": 5},
                s3={"addressing_style": style},
                max_pool_connections=16,
                **(checksums if endpoint else {}),
            )
            _CLIENTS[key] = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
        return _CLIENTS[key]


def filesystem(uri: Location, s3: S3Options | None = None) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for `uri`: `(LocalFileSystem, "/abs/path")` or `(S3FileSystem,
    "bucket/key")` — the pair `ray.data.read_parquet(path, filesystem=fs)` and `pq.write_table` take. The endpoint
    and region are passed explicitly because pyarrow's `S3FileSystem()` ignores `AWS_ENDPOINT_URL*`."""
    import pyarrow.fs as pafs

    u = Uri.parse(uri)
    if not u.is_s3:
        return pafs.LocalFileSystem(), u.path
    endpoint, region, style = _resolve(s3)
    kwargs: dict[str, Any] = {"region": region, "force_virtual_addressing": style == "virtual"}
    if endpoint:
        parts = urlsplit(endpoint)
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    return pafs.S3FileSystem(**kwargs), f"{u.bucket}/{u.path}".rstrip("/")


def pyarrow_uri(uri: Location, s3: S3Options | None = None) -> str:
    """One string that `pyarrow.fs.FileSystem.from_uri` (and Ray's `storage_path=`) resolves to the same place:
    the local path, or `s3://bucket/key?region=R[&endpoint_override=host:port&scheme=http]` (key percent-encoded)."""
    u = Uri.parse(uri)
    if not u.is_s3:
        return u.path
    endpoint, region, _ = _resolve(s3)
    query = f"region={region}"
    if endpoint:
        parts = urlsplit(endpoint)
        query += f"&endpoint_override={parts.netloc}&scheme={parts.scheme}"
    return f"s3://{u.bucket}/{quote(u.path, safe='/')}?{query}"  # pyarrow percent-decodes the path


def ray_train_storage(uri: Location, s3: S3Options | None = None) -> dict[str, Any]:
    """Keyword arguments for Ray Train's `RunConfig(**ray_train_storage(uri), name=...)`: `storage_path` (a local
    path, or `bucket/prefix` without scheme) and `storage_filesystem` (None locally, else the S3FileSystem)."""
    u = Uri.parse(uri)
    if not u.is_s3:
        return {"storage_path": u.path, "storage_filesystem": None}
    fs, path = filesystem(u, s3)
    return {"storage_path": path, "storage_filesystem": fs}


@contextlib.contextmanager
def s3_errors(u: Uri) -> Iterator[None]:
    """Turn the S3 failures a user can fix into `StorageError`, and a missing key into `FileNotFoundError`."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        hint = "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        raise StorageError(f"no AWS credentials for {u}: {hint}") from None
    except EndpointConnectionError as e:
        raise StorageError(f"cannot reach the S3 endpoint for {u}: {e}") from None
    except (ClientError, S3UploadFailedError) as e:
        code = e.response.get("Error", {}).get("Code") if isinstance(e, ClientError) else None
        if code == "NoSuchBucket" or "NoSuchBucket" in str(e):
            raise StorageError(f"bucket {u.bucket!r} does not exist (writing or reading {u})") from None
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(str(u)) from None
        raise


def object_key(u: Uri) -> str:
    """The object key of `u`; a bucket root or a `…/` prefix is a `StorageError`."""
    if not u.path or u.path.endswith("/"):
        raise StorageError(f"{u} names a bucket or prefix, not an object")
    return u.path


def object_exists(client: Any, u: Uri) -> bool:
    """HEAD `u`: True if an object is at that exact key."""
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=u.bucket, Key=u.path)
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def upload(u: Uri, fileobj: IO[bytes], s3: S3Options | None) -> None:
    """Upload `fileobj` from its position to EOF as `u`: visible whole or not at all."""
    from boto3.s3.transfer import TransferConfig

    # boto3's managed transfer: one PutObject up to the threshold, else parallel parts + CompleteMultipartUpload,
    # with AbortMultipartUpload on failure.
    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD, max_concurrency=4
    )
    with s3_errors(u):
        s3_client(s3).upload_fileobj(fileobj, u.bucket, object_key(u), Config=config)
