"""Pipeline integration fixtures: one real text-only build per session, shared by the build and report tests."""

from __future__ import annotations

import pytest

from pipeline.build import build
from tests.fixtures.builds import text_build_config, text_metadata, text_web


@pytest.fixture(scope="session")
def web(tmp_path_factory):
    return text_web(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="session")
def metadata(tmp_path_factory):
    return text_metadata(tmp_path_factory.mktemp("meta") / "metadata.json")


@pytest.fixture(scope="session")
def text_build(ray_local, web, metadata, tmp_path_factory):
    """(run directory, manifest) of a [text, match, balance] build of `web`; read-only: copy it to change it."""
    out = tmp_path_factory.mktemp("text_run")
    return out, build(text_build_config(web, metadata, out), say=lambda m: None)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random clipforge-tiny exported as a local-dir model (the model stages' tests)."""
    from evaluation.models import export_random_local_dir

    return export_random_local_dir("clipforge-tiny", tmp_path_factory.mktemp("tiny") / "model", seed=0)
