"""The one WebDataset tar writer and reader: members ↔ tar bytes, samples grouped as webdataset groups them; it knows
no sample layout (which extensions a shard or a benchmark holds) and opens no paths.

Writing is deterministic: members are plain USTAR files with mtime, uid and gid 0, empty user and group names and
mode 0644, in the order given — the same members always give the same bytes. Reading is one sequential pass over a
binary stream (local file or S3 input stream, no seeking): webdataset's grouping rule makes consecutive members
whose names share the base name's part before the first dot one sample, `{"__key__": folder/stem, ext: bytes}`.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Container, Iterable, Iterator
from typing import BinaryIO

TarError = tarfile.TarError
"""What a malformed or truncated tar raises while it is read."""


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644  # mtime 0: same members, same bytes
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(f: BinaryIO, members: Iterable[tuple[str, bytes]]) -> None:
    """Write `members` ((name, data) pairs, consumed lazily, in order) to `f` as one deterministic USTAR tar."""
    with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            tar.addfile(_info(name, len(data)), io.BytesIO(data))


def tar_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """`write_tar` into memory: the tar's bytes."""
    buf = io.BytesIO()
    write_tar(buf, members)
    return buf.getvalue()


def split_member_name(name: str) -> tuple[str, str]:
    """(key, ext) of a member name by webdataset's rule: key = folder + base name up to its first dot; ext = the
    rest, lower-cased (`a/k2.x.PNG` → (`a/k2`, `x.png`))."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def iter_members(f: BinaryIO, names: Container[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each regular file in the tar stream `f`, in order; only those in `names` when given (the
    others are skipped unread). Stopping the iteration early stops reading."""
    with tarfile.open(fileobj=f, mode="r|*") as tar:
        for member in tar:
            if member.isfile() and (names is None or member.name in names):
                yield member.name, tar.extractfile(member).read()


def iter_samples(f: BinaryIO) -> Iterator[dict[str, bytes]]:
    """The samples of the tar stream `f`, in order: `{"__key__": key, ext: bytes, ...}` (see `split_member_name`)."""
    current: dict = {}
    for name, data in iter_members(f):
        key, ext = split_member_name(name)
        if current and current["__key__"] != key:
            yield current
            current = {}
        current["__key__"] = key
        current[ext] = data
    if current:
        yield current
