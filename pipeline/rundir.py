"""A run directory (local or s3://): named artifact paths, small JSON/npy artifacts, Ray Data checkpoints.

Layout (DESIGN.md §1): config.yaml, manifest.json (written last), curated/ or shards/, rejects/, stats/, work/.
Small artifacts go through `pipeline.core.storage` (atomic); datasets through pyarrow filesystems (Ray Data).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.core.config import config_hash, dump_config
from pipeline.core.storage import (
    S3Options,
    Uri,
    delete,
    exists,
    filesystem,
    local_path_or_none,
    read_bytes,
    s3_client,
    write_bytes,
)

# What a build writes besides config.yaml, checked to tell a run directory from a user's directory: manifest.json
# (a finished run), work/ (an unfinished one: `work/started.json` is written right after config.yaml) or stats/.
RUN_MARKERS = ("manifest.json", "work", "stats")


class RunDir:
    """Paths and small artifacts of one run; cheap to pickle (a URI and S3 options)."""

    def __init__(self, uri: str, s3: S3Options | None = None):
        self.uri = Uri.parse(uri)
        self.s3 = s3

    def path(self, *parts: str) -> str:
        """The URI of an artifact under the run, e.g. `run.path("stats", "funnel.json")`."""
        return str(self.uri.join(*parts))

    def fs(self, *parts: str) -> tuple[Any, str]:
        """(pyarrow filesystem, path) of an artifact, for Ray Data reads and writes."""
        return filesystem(self.path(*parts), self.s3)

    def read(self, *parts: str, columns: list[str] | None = None):
        """A Ray Dataset over the parquet files at RUN/PARTS (a directory), optionally only `columns`."""
        import ray

        fs, path = self.fs(*parts)
        ds = ray.data.read_parquet(path, filesystem=fs)
        return ds.select_columns(columns) if columns else ds

    def exists(self, *parts: str) -> bool:
        return exists(self.path(*parts), self.s3)

    def is_empty(self) -> bool:
        """True when nothing is at the run's location: no directory, an empty directory, or (S3) no object under the
        prefix."""
        local = local_path_or_none(self.path())
        if local is not None and local.is_dir():
            return next(local.iterdir(), None) is None
        if self.uri.is_s3 and not self.uri.path.strip("/"):  # a bucket root exists even when empty: list it
            return not s3_client(self.s3).list_objects_v2(Bucket=self.uri.bucket, MaxKeys=1).get("KeyCount")
        return not self.exists()

    def is_file(self) -> bool:
        """True when the run's location is a local file (not a directory)."""
        local = local_path_or_none(self.path())
        return local is not None and local.is_file()

    def entries(self, limit: int = 5) -> list[str]:
        """Up to `limit` names directly under a local run location, sorted, for error messages; [] on S3 (a
        listing of a user's bucket could be huge)."""
        local = local_path_or_none(self.path())
        if local is None or not local.is_dir():
            return []
        return sorted(p.name + ("/" if p.is_dir() else "") for p in local.iterdir())[:limit]

    def markers(self) -> list[str]:
        """The RUN_MARKERS present."""
        return [m for m in RUN_MARKERS if self.exists(m)]

    def remove(self, *parts: str) -> None:
        delete(self.path(*parts), self.s3, recursive=True)

    def write_text(self, rel: str, text: str) -> None:
        write_bytes(self.path(rel), text.encode(), self.s3)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_text(rel, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")

    def read_json(self, rel: str) -> Any:
        return json.loads(read_bytes(self.path(rel), self.s3))

    def write_npy(self, rel: str, arr: np.ndarray) -> str:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        write_bytes(self.path(rel), buf.getvalue(), self.s3)
        return self.path(rel)

    def read_npy(self, rel: str) -> np.ndarray:
        return np.load(io.BytesIO(read_bytes(self.path(rel), self.s3)), allow_pickle=False)

    def checkpoint_once(self, name: str, ds):
        """Resumable barrier: like `checkpoint`, but a checkpoint committed by an earlier (killed) run of the same
        config is read back instead of recomputed. The commit point is the marker work/NAME.done (row count), written
        after the data; a directory without its marker is a partial write and is replaced. `ds` may be a callable
        returning the dataset (only called when the work must be done)."""
        import ray

        fs, path = self.fs("work", name)
        if not self.exists("work", f"{name}.done"):
            self.remove("work", name)
            data = ds() if callable(ds) else ds
            data.write_parquet(path, filesystem=fs)
            self.write_json(f"work/{name}.done", {"rows": ray.data.read_parquet(path, filesystem=fs).count()})
        return ray.data.read_parquet(path, filesystem=fs)

    def checkpoint(self, name: str, ds):
        """Barrier: write `ds` to work/NAME as parquet and read it back, so later phases do not recompute it
        and the object store does not pin it (a driver crash after this keeps the artifact)."""
        import ray

        fs, path = self.fs("work", name)
        self.remove("work", name)  # a killed earlier run's files would otherwise be read back as well
        ds.write_parquet(path, filesystem=fs)
        return ray.data.read_parquet(path, filesystem=fs)


def enter_run(run: RunDir, cfg: Any, state: str, say: Callable[[str], None], again: str) -> dict | None:
    """Act on what a command found in its output (`state`: new, resume, overwrite or complete; the command's own
    check decides it and refuses the rest): the manifest of a complete run (nothing to do; `again` says what
    --overwrite would do), else None after deleting an earlier run (overwrite) and recording config.yaml and the
    run marker work/started.json. Shared by `clipforge build` and `clipforge extract`."""
    if state == "complete":
        say(f"{cfg.output} is already complete (manifest.json); nothing to do. Use --overwrite to {again}.")
        return run.read_json("manifest.json")
    if state == "overwrite":
        say(f"--overwrite: deleting the earlier run in {cfg.output}")
        run.remove()
    elif state == "resume":
        say(f"resuming the unfinished run in {cfg.output}")
    run.write_text("config.yaml", dump_config(cfg))
    run.write_json("work/started.json", {"config_hash": config_hash(cfg)})  # marks the directory as a run
    return None


# Rejected rows' columns, renamed as rejects/*.parquet stores them (DESIGN.md §1: uid, url, stage, reason, detail).
REJECT_FILE_COLUMNS = {
    "uid": "uid",
    "url": "url",
    "reject_stage": "stage",
    "reject_reason": "reason",
    "reject_detail": "detail",
}


def write_rejects(run: RunDir, sources: list) -> None:
    """Rewrite rejects/ from scratch with the rejected rows of each dataset in `sources` (one write each): uid, url,
    stage, reason, detail and the input columns the build carries (`input.keep_columns`)."""
    from ray.data.expressions import col

    from pipeline.ingest import input_columns

    run.remove("rejects")
    fs, path = run.fs("rejects")
    for ds in sources:
        schema = ds.schema()  # None for a dataset of zero rows (nothing reached this step)
        names = [*REJECT_FILE_COLUMNS, *input_columns(schema.names if schema else [])]  # + the kept input columns
        rejected = ds.filter(expr=col("reject_reason").is_not_null()).select_columns(names)
        rejected.rename_columns(REJECT_FILE_COLUMNS).write_parquet(path, filesystem=fs)
