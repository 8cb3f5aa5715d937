"""Object operations on any `Uri`, with the atomicity contract of the package docstring; no pipeline logic."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pipeline.core.storage.s3 import (
    MULTIPART_THRESHOLD,
    S3Options,
    object_exists,
    object_key,
    s3_client,
    s3_errors,
    upload,
)
from pipeline.core.storage.uri import Location, StorageError, Uri

TEMP_MARK = ".clipforge-tmp-"
"""Local temp files are named `.{name}.clipforge-tmp-{hex}`: hidden (pyarrow and Ray skip dot-files) and skipped by
`list_uris`. A killed local writer may leave one behind; it is never mistaken for the final file."""


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_beside(path: str) -> str:
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f".{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")


@contextlib.contextmanager
def _local_atomic(path: str) -> Iterator[IO[bytes]]:
    tmp = _temp_beside(path)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic within one directory: readers see the old file or the new one
        _fsync_dir(os.path.dirname(path))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_bytes(uri: Location, s3: S3Options | None = None) -> bytes:
    """The whole file/object at `uri`; a missing one is `FileNotFoundError`, local and S3 alike."""
    u = Uri.parse(uri)
    if not u.is_s3:
        return Path(u.path).read_bytes()
    with s3_errors(u):
        return s3_client(s3).get_object(Bucket=u.bucket, Key=object_key(u))["Body"].read()


def write_fileobj(uri: Location, fileobj: IO[bytes], s3: S3Options | None = None) -> None:
    """Copy `fileobj` (read from its current position to EOF) to `uri`, atomically (see the package docstring);
    replaces an existing object. Parent directories are created locally."""
    u = Uri.parse(uri)
    if u.is_s3:
        upload(u, fileobj, s3)
        return
    with _local_atomic(u.path) as f:
        shutil.copyfileobj(fileobj, f, 1 << 20)


def write_bytes(uri: Location, data: bytes, s3: S3Options | None = None) -> None:
    """Write `data` to `uri` atomically, replacing what was there."""
    write_fileobj(uri, io.BytesIO(data), s3)


@contextlib.contextmanager
def open_write(uri: Location, s3: S3Options | None = None) -> Iterator[IO[bytes]]:
    """A binary file whose content is published at `uri` only when the `with` block exits cleanly; on an exception
    (or a killed process) nothing appears there and an existing object is left as it was. Local: a hidden temp
    file beside the target, fsynced and renamed. S3: a local spool (memory up to 8 MiB, then a temp file) uploaded
    on exit, so `pq.write_table(table, f)` and `pipeline.core.tar.write_tar(f, members)` become all-or-nothing."""
    u = Uri.parse(uri)
    if not u.is_s3:
        with _local_atomic(u.path) as f:
            yield f
        return
    object_key(u)
    with tempfile.SpooledTemporaryFile(max_size=MULTIPART_THRESHOLD) as spool:
        yield spool  # type: ignore[misc]
        spool.seek(0)
        upload(u, spool, s3)  # type: ignore[arg-type]


def create_if_absent(uri: Location, data: bytes, s3: S3Options | None = None) -> bool:
    """Create `uri` holding `data` unless something is already there: True if this call created it, False if not
    (the existing content is untouched). First writer wins atomically, across processes — for commit markers and
    manifests. Local: a complete temp file hard-linked to the name (`os.link` fails if it exists; filesystems
    without hard links raise). S3: PutObject with `If-None-Match: *` (412 → False). On servers that ignore that
    header (e.g. s3rver) only the HEAD before the PUT protects an existing object, so two writers racing
    within one round trip could both get True."""
    u = Uri.parse(uri)
    return _create_s3(u, bytes(data), s3) if u.is_s3 else _create_local(u.path, bytes(data))


def _create_local(path: str, data: bytes) -> bool:
    tmp = _temp_beside(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails with FileExistsError if the name exists: the atomic "create if absent"
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(os.path.dirname(path))
    return True


def _create_s3(u: Uri, data: bytes, s3: S3Options | None) -> bool:
    from botocore.exceptions import ClientError

    client, key = s3_client(s3), object_key(u)
    with s3_errors(u):
        if object_exists(client, u):  # redundant where If-None-Match works; the only guard where it is ignored
            return False
        for attempt in range(5):
            try:
                client.put_object(Bucket=u.bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code")
                if code == "PreconditionFailed":
                    return False
                if code != "ConditionalRequestConflict" or attempt == 4:  # AWS's 409: a racing write is in flight
                    raise
                time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def exists(uri: Location, s3: S3Options | None = None) -> bool:
    """True if a file/object is at `uri`, or `uri` is a directory — on S3: the root of an existing bucket, or a
    prefix with at least one object under `key/`."""
    from botocore.exceptions import ClientError

    u = Uri.parse(uri)
    if not u.is_s3:
        return os.path.exists(u.path)
    client = s3_client(s3)
    with s3_errors(u):
        if not u.path:
            try:
                client.head_bucket(Bucket=u.bucket)
                return True
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                    return False
                raise
        if not u.path.endswith("/") and object_exists(client, u):
            return True
        listing = client.list_objects_v2(Bucket=u.bucket, Prefix=u.path.rstrip("/") + "/", MaxKeys=1)
        return listing.get("KeyCount", 0) > 0


def list_uris(prefix: Location, s3: S3Options | None = None) -> list[Uri]:
    """Every file/object under the directory `prefix`, recursively, sorted by path; [] when there is none.
    S3 lists `key/`* (so `s3://b/run` does not list `s3://b/run2/x`) and skips `…/` directory placeholders;
    local temp files of in-progress or killed writers are skipped."""
    u = Uri.parse(prefix)
    if not u.is_s3:
        found = [
            Uri("file", os.path.join(root, name))
            for root, _, names in os.walk(u.path)
            for name in names
            if TEMP_MARK not in name
        ]
        return sorted(found, key=lambda x: x.path)
    prefix_key = u.path.rstrip("/") + "/" if u.path.rstrip("/") else ""
    pages = s3_client(s3).get_paginator("list_objects_v2").paginate(Bucket=u.bucket, Prefix=prefix_key)
    with s3_errors(u):
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    return sorted((Uri("s3", k, u.bucket) for k in keys if not k.endswith("/")), key=lambda x: x.path)


def delete(uri: Location, s3: S3Options | None = None, *, recursive: bool = False) -> None:
    """Remove the file/object at `uri`; a missing one is fine. `recursive=True` also removes everything under the
    directory/prefix `uri` (S3: every object under `key/`)."""
    u = Uri.parse(uri)
    if not u.is_s3:
        if recursive and os.path.isdir(u.path):
            shutil.rmtree(u.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(u.path)
        return
    client = s3_client(s3)
    keys = [x.path for x in list_uris(u, s3)] if recursive else []
    if u.path and not u.path.endswith("/"):
        keys.append(u.path)
    with s3_errors(u):
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys per request
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            failed = client.delete_objects(Bucket=u.bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors")
            if failed:
                raise StorageError(f"could not delete {len(failed)} object(s) under {u}, e.g. {failed[0]}")


def makedirs(uri: Location) -> None:
    """Create the local directory `uri` and its parents; a no-op on S3, where prefixes need no creation."""
    u = Uri.parse(uri)
    if not u.is_s3:
        os.makedirs(u.path, exist_ok=True)


def local_path_or_none(uri: Location) -> Path | None:
    """The local `Path` for a local location, None for an S3 one."""
    u = Uri.parse(uri)
    return None if u.is_s3 else Path(u.path)
