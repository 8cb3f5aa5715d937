"""Chance levels beside every result (zero-shot 1/n_classes, recall@k k/n) and `clipforge eval -q`."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.report import progress_line, results_markdown
from evaluation.retrieval import retrieval_chance
from evaluation.zeroshot import classification_chance

REPO = Path(__file__).resolve().parents[3]


def test_classification_chance_is_a_uniform_guess():
    assert classification_chance(10) == {"acc1": 0.1, "acc5": 0.5, "mean_per_class_recall": 0.1}
    three = classification_chance(3)
    assert three["acc1"] == pytest.approx(1 / 3) and math.isnan(three["acc5"])  # NaN like the metric itself


def test_retrieval_chance_is_k_over_n():
    one_caption_each = retrieval_chance(np.arange(10), 10, ks=(1, 5))
    assert one_caption_each == {
        "image_retrieval_recall@1": 0.1,
        "text_retrieval_recall@1": pytest.approx(0.1),
        "image_retrieval_recall@5": 0.5,
        "text_retrieval_recall@5": pytest.approx(0.5),
    }
    # 2 images x 2 captions: one random caption is one of an image's two with p 1/2; two drawn: 1 - C(2,2)/C(4,2)
    two_each = retrieval_chance(np.array([0, 0, 1, 1]), 2, ks=(1, 2, 3))
    assert two_each["text_retrieval_recall@1"] == pytest.approx(0.5)
    assert two_each["text_retrieval_recall@2"] == pytest.approx(1 - 1 / 6)
    assert math.isnan(two_each["image_retrieval_recall@3"]) and two_each["text_retrieval_recall@3"] == 1.0


def test_tables_show_a_chance_row_and_progress_names_it():
    record = {"benchmark": "digits", "task": "zeroshot_classification", "n_samples": 20, "seconds": 1.04,
              "metrics": {"acc1": 0.15, "acc5": 0.5, "mean_per_class_recall": 0.125},
              "chance": classification_chance(10)}  # fmt: skip
    md = results_markdown({"model": "m", "checkpoint": None, "results": [record]})
    assert "| digits | 20 | 15.0 | 50.0 | 12.5 |\n| ↳ chance |  | 10.0 | 50.0 | 10.0 |" in md
    assert progress_line(record) == "digits zeroshot_classification: acc1 15.0 (chance 10.0), 20 samples, 1.0 s"


def run_eval(tmp_path, *flags):
    cmd = [sys.executable, "-m", "pipeline.cli", "eval", *flags, "--model", "clipforge-debug", "-o",
           str(tmp_path), "--set", "max_samples=20", "--set", "tasks=[zeroshot_classification]",
           "--set", "num_workers=0"]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ})


def test_quiet_prints_only_the_tables_and_the_path(tmp_path):
    res = run_eval(tmp_path / "q", "-q")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("# Evaluation of `clipforge-debug`") and "eval:" not in res.stdout
    assert "| ↳ chance |  | 10.0 | 50.0 | 10.0 |" in res.stdout
    assert res.stdout.endswith(f"results: {tmp_path / 'q' / 'results.json'}, {tmp_path / 'q' / 'results.md'}\n")
    assert (tmp_path / "q" / "results.json").is_file() and "↳ chance" in (tmp_path / "q" / "results.md").read_text()


def test_default_prints_a_line_per_result(tmp_path):
    res = run_eval(tmp_path / "v")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "eval: evaluating clipforge-debug on digits (device: auto)"
    assert lines[1].startswith("eval: digits zeroshot_classification: acc1 ")
    assert "(chance 10.0), 20 samples" in lines[1]
