"""Worldwide vs English-only curation in miniature, at equal samples seen (#21; reuses balance_ablation's training).

    python benchmarks/worldwide_ablation.py --candidates 3000 --steps 150 --seeds 0,1,2
    python benchmarks/worldwide_ablation.py --smoke      # 200 candidates, 1 seed, 2 steps of 16, one arm trained

One synthetic web where half the captions are not English (de, fr, es, ru, zh, ja, th, ar: the same concepts in their
own words) is built twice by the real `clipforge build` (configs/demo.yaml: text, match, download, dedup, balance):
(a) worldwide — the metadata directory of `clipforge demo` (`metadata build --languages en,de,fr,es,ru,zh,ja,ar`),
every caption matched against its own language's list and balanced at t_lang; (b) English-only — that directory's
en.json as a single-file list (today's English build: LID keeps `en`). The same tiny CLIP is trained on each for the
same number of steps (= samples seen) with the same seed, then evaluated zero-shot with English class names on the
web's held-out split and on digits. Prints a Markdown block for benchmarks/RESULTS.md, whichever way it comes out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def build_arms(work: Path, candidates: int, metadata: Path, smoke: bool) -> tuple[Path, dict, dict[str, str]]:
    from infra.localweb.config import WebConfig
    from infra.localweb.generate import generate
    from infra.localweb.handle import serve_in_thread
    from pipeline.app.demo import demo_build_config
    from pipeline.build import build

    web = work / "web"
    if not (web / "web.json").exists():
        extra = {"eval_per_concept": 1} if smoke else {}
        generate(WebConfig(seed=0, n_candidates=candidates, foreign_rate=0.5, fault_rate=0.0, **extra), web)
    lists = {"worldwide": metadata, "english": metadata / "en.json"}
    runs = {arm: str(work / arm) for arm in lists}
    manifests = {}
    with serve_in_thread(web):
        for arm, run in runs.items():
            cfg = demo_build_config(web, lists[arm], run, candidates)
            t0 = time.monotonic()
            manifests[arm] = build(cfg, say=lambda m: None)
            print(f"build {arm}: {manifests[arm]['counts']} in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return web, manifests, runs


def zero_shot(export: str, benchmark: str) -> float:
    """acc1 of the exported model on the whole test split (`evaluation.run.zeroshot_quick`, no sample cap)."""
    from evaluation.models import load_model
    from evaluation.run import zeroshot_quick

    lm = load_model(f"local-dir:{export}", None, "cpu")
    return float(zeroshot_quick(lm.model, lm.tokenizer, lm.preprocess, benchmark, max_samples=None)["acc1"])


def train_eval(run: str, work: Path, arm: str, seed: int, steps: int, batch: int) -> dict:
    from pipeline.core.config import load_config
    from training.config import TrainConfig
    from training.trainer import run_training

    cfg = load_config(
        TrainConfig,
        REPO / "configs" / "train.yaml",
        [
            f"name={arm}-s{seed}-{steps}",
            f"seed={seed}",
            f"data.manifest={run}",
            f"storage_path={work / 'train'}",
            f"steps={steps}",
            f"data.batch_size={batch}",
            f"optim.warmup_steps={max(10, steps // 10)}",
            f"checkpoint.every_steps={steps}",
            "log.progress=false",
        ],
    )
    t0 = time.monotonic()
    summary = run_training(cfg)
    return {
        "arm": arm,
        "seed": seed,
        "model": cfg.model.name,
        "synthetic": zero_shot(summary.export, f"synthetic:{work / 'web' / 'eval'}"),
        "digits": zero_shot(summary.export, "digits"),
        "samples_seen": summary.samples_seen,
        "train_s": round(time.monotonic() - t0, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=int, default=3000)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--batch", type=int, default=64, help="global batch size (configs/train.yaml's)")
    p.add_argument("--workdir", default="bench-out/worldwide_ablation")
    p.add_argument("--smoke", action="store_true", help="a tiny run that checks the benchmark works")
    args = p.parse_args()
    if args.smoke:
        args.candidates, args.steps, args.seeds, args.batch = 200, 2, "0", 16
        args.workdir = tempfile.mkdtemp(prefix="worldwide-ablation-smoke-")
    os.environ.setdefault("RAY_num_workers_soft_limit", "8")
    from pipeline.app.demo import DEMO_LANGUAGES, demo_metadata
    from pipeline.core.ray_setup import init_ray

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    init_ray()
    metadata = demo_metadata(work, DEMO_LANGUAGES)
    web, manifests, runs = build_arms(work, args.candidates, metadata, args.smoke)
    rows = []
    arms = ["worldwide"] if args.smoke else list(runs)  # the smoke trains one arm: both run the same code
    for seed in [int(s) for s in args.seeds.split(",")]:
        for arm in arms:
            rows.append(train_eval(runs[arm], work, arm, seed, args.steps, args.batch))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    kept = {arm: manifests[arm]["counts"].get("kept") for arm in runs}
    t_by_lang = manifests["worldwide"]["balance"].get("t_by_lang")
    print(
        f"\n### Worldwide vs English-only — `python benchmarks/worldwide_ablation.py --candidates {args.candidates} "
        f"--steps {args.steps} --seeds {args.seeds} --batch {args.batch}`\n"
    )
    print(
        f"Kept images: worldwide {kept['worldwide']}, English-only {kept['english']} "
        f"({kept['worldwide'] / max(kept['english'], 1):.2f}x); t_lang {t_by_lang}; "
        f"{rows[0]['model']}, {args.steps} steps x {args.batch} = {args.steps * args.batch} samples seen per run; "
        "zero-shot with English class names.\n"
    )
    print("| arm | seed | synthetic acc1 | digits acc1 | train s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['seed']} | {r['synthetic']:.1%} | {r['digits']:.1%} | {r['train_s']:.0f} |")
    for arm in arms:
        xs = [r for r in rows if r["arm"] == arm]
        mean_syn, mean_dig = statistics.mean(r["synthetic"] for r in xs), statistics.mean(r["digits"] for r in xs)
        print(f"| **{arm}, mean** | | {mean_syn:.1%} | {mean_dig:.1%} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
