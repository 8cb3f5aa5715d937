"""`clipforge eval` end to end on CPU: chance for a random model, real scores for a fitted one, every output."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.config import EvalConfig
from evaluation.datasets import load_digits_benchmark
from evaluation.run import evaluate
from pipeline.cli import main


def test_random_init_is_near_chance_on_digits():
    res = evaluate(EvalConfig(model="clipforge-tiny", tasks=["zeroshot_classification"], device="cpu"))
    assert res["random_init"] is True
    (record,) = res["results"]
    m = record["metrics"]
    assert record["n_samples"] == 726 and record["n_classes"] == 10 and record["n_templates"] == 1
    assert 0.04 <= m["acc1"] <= 0.2 and m["mean_per_class_recall"] <= 0.2 and 0.3 <= m["acc5"] <= 0.7


def _captions_parquet(path):
    import io

    d = load_digits_benchmark().limit(40)
    images = []
    for i in range(len(d.test)):
        buf = io.BytesIO()
        d.test.images[i].save(buf, format="PNG")
        images.append(buf.getvalue())
    caps = [[f'a photo of the number: "{y}".', f"digit {y}"] for y in d.test.labels]
    pq.write_table(pa.table({"image": images, "captions": caps}), path)
    return path


def test_cli_on_digits_wds_and_captions(tmp_path, fitted_local_dir):
    from evaluation.wds import export_wds

    wds = export_wds(load_digits_benchmark(), tmp_path / "wds_digits", shard_size=300)
    caps = _captions_parquet(tmp_path / "caps.parquet")
    out = tmp_path / "out"
    argv = ["eval", "--checkpoint", str(fitted_local_dir), "--benchmarks", f"digits,wds:{wds},captions:{caps}",
            "-o", str(out), "--set", "max_samples=300", "--set", "linear_probe.c_grid=[0.1,1.0]"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    res = json.loads((out / "results.json").read_text())
    by = {(r["benchmark"], r["task"]): r for r in res["results"]}
    assert set(by) == {
        ("digits", "zeroshot_classification"), ("digits", "linear_probe"),
        (f"wds:{wds}", "zeroshot_classification"), (f"wds:{wds}", "linear_probe"),
        (f"captions:{caps}", "zeroshot_retrieval"),
    }  # fmt: skip
    zs = by[("digits", "zeroshot_classification")]
    assert set(zs["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}
    assert zs["metrics"]["acc1"] > 0.4 and zs["n_samples"] == 300 and zs["model"] == f"local-dir:{fitted_local_dir}"
    # the same images through the wds reader (PNG, lossless) give the same numbers
    assert by[(f"wds:{wds}", "zeroshot_classification")]["metrics"] == zs["metrics"]
    lp = by[("digits", "linear_probe")]
    assert lp["metrics"]["lp_acc1"] > 0.5 and lp["metrics"]["C"] in (0.1, 1.0) and lp["n_train"] == 1071
    ret = by[(f"captions:{caps}", "zeroshot_retrieval")]["metrics"]
    assert sorted(ret) == sorted(f"{d}_retrieval_recall@{k}" for d in ("image", "text") for k in (1, 5, 10))
    assert all(0 <= v <= 1 for v in ret.values()) and ret["image_retrieval_recall@10"] > 0.3
    md = (out / "results.md").read_text()
    assert "## zeroshot_classification" in md and "## zeroshot_retrieval" in md and "## linear_probe" in md
    assert "local-dir:" in (out / "config.yaml").read_text()


def test_zeroshot_quick_for_training_restores_train_mode(fitted_local_dir):
    from evaluation.models import load_model
    from evaluation.run import zeroshot_quick

    lm = load_model(f"local-dir:{fitted_local_dir}", device="cpu")
    lm.model.train()
    bench = load_digits_benchmark()
    m = zeroshot_quick(lm.model, lm.tokenizer, lm.preprocess, bench, max_samples=200)
    assert lm.model.training and set(m) == {"acc1", "acc5", "mean_per_class_recall"}
    assert m == zeroshot_quick(lm.model, lm.tokenizer, lm.preprocess, "digits", max_samples=200)
    assert m["acc1"] > 0.4 and np.isfinite(m["acc5"])


def test_synthetic_web_held_out_split(tmp_path):
    """The synthetic web generator's eval split (infra/localweb) loads as `synthetic:WEB_DIR` and evaluates."""
    from infra.localweb.config import WebConfig
    from infra.localweb.generate import write_eval_split

    (tmp_path / "web" / "eval").mkdir(parents=True)
    n = write_eval_split(WebConfig(eval_per_concept=5), tmp_path / "web" / "eval")
    cfg = EvalConfig(model="clipforge-tiny", benchmarks=[f"synthetic:{tmp_path / 'web'}"], device="cpu")
    cfg.linear_probe.c_grid = [1.0]
    res = evaluate(cfg)
    zs, lp = res["results"]
    assert zs["task"] == "zeroshot_classification" and zs["n_samples"] == n and zs["n_classes"] == n // 5
    assert zs["n_templates"] == 5 and zs["metrics"]["acc1"] < 0.2  # random init: near chance (1/74)
    assert lp["task"] == "linear_probe" and lp["n_train"] == 3 * n // 5 and "no train split" in lp["note"]
