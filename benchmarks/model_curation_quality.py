"""Precision and recall of the model-based filters (#22) on a synthetic web with planted targets: caption–image
mismatches removed by `clip_filter`, and semantic duplicates (flips, crops, recolouring: pHash misses them) removed
by `semdedup` against pHash dedup alone.

Generates a web with `caption_mismatch_rate` and `semantic_dup_rate` on, serves it on loopback, builds it with the
demo's build config (configs/demo.yaml) plus `embed, clip_filter, semdedup` using `--model` as the filter model, then
scores the run against the web's answers file. `--run RUN --web WEB` only scores an existing run.

Ground truth (answers.parquet, rows mapped to the run's uids as the text stage makes them; URLs listed more than once
are left out):
- mismatches: `caption_mismatch` among the rows that were embedded (the rows clip_filter scores). Also the ROC AUC of
  the CLIP score against the planted flag (threshold-free) and the base rate (a random filter's precision).
- semantic duplicates: planted pairs (row, `semantic_dup_of`) whose two rows were both downloaded. A pair is caught
  by pHash when dedup rejected either row, by semdedup when semdedup rejected either row. A semdedup rejection is
  correct when the dropped row and the kept row it names show the same source image (same `image_id`: a planted
  semantic, near or exact duplicate); a sweep of eps re-runs `curation.semdedup.semantic_duplicates` on the stored
  embeddings of the rows semdedup saw.

    python benchmarks/model_curation_quality.py --model local-dir:DEMO/run/train/demo-tiny-900/export
    python benchmarks/model_curation_quality.py --run RUN --web WEB       # score an existing run
    python benchmarks/model_curation_quality.py --smoke                   # a random tiny model, 240 rows
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

EPS_SWEEP = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="the filter model: local-dir:EXPORT (e.g. the demo's trained export)")
    ap.add_argument("--workdir", type=Path, help="where the web and run go (default: a temporary directory)")
    ap.add_argument("--size", type=int, default=2000, help="web candidates")
    ap.add_argument("--seed", type=int, default=1, help="web seed (the demo trains on seed 0: 1 is unseen data)")
    ap.add_argument("--mismatch-rate", type=float, default=0.1)
    ap.add_argument("--semantic-dup-rate", type=float, default=0.05)
    ap.add_argument("--keep-fraction", type=float, default=0.9, help="clip_filter.keep_fraction")
    ap.add_argument("--eps", type=float, default=0.01, help="semdedup.eps")
    ap.add_argument("--clusters", type=int, default=20, help="semdedup.n_clusters")
    ap.add_argument("--run", type=Path, help="score this existing run (with --web) instead of building")
    ap.add_argument("--web", type=Path, help="the web whose answers.parquet --run was built from")
    ap.add_argument("--smoke", action="store_true", help="a random tiny model on 240 rows: does it run")
    args = ap.parse_args()
    if args.run is None and args.model is None and not args.smoke:
        ap.error("give --model (build and score), --run with --web (score only), or --smoke")
    if args.run is not None and args.web is None:
        ap.error("--run needs --web")
    return args


def random_model(path: Path) -> str:
    from evaluation.models import export_random_local_dir

    return f"local-dir:{export_random_local_dir('clipforge-tiny', path, seed=0)}"


def build_run(args: argparse.Namespace, work: Path) -> tuple[Path, Path, float]:
    """Generate and serve the web, build it with the model stages; returns (run, web, build seconds)."""
    import time

    from infra.localweb.config import WebConfig
    from infra.localweb.generate import generate
    from infra.localweb.handle import serve_in_thread
    from pipeline.app.demo import DEMO_LANGUAGES, demo_build_config, demo_metadata
    from pipeline.build import build

    web, run = work / "web", work / "run"
    cfg = WebConfig(
        seed=args.seed,
        n_candidates=args.size,
        fault_rate=0.0,  # faults only cost time here: the targets are the plants
        caption_mismatch_rate=args.mismatch_rate,
        semantic_dup_rate=args.semantic_dup_rate,
    )
    if not (web / "web.json").exists():  # a resumed run keeps its web (a new one would get another port)
        generate(cfg, web)
    model = args.model or random_model(work / "model")
    sets = [
        "stages=[text,match,download,dedup,embed,clip_filter,semdedup,balance]",
        f"embed.model={model}",
        "embed.batch_size=128",
        f"clip_filter.keep_fraction={args.keep_fraction}",
        f"semdedup.eps={args.eps}",
        f"semdedup.n_clusters={args.clusters}",
        f"download.rows_per_part={max(60, args.size // 4)}",
    ]
    if args.smoke:
        sets += ["image.image_size=32", "image.min_image_size=16", "image.max_aspect_ratio=4.5"]
    languages = ("en",) if args.smoke else DEMO_LANGUAGES  # the smoke skips building seven more lists
    build_cfg = demo_build_config(web, demo_metadata(work, languages), str(run), args.size, overrides=sets)
    t0 = time.monotonic()
    with serve_in_thread(web, prewarm=args.size):
        build(build_cfg, say=lambda m: print(f"build: {m}", flush=True))
    return run, web, time.monotonic() - t0


def _prf(tp: int, predicted: int, actual: int) -> dict:
    return {
        "tp": tp,
        "predicted": predicted,
        "actual": actual,
        "precision": tp / predicted if predicted else None,
        "recall": tp / actual if actual else None,
    }


def score(run: Path, web: Path) -> dict:
    """The figures of the module docstring for a finished run and its web."""
    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.metrics import roc_auc_score

    from curation.semdedup import semantic_duplicates
    from curation.text import canonical_url, url_uid
    from pipeline.rundir import RunDir
    from pipeline.stages.clip_filter import clip_scores, vectors
    from pipeline.stages.embed import read_embeddings

    answers = pq.read_table(web / "answers.parquet").to_pylist()
    uid_of = [url_uid(canonical_url(a["url"])[0] or a["url"]) for a in answers]
    counts: dict[str, int] = {}
    for u in uid_of:
        counts[u] = counts.get(u, 0) + 1
    by_uid = {u: a for u, a in zip(uid_of, answers, strict=True) if counts[u] == 1}
    uid_of_row = {a["row_id"]: u for u, a in zip(uid_of, answers, strict=True) if counts[u] == 1}

    rejects = pq.read_table(run / "rejects").to_pandas()
    stage_of = dict(zip(rejects.uid, rejects.stage, strict=False))
    emb = read_embeddings(RunDir(str(run)), ["uid", "image_emb", "text_emb"])
    emb_uids = emb["uid"].to_pylist()
    in_emb = set(emb_uids)
    downloaded = in_emb | set(rejects[rejects.stage.isin(["dedup", "eval_dedup"])].uid)

    # clip_filter vs planted mismatches, over the embedded rows with one answers row
    known = np.asarray([u in by_uid for u in emb_uids])
    flag = np.asarray([bool(by_uid[u]["caption_mismatch"]) if u in by_uid else False for u in emb_uids])
    scores = clip_scores(vectors(emb["image_emb"]), vectors(emb["text_emb"]))
    dropped_clip = np.asarray([stage_of.get(u) == "clip_filter" for u in emb_uids])
    k, f, d = known, flag, dropped_clip
    clip = _prf(int((k & f & d).sum()), int((k & d).sum()), int((k & f).sum()))
    clip["rows"] = int(k.sum())
    clip["base_rate"] = float(f[k].mean()) if k.any() else None
    both = k.any() and 0 < f[k].sum() < k.sum()
    clip["auc"] = float(roc_auc_score(f[k], scores[k])) if both else None
    clip["auc_note"] = "ROC AUC of (1 - score) for the mismatch flag"
    if both:
        clip["auc"] = 1.0 - clip["auc"]  # a low score should mean a mismatch
    clip["mean_score"] = {"matched": float(scores[k & ~f].mean()), "mismatched": float(scores[k & f].mean())}

    # semantic duplicates: planted pairs with both rows downloaded
    pairs = []
    for u, a in by_uid.items():
        src = uid_of_row.get(a["semantic_dup_of"]) if a["semantic_dup_of"] >= 0 else None
        if src and u in downloaded and src in downloaded:
            pairs.append((u, src))
    phash = sum(stage_of.get(u) == "dedup" or stage_of.get(s) == "dedup" for u, s in pairs)
    sem_caught = sum(stage_of.get(u) == "semdedup" or stage_of.get(s) == "semdedup" for u, s in pairs)
    clip_gone = sum(stage_of.get(u) == "clip_filter" or stage_of.get(s) == "clip_filter" for u, s in pairs)
    sem_rows = rejects[rejects.stage == "semdedup"]
    image_id = {u: a["image_id"] for u, a in by_uid.items()}
    named = [(u, d.split()[0]) for u, d in zip(sem_rows.uid, sem_rows.detail, strict=True)]  # (dropped, kept)
    same = [image_id.get(u, -1) == image_id.get(kept, -2) for u, kept in named]
    planted = {frozenset(p) for p in pairs}
    strict = [frozenset(p) in planted for p in named]
    sem = {
        "planted_pairs": len(pairs),
        "phash_caught": phash,
        "phash_recall": phash / len(pairs) if pairs else None,
        "semdedup_caught": sem_caught,
        "semdedup_recall": sem_caught / len(pairs) if pairs else None,
        "clip_filter_removed_a_member": clip_gone,
        "semdedup_rejected": len(sem_rows),
        "semdedup_precision_same_image": sum(same) / len(same) if same else None,
        "semdedup_precision_planted_pair": sum(strict) / len(strict) if strict else None,
    }

    # eps sweep on the stored embeddings of the rows semdedup saw (embedded, not dropped by clip_filter)
    seen = np.flatnonzero(~dropped_clip)
    x = vectors(emb["image_emb"]).astype(np.float32)[seen]
    seen_uids = [emb_uids[i] for i in seen]
    pos = {u: i for i, u in enumerate(seen_uids)}
    live_pairs = [(pos[u], pos[s]) for u, s in pairs if u in pos and s in pos]
    info = json.loads((run / "dedup" / "semdedup.json").read_text())
    sweep = []
    for eps in EPS_SWEEP:
        mask = semantic_duplicates(x, eps=eps, n_clusters=info["clusters"], seed=0) if len(x) else np.zeros(0, bool)
        caught = sum(bool(mask[i] or mask[j]) for i, j in live_pairs)
        sweep.append(
            {
                "eps": eps,
                "dropped": int(mask.sum()),
                "recall": caught / len(live_pairs) if live_pairs else None,
                "share_planted": caught / int(mask.sum()) if mask.sum() else None,
            }
        )
    sem["sweep_pairs"] = len(live_pairs)
    if live_pairs:  # how close the model puts a planted pair: its cosine, and whether each is the other's nearest
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        cos = np.asarray([float(xn[i] @ xn[j]) for i, j in live_pairs])
        nearest = []
        for i, j in live_pairs:
            sims = xn @ xn[i]
            sims[i] = -np.inf
            nearest.append(int(np.argmax(sims)) == j)
        sem["pair_cosine"] = {"min": float(cos.min()), "median": float(np.median(cos)), "max": float(cos.max())}
        sem["pair_is_nearest"] = float(np.mean(nearest))
    sem["sweep"] = sweep
    manifest = json.loads((run / "manifest.json").read_text())
    return {"run": str(run), "web": str(web), "clip_filter": clip, "semdedup": sem, "counts": manifest.get("counts")}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _cos(c: dict | None) -> str:
    return "—" if c is None else f"min {c['min']:.3f}, median {c['median']:.3f}, max {c['max']:.3f}"


def markdown(r: dict) -> str:
    c, s = r["clip_filter"], r["semdedup"]
    lines = [
        "### Model-based curation quality",
        "",
        "| target | removed by | precision | recall | detail |",
        "|---|---|---|---|---|",
        f"| planted caption mismatches ({c['actual']} of {c['rows']} embedded rows, base rate {_pct(c['base_rate'])})"
        f" | clip_filter | {_pct(c['precision'])} | {_pct(c['recall'])} | {c['predicted']} rejected; AUC "
        f"{c['auc'] if c['auc'] is None else round(c['auc'], 3)}; mean score matched "
        f"{c['mean_score']['matched']:.3f} vs mismatched {c['mean_score']['mismatched']:.3f} |",
        f"| planted semantic duplicate pairs ({s['planted_pairs']}, both rows downloaded) | pHash dedup alone | — "
        f"| {_pct(s['phash_recall'])} | {s['phash_caught']} pairs |",
        f"| same | semdedup | {_pct(s['semdedup_precision_same_image'])} same image "
        f"({_pct(s['semdedup_precision_planted_pair'])} the planted pair) | {_pct(s['semdedup_recall'])} | "
        f"{s['semdedup_rejected']} rejected; {s['clip_filter_removed_a_member']} pairs lost a row to clip_filter |",
        "",
        f"semdedup eps sweep on the stored embeddings ({s['sweep_pairs']} planted pairs semdedup saw; their cosine "
        f"{_cos(s.get('pair_cosine'))}; the partner is the nearest neighbour for {_pct(s.get('pair_is_nearest'))}):",
        "",
        "| eps | dropped | planted pairs caught | dropped that are in a planted pair |",
        "|---|---|---|---|",
    ]
    for w in s["sweep"]:
        lines.append(f"| {w['eps']:g} | {w['dropped']} | {_pct(w['recall'])} | {_pct(w['share_planted'])} |")
    return "\n".join(lines)


def main() -> None:
    args = parse()
    if args.smoke:
        args.size, args.clusters, args.eps = 240, 4, 0.02
    if args.run is not None:
        run, web, seconds = args.run, args.web, None
    else:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="model_quality_"))
        work.mkdir(parents=True, exist_ok=True)
        run, web, seconds = build_run(args, work)
    result = score(run, web)
    result["build_seconds"] = None if seconds is None else round(seconds, 1)
    print(json.dumps(result, indent=2, default=str))
    print(markdown(result))


if __name__ == "__main__":
    main()
