"""Zero-shot evaluation vs CLIP_benchmark: the same checkpoint, the same data, the same machine.

Exports a tiny model (default clipforge-tiny: random init, image projection ridge-fitted to digits so it scores
well above chance; see tests/fixtures/evaluation.py) as an open_clip local-dir and scikit-learn's 1,797 digits in
CLIP_benchmark's webdataset layout, then evaluates zero-shot classification with clipforge
(`evaluation`) and with CLIP_benchmark's own CLI code path (`clip_benchmark eval --dataset wds/digits`), each in a
fresh process, alternating, `--repeats` times. Reports:
  - agreement: |Δ| of acc1, acc5, mean_per_class_recall in percentage points (must be <= 0.1 pp);
  - templates: our ImageNet/CIFAR/MNIST prompt lists vs CLIP_benchmark's en_zeroshot_classification_templates.json;
  - throughput: images/s (median; timed from model load to metrics, imports excluded) and the ratio ours/theirs.
Both sides run fp32 (`--no_amp`) with their default batch sizes; CLIP_benchmark with its default 4 workers.

CLIP_benchmark lives in its own venv (it pins other webdataset/transformers versions):
    python3.11 -m venv /tmp/cb && /tmp/cb/bin/pip install clip-benchmark==1.6.2 requests \\
        torch==2.14.1 torchvision==0.29.1 open_clip_torch==3.3.0
    .venv/bin/python benchmarks/bench_eval.py --cb-python /tmp/cb/bin/python
    .venv/bin/python benchmarks/bench_eval.py --smoke     # clipforge's side only, once: does it run
Top-level imports are stdlib only: the same file runs as the worker in either venv (`--side ours|cb|templates`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = ("acc1", "acc5", "mean_per_class_recall")


def side_ours(
    model_dir: str, wds_dir: str, threads: int, amp: bool, workers: int | None, max_samples: int | None = None
) -> dict:
    """clipforge: load model + benchmark, zero-shot classification; timed without imports."""
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from evaluation.config import EvalConfig
    from evaluation.datasets import load_benchmark
    from evaluation.models import load_model
    from evaluation.run import evaluate_benchmark

    cfg = EvalConfig(
        model=f"local-dir:{model_dir}",
        tasks=["zeroshot_classification"],
        amp=amp,
        num_workers=workers,
        max_samples=max_samples,
    )
    start = time.perf_counter()
    lm = load_model(cfg.model, None, cfg.device)
    bench = load_benchmark(f"wds:{wds_dir}", cfg.max_samples)
    (record,) = evaluate_benchmark(lm, bench, cfg)
    seconds = time.perf_counter() - start
    return {"metrics": record["metrics"], "n": record["n_samples"], "seconds": seconds, "device": lm.device}


def _stub_captioning() -> bool:
    """CLIP_benchmark imports pycocoevalcap (captioning only, ~100 MB of jars) at start-up; stub it when absent."""
    import types

    try:
        import pycocoevalcap  # noqa: F401

        return False
    except ImportError:
        pass
    names = {"tokenizer.ptbtokenizer": "PTBTokenizer", "bleu.bleu": "Bleu", "meteor.meteor": "Meteor",
             "rouge.rouge": "Rouge", "cider.cider": "Cider", "spice.spice": "Spice"}  # fmt: skip
    sys.modules["pycocoevalcap"] = types.ModuleType("pycocoevalcap")
    for sub, cls in names.items():
        parts = sub.split(".")
        for i in range(1, len(parts) + 1):
            sys.modules.setdefault("pycocoevalcap." + ".".join(parts[:i]), types.ModuleType(parts[i - 1]))
        setattr(sys.modules["pycocoevalcap." + sub], cls, type(cls, (), {}))
    return True


def side_cb(model_dir: str, wds_dir: str, threads: int, amp: bool, out_json: str, workers: int = 4) -> dict:
    """CLIP_benchmark: its CLI's main_eval (model load, wds build, zero-shot eval, JSON write), timed."""
    import torch

    torch.set_num_threads(threads)
    stubbed = _stub_captioning()
    from clip_benchmark import cli

    sys.argv = ["clip_benchmark", "eval", "--model", f"local-dir:{model_dir}", "--dataset", "wds/digits",
                "--dataset_root", wds_dir, "--task", "zeroshot_classification", "--quiet",
                "--output", out_json, "--num_workers", str(workers)] + ([] if amp else ["--no_amp"])  # fmt: skip
    _, base = cli.get_parser_args()
    start = time.perf_counter()
    cli.main_eval(base)
    seconds = time.perf_counter() - start
    return {"metrics": json.loads(Path(out_json).read_text())["metrics"], "seconds": seconds, "stubbed": stubbed}


def side_templates() -> dict:
    """CLIP_benchmark's prompt lists for the datasets whose lists we ship."""
    import clip_benchmark.datasets.builder as b

    data = json.loads((Path(b.__file__).parent / "en_zeroshot_classification_templates.json").read_text())
    return {k: data[k] for k in ("imagenet1k", "cifar10", "cifar100", "mnist")}


def prepare(workdir: Path, model: str, copies: int) -> tuple[Path, Path]:
    """`model` (random init, seed 0) with its image projection ridge-fitted to digits' train split, exported as a
    local-dir (so predictions vary and margins are real: a random model predicts one class for every digit), and
    all 1,797 digits, `copies` times over, as wds/digits (test split, at least 4 shards: one per CLIP_benchmark
    DataLoader worker)."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    import open_clip

    from evaluation.datasets import Benchmark, ImageList, Split, load_digits_benchmark
    from evaluation.models import export_local_dir, export_random_local_dir, load_model
    from evaluation.wds import export_wds
    from tests.fixtures.evaluation import fit_visual_projection

    digits = load_digits_benchmark()
    lm = load_model(f"local-dir:{export_random_local_dir(model, workdir / 'random', seed=0)}", device="cpu")
    fit_visual_projection(lm.model, lm.tokenizer, lm.preprocess, digits)
    model_dir = export_local_dir(lm.model, open_clip.get_model_config(model), workdir / "model")
    images = ImageList((digits.test.images.items + digits.train.images.items) * copies)
    both = Split(images, np.tile(np.concatenate([digits.test.labels, digits.train.labels]), copies))
    bench = Benchmark("digits", "classification", both, None, digits.classnames, digits.templates)
    return model_dir, export_wds(bench, workdir / "wds_digits", shard_size=-(-len(both) // 4))


def _worker(python: str, side: str, args: argparse.Namespace, model_dir: Path, wds_dir: Path) -> dict:
    cmd = [python, __file__, "--side", side, "--model-dir", str(model_dir), "--wds-dir", str(wds_dir),
           "--threads", str(args.threads), "--workdir", str(args.workdir)]  # fmt: skip
    cmd += (["--amp"] if args.amp else []) + ([] if args.workers is None else ["--workers", str(args.workers)])
    cmd += ["--cb-workers", str(args.cb_workers)] + (["--smoke"] if args.smoke else [])
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=args.workdir, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare_templates(theirs: dict) -> list[str]:
    """Names of our prompt lists that differ from CLIP_benchmark's."""
    sys.path.insert(0, str(REPO))
    from evaluation.templates import CIFAR_TEMPLATES, IMAGENET_TEMPLATES, MNIST_TEMPLATES

    ours = {"imagenet1k": IMAGENET_TEMPLATES, "cifar10": CIFAR_TEMPLATES, "cifar100": CIFAR_TEMPLATES}
    ours["mnist"] = MNIST_TEMPLATES
    return [k for k in ours if list(ours[k]) != theirs[k]]


def main_driver(args: argparse.Namespace) -> None:
    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir, wds_dir = prepare(args.workdir, args.model, args.copies)
    if args.smoke:  # our side only: CLIP_benchmark lives in another venv that a smoke run does not need
        run = _worker(sys.executable, "ours", args, model_dir, wds_dir)
        print(
            f"smoke: clipforge zero-shot on {run['n']} digits: acc1 {run['metrics']['acc1']:.3f}, "
            f"{run['n'] / run['seconds']:.0f} img/s (CLIP_benchmark side skipped)"
        )
        return
    if args.ours_only:  # where CLIP_benchmark's venv cannot be installed (an offline GPU machine)
        runs = [_worker(sys.executable, "ours", args, model_dir, wds_dir) for _ in range(args.repeats)]
        ips = statistics.median(r["n"] / r["seconds"] for r in runs)
        cmd = f"`.venv/bin/python benchmarks/bench_eval.py --ours-only --device {args.device} --copies {args.copies}`"
        print(
            f"| zero-shot eval, {args.model} (fitted proj.), digits wds ({runs[0]['n']} img), {runs[0]['device']}, "
            f"fp32 | clipforge {ips:.0f} img/s (median of {args.repeats}) | acc1 {runs[0]['metrics']['acc1']:.3f} "
            f"| {cmd} |"
        )
        return
    runs: dict[str, list[dict]] = {"ours": [], "cb": []}
    for _ in range(args.repeats):
        runs["ours"].append(_worker(sys.executable, "ours", args, model_dir, wds_dir))
        runs["cb"].append(_worker(args.cb_python, "cb", args, model_dir, wds_dir))
    n = runs["ours"][0]["n"]
    delta = {m: 100 * abs(runs["ours"][0]["metrics"][m] - runs["cb"][0]["metrics"][m]) for m in METRICS}
    ips = {k: statistics.median(n / r["seconds"] for r in v) for k, v in runs.items()}
    bad_templates = compare_templates(_worker(args.cb_python, "templates", args, model_dir, wds_dir))
    print(json.dumps({"ours": runs["ours"][0]["metrics"], "clip_benchmark": runs["cb"][0]["metrics"]}, indent=1))
    agree = all(d <= 0.1 for d in delta.values()) or args.amp  # under autocast both sides round differently
    print(f"agreement (pp): {', '.join(f'{m} {d:.3f}' for m, d in delta.items())} -> {'OK' if agree else 'FAIL'}")
    print(f"templates equal to CLIP_benchmark's: {'yes' if not bad_templates else 'NO: ' + ', '.join(bad_templates)}")
    opts = (
        f" --device {args.device}"
        + (" --amp" if args.amp else "")
        + (f" --copies {args.copies}" if args.copies > 1 else "")
        + (f" --workers {args.workers}" if args.workers is not None else "")
        + (f" --cb-workers {args.cb_workers}" if args.cb_workers != 4 else "")
    )
    cmd = f"`.venv/bin/python benchmarks/bench_eval.py --cb-python {args.cb_python} --repeats {args.repeats}{opts}`"
    precision = "amp" if args.amp else "fp32"
    workers = "auto" if args.workers is None else args.workers
    where = f"{runs['ours'][0]['device']}, {precision}, {args.threads} threads"
    where += f", workers: ours {workers}, theirs {args.cb_workers}"
    stub = " (pycocoevalcap stubbed)" if runs["cb"][0].get("stubbed") else ""
    print(
        f"| zero-shot eval, {args.model} (fitted proj.), digits wds ({n} img), {where} "
        f"| clipforge {ips['ours']:.0f} img/s | CLIP_benchmark 1.6.2{stub} {ips['cb']:.0f} img/s "
        f"| **{ips['ours'] / ips['cb']:.2f}×** | agreement max |Δ| {max(delta.values()):.3f} pp | {cmd} |"
    )
    if not agree or bad_templates:
        raise SystemExit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cb-python", default="/tmp/cb/bin/python", help="Python of a venv with clip-benchmark.")
    p.add_argument("--model", default="clipforge-tiny", help="open_clip config to random-init and export.")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=REPO / "bench-out" / "eval")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cpu hides GPUs from both sides.")
    p.add_argument("--amp", action="store_true", help="Autocast on both sides (CLIP_benchmark's default).")
    p.add_argument("--copies", type=int, default=1, help="Repeat the 1,797 digits this many times.")
    p.add_argument("--workers", type=int, default=None, help="clipforge's num_workers (default: its auto choice).")
    p.add_argument("--cb-workers", type=int, default=4, help="CLIP_benchmark's --num_workers (its default: 4).")
    p.add_argument("--smoke", action="store_true", help="our side once on 200 digits, no CLIP_benchmark")
    p.add_argument(
        "--ours-only", action="store_true", help="clipforge's side only, --repeats times (no CLIP_benchmark)"
    )
    p.add_argument("--parse-only", action="store_true", help="print the parsed arguments as JSON and exit")
    p.add_argument("--side", choices=["ours", "cb", "templates"], help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--wds-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.parse_only:  # benchmarks/gpu_check.sh --dry-run: the command line parses, nothing runs
        print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}))
        return
    if args.side == "ours":
        max_samples = 200 if args.smoke else None
        print(json.dumps(side_ours(args.model_dir, args.wds_dir, args.threads, args.amp, args.workers, max_samples)))
    elif args.side == "cb":
        out = str(Path(args.workdir) / "cb_result.json")
        print(json.dumps(side_cb(args.model_dir, args.wds_dir, args.threads, args.amp, out, args.cb_workers)))
    elif args.side == "templates":
        print(json.dumps(side_templates()))
    else:
        if args.smoke:
            import tempfile

            args.workdir = Path(tempfile.mkdtemp(prefix="bench-eval-smoke-"))
        args.workdir = args.workdir.resolve()
        main_driver(args)


if __name__ == "__main__":
    main()
