"""End to end on CPU: 2 Ray Train workers learn the synthetic shapes, log, checkpoint and export a local-dir model."""

import json
import math

import open_clip
import pytest
import torch

from evaluation.command import load_eval_config
from evaluation.run import evaluate
from tests.fixtures.training import tiny_train_config, write_shapes_captions, write_synthetic_build
from training.checkpoint import load_checkpoint
from training.config import ModelConfig, OptimConfig
from training.console import progress_line
from training.metrics import read_metrics_csv
from training.model import build_model
from training.optim import build_optimizer
from training.periodic_eval import flat_metrics
from training.trainer import run_training

STEPS = 40


EVAL_EVERY, EVAL_IMAGES = 20, 100


@pytest.fixture(scope="module")
def trained(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("train-cpu")
    build = write_synthetic_build(root / "build", n=512, shard_size=128)
    captions = write_shapes_captions(root / "bench" / "shapes.parquet")
    evals = {"eval.every_steps": EVAL_EVERY, "eval.max_images": EVAL_IMAGES}
    evals["eval.benchmarks"] = f"[digits, 'captions:{captions}']"
    cfg = tiny_train_config(str(build), str(root / "runs"), "cpu-e2e", steps=STEPS, **evals)
    progress = []
    summary = run_training(cfg, on_progress=progress.append)
    return cfg, summary, root / "runs" / "cpu-e2e", progress


def test_runs_the_configured_steps_on_two_workers(trained):
    cfg, summary, run, progress = trained
    assert (summary.steps, summary.samples_seen, summary.world_size) == (STEPS, STEPS * 32, 2)
    assert summary.resumed_from_step == 0 and summary.epochs == 3  # 512 samples / 32 = 16 steps per epoch
    rows = read_metrics_csv((run / "metrics.csv").read_text())
    assert [int(r["step"]) for r in rows] == list(range(4, STEPS + 1, 4))
    assert [int(r["samples_seen"]) for r in rows] == [32 * int(r["step"]) for r in rows]
    assert all(0.0 <= float(r["time/data_wait_frac"]) <= 1.0 and float(r["perf/samples_per_s"]) > 0 for r in rows)
    assert progress and progress[-1]["step"] == STEPS  # the driver saw rank 0's metrics as they came
    assert any((run / "tb").iterdir()) and (run / "config.yaml").is_file()


def test_loss_starts_at_chance_and_falls(trained):
    _, summary, run, _ = trained
    losses = [float(r["loss/contrastive"]) for r in read_metrics_csv((run / "metrics.csv").read_text())]
    chance = math.log(32)  # uniform logits over a global batch of 32
    assert abs(losses[0] - chance) < 0.5, losses
    assert losses[-1] < 0.7 * losses[0], losses
    assert summary.final_loss == pytest.approx(losses[-1], rel=1e-4)


def test_checkpoints_are_pruned_to_num_to_keep(trained):
    _, _, run, _ = trained
    assert sorted(p.name for p in run.glob("checkpoint_0*")) == ["checkpoint_000000020", "checkpoint_000000040"]


def test_export_loads_as_local_dir_with_the_trained_weights(trained):
    _, summary, run, _ = trained
    assert summary.export == str(run / "export") and summary.run_dir == str(run)
    exported, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{summary.export}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{summary.export}")
    trained_model = build_model(ModelConfig(name="clipforge-debug"), seed=123).model  # different init on purpose
    load_checkpoint(run / "checkpoint_000000040", trained_model, build_optimizer(trained_model, OptimConfig()))
    exported.eval()
    trained_model.eval()
    images = torch.randn(4, 3, 32, 32)
    texts = tokenizer(["a small red circle", "a large blue square", "a small green cross", "a large white triangle"])
    with torch.no_grad():
        assert torch.equal(exported.encode_image(images), trained_model.encode_image(images))
        assert torch.equal(exported.encode_text(texts), trained_model.encode_text(texts))
    # The trained model is not the random init: training moved the weights.
    fresh = build_model(ModelConfig(name="clipforge-debug"), seed=0).model.eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.encode_text(texts), exported.encode_text(texts))
    assert preprocess.transforms[0].size == 32


def test_eval_during_training_is_logged_checkpointed_and_shown(trained):
    cfg, summary, run, progress = trained
    rows = read_metrics_csv((run / "metrics.csv").read_text())
    keys = ["eval/digits/acc1", "eval/digits/mean_per_class_recall", "eval/captions_shapes/image_retrieval_recall@1"]
    for row in rows:  # columns added at the first evaluation; empty on steps without one
        assert all((row[k] != "") == (int(row["step"]) % EVAL_EVERY == 0) for k in keys), row
        assert (row["time/eval_s"] != "") == (row[keys[0]] != "") and float(row["time/eval_s"] or 1) > 0
    for step in (EVAL_EVERY, STEPS):
        saved = json.loads((run / f"checkpoint_{step:09d}" / "progress.json").read_text())["eval"]
        logged = next(r for r in rows if int(r["step"]) == step)
        assert saved.keys() >= set(keys)
        assert all(float(logged[k]) == pytest.approx(saved[k], rel=1e-5) for k in keys)
    assert set(summary.eval) == set(saved) and summary.eval == saved
    assert progress[-1]["eval/digits/acc1"] == saved["eval/digits/acc1"]
    assert "eval captions_shapes R@1" in progress_line(progress[-1]) and "digits acc1" in progress_line(progress[-1])


def test_final_eval_equals_clipforge_eval_of_the_export(trained):
    cfg, summary, run, _ = trained
    eval_cfg = load_eval_config(
        overrides=[
            f"max_samples={EVAL_IMAGES}",
            "num_workers=0",
            "tasks=[zeroshot_classification,zeroshot_retrieval]",
        ],
        checkpoint=summary.export,
        benchmarks=",".join(cfg.eval.benchmarks),
    )
    results = evaluate(eval_cfg)["results"]
    assert {r["task"] for r in results} == {"zeroshot_classification", "zeroshot_retrieval"}
    expected = {}
    for record in results:
        expected.update(flat_metrics(record["dataset"], record))
    assert len(expected) >= 8 and summary.eval == expected  # bit for bit: same weights, transform and code path
