"""Does MetaCLIP balancing help? The claim in miniature, on the synthetic web.

    python benchmarks/balance_ablation.py                       # 8,000 candidates, 2 seeds, 400 steps per run
    python benchmarks/balance_ablation.py --seeds 0,1,2 --steps 600 --candidates 12000
    python benchmarks/balance_ablation.py --smoke               # 150 candidates, 1 seed, 2 steps of 16: does it run

One synthetic web (Zipf-distributed concepts: the head concept holds ~24 % of rows, the bottom 20 concepts ~5 %)
is built twice by the real `clipforge build`: (a) balanced — text, match, download, dedup, balance at t: auto —
and (b) the same pool unbalanced — the same stages without `balance` (matched, downloaded, deduplicated, nothing
capped). The same tiny CLIP (configs/train.yaml's model) is trained on each for the same number of
steps (= samples seen) with the same seed, then evaluated zero-shot on the web's held-out split: acc1 over all
74 concepts and over the tail (the half of the concepts that are rarest among the candidates; the web's own
`web.json` counts say which — ground truth used only here, never by the pipeline). Prints a Markdown block for
benchmarks/RESULTS.md with every run, whichever way it comes out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_both(work: Path, candidates: int, metadata: Path, faults: bool = True) -> tuple[Path, dict, dict[str, str]]:
    from infra.localweb.config import WebConfig
    from infra.localweb.generate import generate
    from infra.localweb.handle import serve_in_thread
    from pipeline.app.demo import demo_build_config
    from pipeline.build import build

    web = work / "web"
    if not (web / "web.json").exists():
        no_faults = {} if faults else {"fault_rate": 0.0, "eval_per_concept": 1}  # smoke: nothing to wait for
        generate(WebConfig(seed=0, n_candidates=candidates, slow_seconds=12.0, **no_faults), web)
    runs = {"balanced": str(work / "balanced"), "unbalanced": str(work / "unbalanced")}
    manifests = {}
    with serve_in_thread(web):
        for arm, run in runs.items():
            cfg = demo_build_config(web, metadata, run, candidates)
            assert cfg.stages[-1] == "balance", f"configs/demo.yaml's stages changed: {cfg.stages}"
            if arm == "unbalanced":  # the same stages without the last one: matched, downloaded, deduplicated
                stages = ",".join(cfg.stages[:-1])
                cfg = demo_build_config(web, metadata, run, candidates, [f"stages=[{stages}]"])
            t0 = time.monotonic()
            manifests[arm] = build(cfg, say=lambda m: None)
            print(f"build {arm}: {manifests[arm]['counts']} in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return web, manifests, runs


def small_metadata(work: Path) -> Path:
    """A few hundred entries naming the synthetic web's concepts (smoke mode: the 500k list takes minutes)."""
    from infra.localweb.concepts import COLOURS, DIGIT_WORDS, SHAPES, TEXTURES

    words = ["0", "1", "7", "a", "photo", "digit", "handwritten", *COLOURS, *SHAPES, *TEXTURES, *DIGIT_WORDS]
    path = work / "metadata-small.json"
    path.write_text(json.dumps(words + [f"{c} {s}" for c in COLOURS for s in SHAPES]))
    return path


def train_eval(run: str, work: Path, arm: str, seed: int, steps: int, tail: np.ndarray, batch: int) -> dict:
    from evaluation.datasets import load_benchmark
    from evaluation.embed import embed_images, embed_prompts
    from evaluation.models import load_model
    from evaluation.zeroshot import class_embeddings, zeroshot_logits
    from pipeline.core.config import load_config
    from training.config import TrainConfig
    from training.trainer import run_training

    cfg = load_config(
        TrainConfig,
        REPO / "configs" / "train.yaml",
        [
            f"name={arm}-s{seed}",
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
    lm = load_model(f"local-dir:{summary.export}", None, "cpu")
    bench = load_benchmark(f"synthetic:{work / 'web' / 'eval'}")
    feats = embed_images(lm.model, lm.preprocess, bench.test.images, 256)
    classes = class_embeddings(embed_prompts(lm.model, lm.tokenizer, bench.classnames, bench.templates, 256))
    pred = zeroshot_logits(feats, classes).argmax(1)
    labels = np.asarray(bench.test.labels)
    in_tail = tail[labels]
    return {
        "arm": arm,
        "seed": seed,
        "model": cfg.model.name,
        "acc1": float((pred == labels).mean()),
        "tail_acc1": float((pred[in_tail] == labels[in_tail]).mean()),
        "head_acc1": float((pred[~in_tail] == labels[~in_tail]).mean()),
        "samples_seen": summary.samples_seen,
        "train_s": round(time.monotonic() - t0, 1),
    }


def tail_concepts(web: Path) -> np.ndarray:
    info = json.loads((web / "web.json").read_text())
    n = len(info["class_names"])
    counts = np.zeros(n)
    for k, v in info["counts"]["by_concept"].items():
        counts[int(k) if str(k).isdigit() else info["class_names"].index(k)] = v
    order = np.argsort(counts, kind="stable")
    tail = np.zeros(n, bool)
    tail[order[: n // 2]] = True
    return tail


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=int, default=8000)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--batch", type=int, default=64, help="global batch size (configs/train.yaml's)")
    p.add_argument("--workdir", default="bench-out/balance_ablation")
    p.add_argument("--smoke", action="store_true", help="a tiny run that checks the benchmark works (seconds)")
    args = p.parse_args()
    if args.smoke:
        args.candidates, args.steps, args.seeds, args.batch = 150, 2, "0", 16
        args.workdir = tempfile.mkdtemp(prefix="balance-ablation-smoke-")
    os.environ.setdefault("RAY_num_workers_soft_limit", "8")
    from pipeline.app.demo import demo_metadata
    from pipeline.core.ray_setup import init_ray

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    init_ray()
    metadata = small_metadata(work) if args.smoke else demo_metadata(work, ["en"])
    web, manifests, runs = build_both(work, args.candidates, metadata, faults=not args.smoke)
    tail = tail_concepts(web)
    rows = []
    # smoke: one arm trains (the other's training is the same code on another build; Ray Train's start-up is ~20 s)
    arms = ("balanced",) if args.smoke else ("balanced", "unbalanced")
    for seed in [int(s) for s in args.seeds.split(",")]:
        for arm in arms:
            rows.append(train_eval(runs[arm], work, arm, seed, args.steps, tail, args.batch))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    kept = {arm: manifests[arm]["counts"].get("kept") for arm in runs}
    print(
        f"\n### Balance ablation — `python benchmarks/balance_ablation.py --candidates {args.candidates} "
        f"--steps {args.steps} --seeds {args.seeds} --batch {args.batch}`\n"
    )
    print(
        f"Kept rows: balanced {kept['balanced']}, unbalanced {kept['unbalanced']}; {rows[0]['model']}, "
        f"{args.steps} steps x {args.batch} = {args.steps * args.batch} samples seen per run; zero-shot on the "
        f"held-out split "
        f"({len(tail)} concepts, tail = the {int(tail.sum())} rarest).\n"
    )
    print("| arm | seed | acc1 (all) | acc1 (tail concepts) | acc1 (head concepts) | train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arm']} | {r['seed']} | {r['acc1']:.1%} | {r['tail_acc1']:.1%} | {r['head_acc1']:.1%} | "
            f"{r['train_s']:.0f} |"
        )
    for arm in arms:
        xs = [r for r in rows if r["arm"] == arm]
        print(
            f"| **{arm}, mean** | | {statistics.mean(r['acc1'] for r in xs):.1%} | "
            f"{statistics.mean(r['tail_acc1'] for r in xs):.1%} | "
            f"{statistics.mean(r['head_acc1'] for r in xs):.1%} | |"
        )
    if args.smoke:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
