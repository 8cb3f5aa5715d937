"""Storage: locations (local paths, `file://`, `s3://bucket/prefix`) and the few atomic operations the pipeline needs.

pyarrow.fs for dataset I/O (`filesystem`, `pyarrow_uri`, `ray_train_storage`), boto3 for object operations. No
pipeline logic lives here, and no credentials: those come from the standard AWS chain of the process doing the I/O.

Atomicity contract: a final name (local) or key (S3) holds nothing or one writer's complete bytes — never a partial
object — whether the writer returns, raises or is killed. Local: a hidden temp file beside the target, fsync,
`os.replace`. S3: one PutObject, or a multipart upload, invisible until CompleteMultipartUpload and aborted on error
(a killed writer leaves an incomplete upload that costs storage until a lifecycle rule aborts it, never an object).
`create_if_absent` is first-writer-wins (local `os.link`, S3 `If-None-Match: *`), for commit markers.
pyarrow output streams do NOT give this: closing one on an exception publishes what was written so far. Write files
that must be all-or-nothing through `open_write`; let pyarrow and Ray read through `filesystem`.
"""

from pipeline.core.storage.ops import (
    TEMP_MARK,
    create_if_absent,
    delete,
    exists,
    list_uris,
    local_path_or_none,
    makedirs,
    open_write,
    read_bytes,
    write_bytes,
    write_fileobj,
)
from pipeline.core.storage.s3 import (
    MULTIPART_THRESHOLD,
    S3Options,
    filesystem,
    pyarrow_uri,
    ray_train_storage,
    s3_client,
)
from pipeline.core.storage.uri import Location, StorageError, Uri

__all__ = [
    "MULTIPART_THRESHOLD",
    "TEMP_MARK",
    "Location",
    "S3Options",
    "StorageError",
    "Uri",
    "create_if_absent",
    "delete",
    "exists",
    "filesystem",
    "list_uris",
    "local_path_or_none",
    "makedirs",
    "open_write",
    "pyarrow_uri",
    "ray_train_storage",
    "read_bytes",
    "s3_client",
    "write_bytes",
    "write_fileobj",
]
