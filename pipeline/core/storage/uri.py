"""Storage locations: parsing local paths, `file://` and `s3://bucket/prefix` into one `Uri` type.

Pure string handling: no I/O, no boto3, no pyarrow.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import unquote

from pipeline.core.errors import ClipforgeError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StorageError(ClipforgeError):
    """A location that cannot be used as given: bad URI, missing bucket, unreachable endpoint, no credentials."""


@dataclass(frozen=True)
class Uri:
    """A parsed location. `scheme="file"`: `path` is an absolute local path, `bucket` is None. `scheme="s3"`: `path`
    is the object key (or prefix) without a leading slash, "" for the bucket root. `str()` gives back the canonical
    form: the local path, or `s3://bucket/key`."""

    scheme: Literal["file", "s3"]
    path: str
    bucket: str | None = None

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | Uri) -> Uri:
        """Parse a local path (made absolute), `file:///abs/path` (percent-decoded) or `s3://bucket[/key]`.
        Anything else — another scheme, `s3://` without a bucket, an invalid bucket name — is a `StorageError`
        naming the value."""
        if isinstance(value, Uri):
            return value
        text = os.fspath(value)
        if not isinstance(text, str) or not text:
            raise StorageError(f"empty or non-text storage location {value!r}: use a path or s3://bucket/prefix")
        m = _SCHEME.match(text)
        if m is None:
            return cls("file", os.path.abspath(os.path.expanduser(text)))
        scheme, rest = m.group(1).lower(), text[m.end() :]
        if scheme == "file":
            host, _, path = rest.partition("/")
            if host not in ("", "localhost") or not path:
                raise StorageError(f"file URI {text!r} must name an absolute local path: file:///abs/path")
            return cls("file", os.path.abspath("/" + unquote(path)))
        if scheme == "s3":
            bucket, _, key = rest.partition("/")
            if not bucket:
                raise StorageError(f"S3 URI {text!r} has no bucket: expected s3://bucket/prefix")
            if not _BUCKET.match(bucket):
                raise StorageError(f"S3 URI {text!r}: {bucket!r} is not a valid bucket name (3-63 of a-z 0-9 . -)")
            return cls("s3", key, bucket)
        raise StorageError(
            f"unsupported storage URI {text!r} (scheme {scheme!r}): use a local path, file:///abs/path or s3://bucket/prefix"
        )

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def name(self) -> str:
        """The last path segment ("" for a bucket root)."""
        return self.path.rstrip("/").rpartition("/")[2]

    def join(self, *parts: str) -> Uri:
        """This location with `parts` appended as `/`-separated segments; empty and `.` segments are dropped, a
        leading `/` does not escape the base, and `..` is a `StorageError` (names are generated, never climbed)."""
        segments = []
        for part in parts:
            for seg in str(part).split("/"):
                if seg == "..":
                    raise StorageError(f"refusing to join {part!r} to {self}: '..' segments are not allowed")
                if seg not in ("", "."):
                    segments.append(seg)
        if not segments:
            return self
        if not self.is_s3:
            return replace(self, path=os.path.join(self.path, *segments))
        base = self.path.rstrip("/")
        return replace(self, path="/".join([base, *segments] if base else segments))

    def __str__(self) -> str:
        if not self.is_s3:
            return self.path
        return f"s3://{self.bucket}/{self.path}" if self.path else f"s3://{self.bucket}"


Location = str | os.PathLike[str] | Uri
"""What every function here accepts: a path, a URI string, or a parsed `Uri`."""
