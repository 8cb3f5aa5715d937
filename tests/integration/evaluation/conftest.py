"""Evaluation integration fixtures: torch on 2 threads; a random and a "fitted" tiny model as local-dirs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def fitted_local_dir(tmp_path_factory):
    """clipforge-tiny (seed 0) whose image projection is ridge-fitted to digits' train split, as a local-dir.

    Scores well above chance on digits' test split without training (see tests/fixtures/evaluation.py)."""
    import open_clip

    from evaluation.datasets import load_digits_benchmark
    from evaluation.models import export_local_dir, export_random_local_dir, load_model
    from tests.fixtures.evaluation import fit_visual_projection

    root = tmp_path_factory.mktemp("fitted")
    lm = load_model(f"local-dir:{export_random_local_dir('clipforge-tiny', root / 'random', seed=0)}", device="cpu")
    fit_visual_projection(lm.model, lm.tokenizer, lm.preprocess, load_digits_benchmark(), ridge=1e-4)
    return export_local_dir(lm.model, open_clip.get_model_config("clipforge-tiny"), root / "model")
