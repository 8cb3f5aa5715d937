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
    from pipeline.ray_setup import init_ray, shutdown_ray

    os.environ.pop("RAY_ADDRESS", None)
    info = init_ray(num_cpus=2)
    yield info
    shutdown_ray()
