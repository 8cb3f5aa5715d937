"""`clipforge train` input errors: one paragraph, exit 2, reported before Ray starts; console text."""

import pytest

from pipeline.cli import main
from tests.fixtures.training import write_synthetic_build
from training.console import progress_line, summary_text
from training.trainer import TrainSummary


def run_train(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", *args])
    return e.value.code, capsys.readouterr().err


def test_missing_build_is_named_and_ray_never_starts(tmp_path, capsys, monkeypatch):
    import pipeline.core.ray_setup

    started = []
    # Another test in the same process may already have a Ray running, so watch the call, not ray.is_initialized().
    monkeypatch.setattr(pipeline.core.ray_setup, "init_ray", lambda *a, **k: started.append(1))
    code, err = run_train(["--set", f"data.manifest={tmp_path}/nothing"], capsys)
    assert code == 2 and "no build manifest" in err and "data.manifest" in err and "Traceback" not in err
    assert started == []


def test_unknown_model_is_named(tmp_path, capsys):
    build = write_synthetic_build(tmp_path / "b", n=8, shard_size=8)
    code, err = run_train(["--set", f"data.manifest={build}", "--set", "model.name=ViT-Q-99"], capsys)
    assert code == 2 and "unknown model 'ViT-Q-99' (model.name)" in err


def test_bad_config_key_is_named(capsys):
    code, err = run_train(["--set", "optim.betas=[0.9]"], capsys)
    assert code == 2 and "'optim.betas" in err


def test_progress_and_summary_text():
    line = progress_line(
        {
            "step": 40,
            "steps": 300,
            "epoch": 1,
            "loss/contrastive": 2.3114,
            "train/lr": 8.1e-4,
            "train/logit_scale": 15.23,
            "perf/samples_per_s": 812.4,
            "time/data_wait_frac": 0.031,
            "perf/mfu": 0.312,
        }
    )
    assert line == "step 40/300 (epoch 1)  loss 2.311  lr 8.1e-04  scale 15.2  812 samples/s  wait 3%  mfu 31.2%"
    s = TrainSummary("r", "/runs/r", 300, 2, 9600, 1.23456, 100, "/runs/r/export", 2, 61.0)
    text = summary_text(s)
    assert "300 steps (resumed from step 100), 9600 samples seen" in text and "final loss: 1.2346" in text
    assert "local-dir:/runs/r/export" in text
