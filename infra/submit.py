"""Ray Job Submission for clipforge: validate a config here, ship it with the job, run `clipforge CMD` there.

The one owner of `ray.job_submission.JobSubmissionClient` (DESIGN §2). A submission is a zip package used as the
job's `working_dir`: the resolved config as `clipforge-job.yaml` at its root, plus the project checkout in
`working_dir` mode (the cluster needs only the dependencies) or nothing else in `installed` mode (the cluster image
has clipforge, e.g. our Dockerfile). The job's entrypoint is then `clipforge CMD clipforge-job.yaml`, exactly what
a user would type on the head node. No typer here: `pipeline/cli.py` is a thin shell over these functions.
Problems a user can fix (bad config, no address, cluster unreachable, unknown job) are `SubmitError`s, exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pipeline.core.errors import ClipforgeError

COMMANDS = ("build", "train", "eval")
JOB_CONFIG_NAME = "clipforge-job.yaml"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# Never shipped in working_dir mode, on top of Ray's defaults (.git, .venv, venv, __pycache__) and .gitignore.
PACKAGE_EXCLUDES = [
    "*.egg-info",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".whl",
    "*.whl",
    "/runs/",
    "/demo-out/",
    "/bench-out/",
    "/eval-out/",
]
# Defaults for every process of a job (`--env` overrides):
# - PYTHONUNBUFFERED: the driver's stdout is a file `--follow` tails; block-buffered lines arrive minutes late.
# - RAY_DATA_USE_DATASOURCE_V2=0: Ray Data 2.60's new parquet path lists footers with a pool of FooterReader actors
#   (ray-project/ray#65273) that are not restarted, so losing a node mid-read fails the whole build (found by
#   tests/integration/infra/test_submit_cluster.py); the v1 datasource reads with retried tasks.
# - img2dataset's albumentations import phones home unless told not to; usage stats likewise.
DEFAULT_JOB_ENV = {
    "PYTHONUNBUFFERED": "1",
    "RAY_DATA_USE_DATASOURCE_V2": "0",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}
# Ray's default ports that are not the job server: what `ray start --head` prints for `ray.init` / Ray Client.
GCS_PORTS = {6379: "GCS (ray.init / RAY_ADDRESS)", 10001: "Client server (ray://)"}
ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")  # Ray's own order of precedence
# Ray's client-side chatter (packaging INFO, "token auth enabled" WARNING, websocket closed) drowns the job's logs.
_NOISY_LOGGERS = (
    "ray._private.authentication.authentication_token_setup",
    "ray._private.runtime_env.packaging",
    "ray.dashboard.modules.dashboard_sdk",
    "ray.dashboard.modules.job.sdk",
)


class SubmitError(ClipforgeError):
    """A submission or job query the user can fix; the message says how."""


@dataclass(frozen=True)
class JobSpec:
    """What to run on the cluster and in which runtime environment."""

    command: Literal["build", "train", "eval"]
    config_yaml: str
    """The resolved config (validated here), written to the job package as `clipforge-job.yaml`."""
    mode: Literal["working_dir", "installed"] = "working_dir"
    """working_dir: ship the project checkout with the job; installed: the cluster image already has clipforge."""
    project_dir: Path | None = None
    """The checkout shipped in working_dir mode (default: the one this clipforge runs from)."""
    env_vars: dict[str, str] = field(default_factory=dict)
    pip: list[str] = field(default_factory=list)
    """Extra pip requirements installed by Ray for the job (needs index access on the cluster)."""
    excludes: list[str] = field(default_factory=list)
    """More gitignore-style patterns left out of the working_dir package."""
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    submission_id: str | None = None

    def __post_init__(self) -> None:
        if self.mode == "installed" and self.project_dir is not None:
            raise SubmitError("--working-dir ships a checkout; --installed ships none: pass one of them, not both.")


def default_project_dir() -> Path:
    """The checkout this clipforge is imported from (where pyproject.toml and configs/ live)."""
    root = Path(__file__).resolve().parents[1]  # infra/ sits at the checkout's root, beside pipeline/
    if not (root / "pyproject.toml").is_file():
        raise SubmitError(
            f"clipforge is not running from a source checkout ({root} has no pyproject.toml), so there is no "
            "project to ship: pass --installed when the cluster image has clipforge, or --working-dir CHECKOUT."
        )
    return root


def entrypoint(spec: JobSpec) -> str:
    """The shell command the job runs in its working_dir: `clipforge CMD clipforge-job.yaml`.

    In working_dir mode the cluster may have only the dependencies (no console script), so the same CLI runs as
    `python -m pipeline.cli`; the shipped checkout is first on sys.path either way.
    """
    exe = "python -m pipeline.cli" if spec.mode == "working_dir" else "clipforge"
    return f"{exe} {spec.command} {JOB_CONFIG_NAME}"


def write_package(spec: JobSpec, dest: Path) -> Path:
    """Write the job's working_dir zip into directory `dest`: the config, plus the checkout in working_dir mode.

    The checkout is zipped by Ray's own packager, so .gitignore/.rayignore and Ray's default excludes apply as
    with `ray job submit --working-dir`; `PACKAGE_EXCLUDES` and `spec.excludes` are added. Files sit at the zip's
    root (Ray strips a single top-level directory when unpacking).
    """
    path = dest / f"clipforge-{spec.command}-job.zip"
    if spec.mode == "working_dir":
        from ray._private import ray_constants
        from ray._private.runtime_env.packaging import create_package

        project = (spec.project_dir or default_project_dir()).resolve()
        if not project.is_dir():
            raise SubmitError(f"--working-dir {str(project)!r} is not a directory.")
        if (project / JOB_CONFIG_NAME).exists():
            raise SubmitError(f"{project / JOB_CONFIG_NAME} exists and would shadow the submitted config; remove it.")
        excludes = ray_constants.get_runtime_env_default_excludes() + PACKAGE_EXCLUDES + list(spec.excludes)
        create_package(str(project), path, include_gitignore=True, excludes=excludes, logger=None)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(JOB_CONFIG_NAME, spec.config_yaml)
    return path


def runtime_env(spec: JobSpec, package: Path) -> dict[str, Any]:
    """The job's runtime_env: the package as working_dir, env vars (defaults first, yours win), optional pip."""
    env: dict[str, Any] = {"working_dir": str(package), "env_vars": {**DEFAULT_JOB_ENV, **spec.env_vars}}
    if spec.pip:
        env["pip"] = list(spec.pip)
    return env


def parse_env(items: list[str] | None) -> dict[str, str]:
    """`--env K=V` items as a dict; a malformed item is a `SubmitError` naming it."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SubmitError(f"bad --env {item!r}: expected KEY=VALUE.")
        out[key.strip()] = value
    return out


def normalise_address(address: str | None) -> str:
    """The job server URL: `--address`, else $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS; `host:port` gets http://.

    Ray's GCS (6379) or Client (10001) default port is a `SubmitError` pointing at the dashboard URL, before any
    connection: `ray start --head` prints the GCS address first, and it is the one RAY_ADDRESS holds for `ray.init`.

    Never auto-detects a local Ray (another user's cluster on this machine would be a surprising target).
    """
    source = "--address" if address else next((f"${v}" for v in ADDRESS_VARS if os.environ.get(v)), "")
    address = address or next((os.environ[v] for v in ADDRESS_VARS if os.environ.get(v)), None)
    if not address:
        raise SubmitError(
            "no cluster address: pass --address http://HEAD:8265 (the Ray dashboard / job server) or set RAY_ADDRESS."
        )
    if address.startswith("ray://"):
        raise SubmitError(
            f"address {address!r} is a Ray Client address; job submission needs the dashboard's HTTP address, "
            "e.g. http://HEAD:8265."
        )
    url = address if "://" in address else f"http://{address}"
    port = _port(url)
    if port in GCS_PORTS:
        host = urlsplit(url).hostname or "HEAD"
        raise SubmitError(
            f"{source} {address!r} is a Ray {GCS_PORTS[port]} address (port {port}); job submission needs the "
            f"dashboard's HTTP address: --address http://{host}:8265 (the dashboard port, 8265 by default)."
        )
    return url


def _port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


@contextlib.contextmanager
def _explicit_address_env() -> Iterator[None]:
    """Hide RAY_ADDRESS / RAY_API_SERVER_ADDRESS while the client is built: Ray lets them override the address
    argument, which would make `--address` lose to a stale variable."""
    saved = {v: os.environ.pop(v) for v in ADDRESS_VARS if v in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def connect(address: str | None):
    """A `JobSubmissionClient` for the cluster, or a `SubmitError` saying why not (unreachable, auth, version)."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    url = normalise_address(address)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Like `ray.init(address=...)`: send the token (~/.ray/auth_token, $RAY_AUTH_TOKEN[_PATH]) when one exists.
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        with _explicit_address_env():
            return JobSubmissionClient(url)
    except ConnectionError:
        raise SubmitError(
            f"cannot reach the Ray job server at {url}: is the cluster up, and is the dashboard port open from here "
            "(e.g. `ray dashboard cluster.yaml` or `kubectl port-forward svc/HEAD-svc 8265`)?" + _not_dashboard(url)
        ) from None
    except AuthenticationError as e:
        raise SubmitError(f"the Ray cluster at {url} refused the request: {str(e).splitlines()[0]}") from None
    except RuntimeError as e:
        raise SubmitError(f"the Ray job server at {url} answered unexpectedly: {e}{_not_dashboard(url)}") from None


def _not_dashboard(url: str) -> str:
    """A hint when `url` is not on the dashboard's default port: GCS and dashboard addresses are easy to mix up."""
    if _port(url) in (8265, None):
        return ""
    return f" ({url} must be the dashboard's HTTP address, http://HEAD:8265 by default, not the GCS's HEAD:6379.)"


def submit(client, spec: JobSpec) -> str:
    """Package and submit the job; returns its submission id."""
    with tempfile.TemporaryDirectory(prefix="clipforge-submit-") as tmp:
        package = write_package(spec, Path(tmp))
        sha = hashlib.sha256(spec.config_yaml.encode()).hexdigest()
        metadata = {"clipforge_command": spec.command, "clipforge_config_sha256": sha}
        try:
            return client.submit_job(
                entrypoint=entrypoint(spec),
                runtime_env=runtime_env(spec, package),
                metadata=metadata,
                submission_id=spec.submission_id,
                entrypoint_num_cpus=spec.entrypoint_num_cpus,
                entrypoint_num_gpus=spec.entrypoint_num_gpus,
            )
        except RuntimeError as e:
            raise SubmitError(f"the cluster rejected the job: {e}") from None


def _job_call(fn: Callable[[], Any], job_id: str) -> Any:
    try:
        return fn()
    except RuntimeError as e:
        if "404" in str(e) or "does not exist" in str(e):
            raise SubmitError(f"no job {job_id!r} on this cluster (`clipforge submit list` shows the jobs).") from None
        raise SubmitError(f"request for job {job_id!r} failed: {e}") from None


def job_info(client, job_id: str):
    """`JobDetails` of a job (status, message, entrypoint, metadata, times)."""
    return _job_call(lambda: client.get_job_info(job_id), job_id)


def job_logs(client, job_id: str) -> str:
    """Everything the job's driver has printed so far."""
    return _job_call(lambda: client.get_job_logs(job_id), job_id)


def stop_job(client, job_id: str) -> bool:
    """Ask the cluster to stop a job; False when it had already finished."""
    return bool(_job_call(lambda: client.stop_job(job_id), job_id))


def list_jobs(client) -> list:
    """All jobs the cluster knows, oldest first."""
    return sorted(client.list_jobs(), key=lambda j: j.start_time or 0)


def follow(client, job_id: str, write: Callable[[str], None]) -> str:
    """Stream the job's logs to `write` until it ends; return its final status (SUCCEEDED, FAILED or STOPPED).

    The log stream is a websocket; if it drops before the job ends (head restart, proxy timeout) this falls back
    to polling the status, so the returned status is always the job's real end state.
    """
    job_info(client, job_id)  # an unknown id is a SubmitError, not a websocket error

    async def _tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    try:
        asyncio.run(_tail())
    except RuntimeError as e:
        write(f"\n[clipforge] log stream ended early ({e}); waiting for the job to finish...\n")
    return wait(client, job_id)


def wait(client, job_id: str, poll_s: float = 1.0, timeout_s: float | None = None) -> str:
    """Poll until the job is in a terminal state; returns the status name. `timeout_s` None waits forever."""
    import time

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = str(job_info(client, job_id).status.value)
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise SubmitError(f"job {job_id!r} still {status} after {timeout_s:.0f}s.")
        time.sleep(poll_s)


def exit_code(status: str) -> int:
    """0 for a job that succeeded, 1 for one that failed or was stopped (like `ray job submit`)."""
    return 0 if status == "SUCCEEDED" else 1


def describe(info) -> str:
    """A few lines about a job for `clipforge submit status`."""
    import datetime as dt

    def when(ms: int | None) -> str:
        return dt.datetime.fromtimestamp(ms / 1000).isoformat(timespec="seconds") if ms else "-"

    meta = info.metadata or {}
    lines = [
        f"job:        {info.submission_id}",
        f"status:     {info.status.value}",
        f"command:    {meta.get('clipforge_command', '-')}  ({info.entrypoint})",
        f"started:    {when(info.start_time)}   ended: {when(info.end_time)}",
    ]
    if info.message:
        lines.append(f"message:    {info.message.strip().splitlines()[0]}")
    return "\n".join(lines)
