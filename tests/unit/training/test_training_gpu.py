"""GPU paths of a training step: bf16 autocast, fused AdamW, torch.compile + gradient checkpointing, MFU.

Skipped without CUDA; run on a GPU machine with `python -m pytest -m gpu tests/unit/training`.
"""

import math

import pytest
import torch

from tests.fixtures.training import tiny_train_config
from training.metrics import MetricWindow
from training.step import Progress, build_worker, train_step, window_metrics

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def config(**overrides):
    base = {"model.name": "clipforge-tiny", "data.batch_size": 64, "workers.num_workers": 1, "steps": 30}
    return tiny_train_config("unused", "unused", "gpu", **{**base, **overrides})


def fixed_batch(n=64, size=64, ctx=32):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)
    texts = torch.randint(1, 49000, (n, ctx), generator=g)
    return {"image": images, "text": texts}


def test_bf16_step_learns_and_reports_mfu():
    w = build_worker(config(), torch.device("cuda"))
    assert w.amp_dtype == torch.bfloat16 and w.optimizer.defaults["fused"] is True
    assert w.peak_tflops and w.flops_per_sample > 0
    batch, progress, window = fixed_batch(), Progress(), MetricWindow()
    losses = []
    for _ in range(30):
        loss = train_step(w, batch, progress)
        window.add(loss, 0.0)
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 1.0  # memorises one fixed batch
    assert w.model.logit_scale.item() <= math.log(100) + 1e-6
    assert next(w.model.parameters()).dtype == torch.float32  # autocast, not a bf16 copy of the weights
    metrics = window_metrics(w, progress, window)
    assert 0 < metrics["perf/mfu"] < 1 and metrics["mem/max_alloc_gib"] > 0


def test_compile_and_checkpointing_match_eager_first_step():
    batch = fixed_batch()
    eager = build_worker(config(), torch.device("cuda"))
    fancy = build_worker(
        config(**{"model.torch_compile": True, "model.grad_checkpointing": True}), torch.device("cuda")
    )
    l_eager = train_step(eager, batch, Progress()).item()
    l_fancy = train_step(fancy, batch, Progress()).item()
    assert l_fancy == pytest.approx(l_eager, rel=2e-2)
    for a, b in zip(eager.model.parameters(), fancy.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-3)
    # Checkpoints and exports hold the plain module's keys, never `_orig_mod.` ones.
    assert not any(k.startswith("_orig_mod") for k in fancy.model.state_dict())


def test_siglip_bf16_step():
    w = build_worker(config(**{"loss.kind": "siglip"}), torch.device("cuda"))
    losses = [train_step(w, fixed_batch(), Progress(step=i)).item() for i in range(10)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
