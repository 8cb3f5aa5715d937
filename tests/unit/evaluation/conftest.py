"""Evaluation unit-test fixtures: torch limited to 2 threads; one random-init tiny model exported per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_local_dir(tmp_path_factory):
    """clipforge-tiny, random init with seed 0, exported as an open_clip local-dir."""
    from evaluation.models import export_random_local_dir

    return export_random_local_dir("clipforge-tiny", tmp_path_factory.mktemp("tiny") / "model", seed=0)
