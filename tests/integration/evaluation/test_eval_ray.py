"""Evaluation as a Ray task (the cluster-GPU path, here with 0 GPUs on the session's local Ray)."""

import pytest

from evaluation.config import EvalConfig
from evaluation.errors import EvaluationError
from evaluation.run import evaluate, evaluate_on_ray


def test_ray_task_gives_the_same_results_as_in_process(ray_local, tmp_path):
    cfg = EvalConfig(
        model="clipforge-tiny", tasks=["zeroshot_classification"], max_samples=60, device="cpu",
        ray={"enabled": True, "num_gpus": 0, "num_cpus": 0.5}, output_dir=str(tmp_path),
    )  # fmt: skip
    remote = evaluate_on_ray(cfg)
    local = evaluate(cfg)
    assert remote["results"][0]["metrics"] == local["results"][0]["metrics"]
    assert remote["results"][0]["n_samples"] == 60


def test_user_errors_in_the_task_come_back_as_themselves(ray_local, tmp_path):
    cfg = EvalConfig(benchmarks=[f"wds:{tmp_path / 'missing'}"], ray={"enabled": True, "num_cpus": 0.5})
    with pytest.raises(EvaluationError, match="not a directory"):
        evaluate_on_ray(cfg)
