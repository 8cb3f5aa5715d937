"""results.json is strict JSON with CLIP_benchmark's keys; results.md has one table per task."""

import json
import math

from evaluation.report import results_markdown, write_results

RESULTS = {
    "model": "local-dir:/m",
    "checkpoint": None,
    "random_init": False,
    "results": [
        {"benchmark": "digits", "task": "zeroshot_classification", "n_samples": 726, "notes": [],
         "metrics": {"acc1": 0.5, "acc5": 0.91, "mean_per_class_recall": 0.49}},
        {"benchmark": "wds:/x", "task": "zeroshot_classification", "n_samples": 3, "notes": ["n1"],
         "metrics": {"acc1": 1.0, "acc5": math.nan, "mean_per_class_recall": 1.0}},
        {"benchmark": "digits", "task": "linear_probe", "n_samples": 726, "notes": [], "note": "n2",
         "metrics": {"lp_acc1": 0.9, "lp_acc5": 1.0, "lp_mean_per_class_recall": 0.9, "C": 0.1}},
    ],
}  # fmt: skip


def test_markdown_tables():
    md = results_markdown(RESULTS)
    assert "## zeroshot_classification" in md and "## linear_probe" in md and "zeroshot_retrieval" not in md
    assert "| benchmark | n | acc1 | acc5 | mean_per_class_recall |" in md
    assert "| digits | 726 | 50.0 | 91.0 | 49.0 |" in md and "| wds:/x | 3 | 100.0 | – | 100.0 |" in md
    assert "| digits | 726 | 90.0 | 100.0 | 90.0 | 0.1 |" in md
    assert "- wds:/x: n1" in md and "- digits: n2" in md


def test_json_is_strict_nan_becomes_null(tmp_path):
    from evaluation.config import EvalConfig

    out = write_results(RESULTS, tmp_path / "o", EvalConfig())
    data = json.loads((out / "results.json").read_text())
    assert data["results"][1]["metrics"]["acc5"] is None
    assert (out / "results.md").read_text().startswith("# Evaluation of `local-dir:/m`")
    assert "benchmarks:" in (out / "config.yaml").read_text()
