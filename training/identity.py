"""A training run's resume identity: which build it trains on (manifest.json's sha256) and every key that changes
what is trained. Reads and writes RUN/identity.json; does not start Ray or torch.

Like a build's `resume_identity` (pipeline/build.py): re-running a name whose run has checkpoints resumes it, so
the new invocation must train the same thing. Keys in `EXECUTION_ONLY` say how or where it runs, or how far, and
may change between invocations (docs/training.md explains each); every other key — including any key added later —
is part of the identity, and a change is refused before Ray starts with the keys that differ.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pipeline.core.config import dotted_items
from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import S3Options, Uri, exists, read_bytes, write_bytes
from training.config import TrainConfig

IDENTITY_FILE = "identity.json"
RESUME_MARKER = "checkpoint_manager_snapshot.json"  # Ray Train's: present once a run has a checkpoint to resume
# Dotted keys (a section name covers the whole section) that may change when a run resumes.
EXECUTION_ONLY: tuple[str, ...] = (
    "name",  # the run's address: the same name is what resumes
    "storage_path",
    "steps",  # how far: re-running with more steps extends a run (the cosine schedule is recomputed)
    "data.manifest",  # where the build is read from; the build itself is pinned by manifest_sha256
    "data.decode_cpus",
    "data.prefetch_batches",
    "model.precision",  # how the same math runs: fp32 weights either way, bf16 autocast on CUDA
    "model.grad_checkpointing",
    "model.torch_compile",
    "workers",  # world size and devices: the global batch (data.batch_size) stays the same
    "checkpoint",
    "failure",
    "log",
    "export",
    "eval",  # what is measured during the run, not what is trained
    "s3",
)


def manifest_uri(manifest: str) -> str:
    """The manifest.json of `data.manifest` (a build's run directory or its manifest.json)."""
    return manifest if manifest.endswith(".json") else str(Uri.parse(manifest).join("manifest.json"))


def manifest_sha256(data: bytes) -> str:
    """sha256 (hex) of a manifest.json's bytes: what pins the build a run trains on."""
    return hashlib.sha256(data).hexdigest()


def _execution_only(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in EXECUTION_ONLY)


def train_identity(cfg: TrainConfig, manifest_sha: str | None) -> dict[str, Any]:
    """{"manifest_sha256", "manifest" (the path, for messages), "config": {dotted key: value}} without the
    EXECUTION_ONLY keys; JSON-ready."""
    keys = dotted_items(cfg.model_dump(mode="json"))
    config = {k: v for k, v in sorted(keys.items()) if not _execution_only(k)}
    return {"manifest_sha256": manifest_sha, "manifest": cfg.data.manifest, "config": config}


def identity_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One "key: old -> new" line per difference; `build` when the manifests differ. [] when the same run.

    An old identity without manifest_sha256 (recovered from a config.yaml) compares the manifest paths instead."""
    diffs = []
    if old.get("manifest_sha256") is None:
        if old.get("manifest") != new.get("manifest"):
            diffs.append(f"data.manifest: {old.get('manifest')!r} -> {new.get('manifest')!r}")
    elif old["manifest_sha256"] != new.get("manifest_sha256"):
        diffs.append(
            f"build: manifest.json sha256 {old['manifest_sha256'][:12]} ({old.get('manifest')}) -> "
            f"{str(new.get('manifest_sha256'))[:12]} ({new.get('manifest')})"
        )
    a, b = old.get("config", {}), new.get("config", {})
    diffs += [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diffs


def run_uri(cfg: TrainConfig) -> Uri:
    """RUN = storage_path/name."""
    return Uri.parse(cfg.storage_path).join(cfg.name)


def read_identity(run: str | Uri, s3: S3Options | None = None) -> dict[str, Any] | None:
    """RUN/identity.json, or None when the run has none (it was started before clipforge recorded one)."""
    path = Uri.parse(run).join(IDENTITY_FILE)
    return json.loads(read_bytes(path, s3)) if exists(path, s3) else None


def _recorded_identity(cfg: TrainConfig, run: Uri) -> dict[str, Any] | None:
    """The identity of what RUN holds: identity.json, else one recovered from config.yaml (no manifest hash)."""
    recorded = read_identity(run, cfg.s3)
    if recorded is not None or not exists(run.join("config.yaml"), cfg.s3):
        return recorded
    import yaml

    from pipeline.core.config import validate_config

    old = validate_config(TrainConfig, yaml.safe_load(read_bytes(run.join("config.yaml"), cfg.s3)), str(run))
    return train_identity(old, None)


def check_resume(cfg: TrainConfig) -> dict[str, Any]:
    """This invocation's identity; a `ClipforgeError` listing the differing keys when RUN has checkpoints to resume
    and was trained with another identity (another build, or a key outside EXECUTION_ONLY changed)."""
    run = run_uri(cfg)
    new = train_identity(cfg, manifest_sha256(read_bytes(manifest_uri(cfg.data.manifest), cfg.s3)))
    if not exists(run.join(RESUME_MARKER), cfg.s3):
        return new  # nothing to resume: a fresh run (or one that died before its first checkpoint)
    old = _recorded_identity(cfg, run)
    diffs = identity_diff(old, new) if old is not None else []
    if diffs:
        raise ClipforgeError(
            f"run {cfg.name!r} ({run}) has checkpoints trained with a different build or config, and re-using its "
            f"name would resume it: {'; '.join(diffs)}. Use a new --set name=... to start another run, or put those "
            "keys back to resume (only execution keys such as workers.*, log.*, checkpoint.*, steps may change; "
            "docs/training.md)."
        )
    return new


def write_identity(cfg: TrainConfig, identity: dict[str, Any]) -> None:
    """Record RUN/identity.json (atomically) for the next invocation and for `clipforge report --train-run`."""
    write_bytes(run_uri(cfg).join(IDENTITY_FILE), (json.dumps(identity, indent=1) + "\n").encode(), cfg.s3)
