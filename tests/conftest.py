"""Shared fixtures: one small local Ray per test session, loopback-only environment.

Sections are owned by their areas; append new fixtures under a comment header rather than rewriting.
"""

from __future__ import annotations

import os

import pytest

# --- environment: never phone home, never reach real AWS -------------------------------------------------------
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.pop("AWS_PROFILE", None)


# --- Ray: one small session cluster shared by every test that needs it ------------------------------------------
@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 2 CPUs for the whole session (stages use fractional CPUs so 2 cores do not hang)."""
    from pipeline.core.ray_setup import init_ray, shutdown_ray

    os.environ.pop("RAY_ADDRESS", None)
    info = init_ray(num_cpus=2)
    yield info
    shutdown_ray()


# --- S3: one local S3 server (moto, loopback) per session; dummy credentials only -------------------------------
# Forced at import, not setdefault: a developer's real AWS keys or config must never reach a test, and Ray workers
# started by any fixture inherit these. Endpoint variables are set only while `local_s3` is alive.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    AWS_EC2_METADATA_DISABLED="true",
)
for _var in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def local_s3():
    """A `LocalS3` on 127.0.0.1 (free port) for the session, its env (endpoint, dummy keys, region, checksum mode)
    exported while it runs so subprocesses and Ray workers started meanwhile can reach it; restored afterwards."""
    from infra.locals3.server import LocalS3

    with LocalS3() as server:
        saved = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        try:
            yield server
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def s3_bucket(local_s3):
    """A fresh, empty bucket on the session's local S3, as `s3://name`; deleted with its content afterwards."""
    import uuid

    name = f"cf-test-{uuid.uuid4().hex[:12]}"
    uri = local_s3.create_bucket(name)
    yield uri
    local_s3.delete_bucket(name)
