"""Run log (CSV resume semantics), MFU arithmetic, device-side normalisation."""

import time

import numpy as np
import pyarrow.fs as pafs
import pytest
import torch
from PIL import Image
from torchvision.transforms import Normalize, ToTensor

from training.metrics import MetricWindow, RunLog, peak_tflops_for, read_metrics_csv
from training.step import normalize_images


def _row(step, loss):
    return {"step": step, "epoch": 0, "samples_seen": 32 * step, "loss/contrastive": loss, "train/lr": 1e-3}


def test_run_log_appends_and_truncates_on_resume(tmp_path):
    log = RunLog(pafs.LocalFileSystem(), str(tmp_path), tensorboard=True)
    for step in (5, 10, 15):
        log.write(_row(step, 3.0 - step / 10))
    log.close()
    rows = read_metrics_csv((tmp_path / "metrics.csv").read_text())
    assert [r["step"] for r in rows] == ["5", "10", "15"] and rows[1]["loss/contrastive"] == "2"
    assert list(rows[0])[:4] == ["step", "epoch", "samples_seen", "loss/contrastive"]
    assert any((tmp_path / "tb").iterdir())

    # A restart restored from the step-10 checkpoint: step 15 was logged by the dead attempt and is dropped.
    log = RunLog(pafs.LocalFileSystem(), str(tmp_path), tensorboard=False)
    log.resume_at(10)
    log.write(_row(15, 1.25))
    rows = read_metrics_csv((tmp_path / "metrics.csv").read_text())
    assert [(r["step"], r["loss/contrastive"]) for r in rows] == [("5", "2.5"), ("10", "2"), ("15", "1.25")]


def test_peak_table_prefers_the_longest_match():
    assert peak_tflops_for("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops_for("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops_for("NVIDIA A10G") == 70.0
    assert peak_tflops_for("NVIDIA L4") == 121.0
    assert peak_tflops_for("Some CPU") is None


def test_window_rates_and_mfu():
    window = MetricWindow()
    for _ in range(4):
        window.add(torch.tensor(2.0), wait_s=0.0)
    window.wait_s = 0.05
    window.started = time.perf_counter() - 1.0  # pretend the window took one second
    out = window.summary(global_batch=100, flops_per_sample=1e9, world=2, peak_tflops=1.0)
    assert out["perf/samples_per_s"] == pytest.approx(400, rel=0.02)
    assert out["time/data_wait_frac"] == pytest.approx(0.05, rel=0.02)
    # 3 x 1 GFLOP x 400 samples/s over 2 devices = 0.6 TFLOP/s each, against a 1 TFLOP/s peak.
    assert out["perf/tflops_per_device"] == pytest.approx(0.6, rel=0.02)
    assert out["perf/mfu"] == pytest.approx(0.6, rel=0.02)
    assert float(window.loss_sum) / window.steps == 2.0
    assert "perf/mfu" not in window.summary(100, 1e9, 2, None)


def test_device_normalisation_equals_open_clip_transform():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    want = torch.stack([Normalize(mean, std)(ToTensor()(Image.fromarray(im))) for im in images])
    as_col = lambda v: torch.tensor(v).view(1, 3, 1, 1)  # noqa: E731
    got = normalize_images(torch.from_numpy(images), as_col(mean), as_col(std))
    assert got.shape == (3, 3, 8, 8)
    assert torch.allclose(got, want, atol=1e-6)
