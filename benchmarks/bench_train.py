"""Benchmark: clipforge's trainer (Ray Data -> Ray Train) vs a plain open_clip-style loop, same model/loss/data.

    python benchmarks/bench_train.py              # 3 rounds of 160 steps each, clipforge-tiny, batch 64
    python benchmarks/bench_train.py --quick      # 1 round of 48 steps
    python benchmarks/bench_train.py --smoke      # 1 round of 16 steps at batch 8: does it run (exit 0 anyway)
    python benchmarks/bench_train.py --gpu        # CUDA: ViT-B-32 step, bf16, eager and compiled; samples/s + MFU
    python benchmarks/bench_train.py --levers     # CPU train_step: accum_freq, patch_dropout, grad ckpt, compile

Both sides train the same open_clip model (random init, same seed) with the same ClipLoss, AdamW (wd 0.2 on >= 2-D
weights, betas (0.9, 0.98), eps 1e-6), warmup + cosine schedule and logit-scale clamp, on the same synthetic
build's shards (JPEG in WebDataset tars), with the same augmentation (RandomResizedCrop scale (0.9, 1.0)) and
tokenizer. The peer is what open_clip's own trainer does on one process: a torch DataLoader with 1 worker process
that decodes, augments and tokenizes, feeding a single-process loop with 1 torch thread. clipforge runs 1 Ray
Train worker (1 CPU, 1 torch thread) fed by Ray Data tasks on the other core. Throughput is measured over the
steps after the first `--skip` (imports and pipeline start are excluded on both sides; epoch restarts are not).
Rounds alternate between the two so load drift hits both; the ratio compares the best round of each (on a shared
box other jobs only ever lower a round) and every round is printed. Exit status 1 when clipforge reaches less
than 0.9x the peer's samples/s or waits on data for 10 % or more of its step time (median round).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# As `clipforge train` does for a local Ray: keep idle data processes warm across epochs (see docs/training.md).
os.environ.setdefault("RAY_num_workers_soft_limit", "8")


def plain_loop(build: Path, model_name: str, batch: int, steps: int, skip: int, seed: int = 0) -> dict:
    """The open_clip-style baseline; returns steady samples/s and data-wait fraction over steps > skip."""
    import open_clip
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, IterableDataset

    from pipeline.core.tar import iter_samples
    from training.config import ModelConfig, OptimConfig
    from training.model import build_model, get_tokenizer
    from training.optim import build_optimizer, lr_at, set_lr

    torch.set_num_threads(1)
    built = build_model(ModelConfig(name=model_name), seed=seed)
    model = built.model
    size, pp = built.image_size, built.preprocess_cfg
    transform = open_clip.image_transform(size, is_train=True, mean=pp["mean"], std=pp["std"])
    tokenizer = get_tokenizer(model_name)
    tars = sorted((build / "shards").glob("*.tar"))

    class Shards(IterableDataset):
        def __iter__(self):
            while True:  # epochs back to back, like open_clip's resampled webdataset
                for path in tars:
                    with path.open("rb") as f:
                        for sample in iter_samples(f):  # shards are key-ordered: {key}.jpg, .txt, .json
                            img = Image.open(io.BytesIO(sample["jpg"])).convert("RGB")
                            yield transform(img), tokenizer([sample["txt"].decode()])[0]

    loader = DataLoader(Shards(), batch_size=batch, num_workers=1, prefetch_factor=4, persistent_workers=True)
    loss_fn = open_clip.ClipLoss()
    optim_cfg = OptimConfig(lr=1e-3, warmup_steps=10)
    optimizer = build_optimizer(model, optim_cfg)
    batches = iter(loader)
    waited = elapsed = 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        images, texts = next(batches)
        t1 = time.perf_counter()
        set_lr(optimizer, lr_at(step, optim_cfg, steps))
        out = model(images, texts)
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step >= skip:
            waited, elapsed = waited + (t1 - t0), elapsed + (time.perf_counter() - t0)
    return {"samples_per_s": batch * (steps - skip) / elapsed, "data_wait_frac": waited / elapsed}


def clipforge_run(
    build: Path, storage: Path, name: str, model_name: str, batch: int, steps: int, skip: int, **extra
) -> dict:
    """clipforge's trainer on 1 Ray Train worker; steady figures from its metrics.csv windows after `skip`.
    `extra`: more config overrides (dotted keys), e.g. the GPU settings of `--gpu --with-data`."""
    from tests.fixtures.training import tiny_train_config
    from training.metrics import read_metrics_csv
    from training.trainer import run_training

    every = 8
    cfg = tiny_train_config(
        str(build),
        str(storage),
        name,
        steps=steps,
        **{
            "model.name": model_name,
            "data.batch_size": batch,
            "data.decode_cpus": 0.5,
            "workers.num_workers": 1,
            "workers.cpus_per_worker": 1,
            "optim.lr": 1e-3,
            "optim.warmup_steps": 10,
            "checkpoint.every_steps": steps,
            "log.every_steps": every,
            "log.tensorboard": False,
            "export.enabled": False,
            **extra,
        },
    )
    run_training(cfg)
    rows = [r for r in read_metrics_csv((storage / name / "metrics.csv").read_text()) if int(r["step"]) > skip]
    seconds = [float(r["time/step_s"]) * every for r in rows]
    waits = [float(r["time/data_wait_frac"]) * s for r, s in zip(rows, seconds, strict=True)]
    out = {"samples_per_s": batch * every * len(rows) / sum(seconds), "data_wait_frac": sum(waits) / sum(seconds)}
    if rows and rows[0].get("perf/mfu"):
        out["mfu"] = statistics.median(float(r["perf/mfu"]) for r in rows)
    return out


def gpu_data_run(args) -> dict:
    """The whole trainer on one GPU (Ray Data decoding on the host's other cores -> 1 Ray Train worker, bf16):
    samples/s, data-wait and MFU from metrics.csv, on a synthetic build of 256 px JPEGs."""
    from pipeline.core.ray_setup import init_ray
    from tests.fixtures.training import write_synthetic_build

    work = Path(tempfile.mkdtemp(prefix="bench-train-gpu-"))
    build = write_synthetic_build(work / "build", n=args.samples, shard_size=256, px=256)
    init_ray()
    cpus = os.cpu_count() or 2
    gpu = {"workers.use_gpu": True, "workers.cpus_per_worker": 2, "data.decode_cpus": 1, "data.prefetch_batches": 4}
    steps = max(args.steps * 2, args.skip + 16)
    r = clipforge_run(build, work / "runs", "gpu-data", args.model, args.batch, steps, args.skip, **gpu)
    return {**r, "decode_cpus": cpus - 2, "steps": steps}


def gpu_step_bench(model_name: str, batch: int, steps: int, compile_model: bool) -> dict:
    """GPU: clipforge's `train_step` vs the same step written inline open_clip-style, on one device-resident batch
    (the model step alone, no data loading); samples/s and MFU for each."""
    import open_clip
    import torch

    from tests.fixtures.training import tiny_train_config
    from training.metrics import MetricWindow
    from training.optim import build_optimizer
    from training.step import Progress, build_worker, train_step, window_metrics

    overrides = {"model.name": model_name, "data.batch_size": batch, "workers.num_workers": 1, "steps": 10**6}
    overrides["model.torch_compile"] = compile_model
    cfg = tiny_train_config("unused", "unused", "gpu-bench", **overrides)
    w = build_worker(cfg, torch.device("cuda"))
    size, ctx = w.built.image_size, w.built.context_length
    g = torch.Generator(device="cuda").manual_seed(0)
    data = {
        "image": torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, device="cuda", generator=g),
        "text": torch.randint(1, 49000, (batch, ctx), device="cuda", generator=g),
    }

    def timed(step_fn) -> float:
        for _ in range(10):  # warm-up (and compilation)
            step_fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step_fn()
        torch.cuda.synchronize()
        return batch * steps / (time.perf_counter() - t0)

    progress, window = Progress(), MetricWindow()
    ours = timed(lambda: train_step(w, data, progress))
    window.add(torch.zeros((), device="cuda"), 0.0)
    window_metrics(w, progress, window)  # exercises the metrics path on CUDA

    model = w.built.model  # same architecture, fresh optimizer: the plain open_clip-style step
    plain_model = torch.compile(model) if compile_model else model
    optimizer = build_optimizer(model, cfg.optim)
    loss_fn = open_clip.ClipLoss()
    mean, std = w.mean, w.std

    def plain_step() -> None:
        images = data["image"].permute(0, 3, 1, 2).float().div(255).sub(mean).div(std)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = plain_model(images, data["text"])
            loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))

    peer = timed(plain_step)
    tflops = lambda sps: 3 * w.flops_per_sample * sps / 1e12  # noqa: E731
    return {
        "device": torch.cuda.get_device_name(),
        "ours": ours,
        "peer": peer,
        "mfu_ours": tflops(ours) / w.peak_tflops,
        "mfu_peer": tflops(peer) / w.peak_tflops,
        "gflops_fwd_per_sample": w.flops_per_sample / 1e9,
        "peak_tflops": w.peak_tflops,
    }


LEVERS = {
    "baseline": {},
    "optim.accum_freq=2": {"optim.accum_freq": 2},
    "model.patch_dropout=0.5": {"model.patch_dropout": 0.5},
    "model.grad_checkpointing": {"model.grad_checkpointing": True},
    "model.torch_compile": {"model.torch_compile": True},
}
"""The training levers `--levers` measures, each alone against the baseline: config overrides."""


def lever_worker(model_name: str, batch: int, device: str, overrides: dict):
    """A `train_step` closure for clipforge's step with `overrides` on resident random micro-batches (no data
    loading), warmed up by 3 steps (compilation included there); returns (step, samples per step)."""
    import torch

    from tests.fixtures.training import tiny_train_config
    from training.step import Progress, build_worker, train_step

    base = {"model.name": model_name, "data.batch_size": batch, "workers.num_workers": 1, "steps": 10**6}
    base["workers.cpus_per_worker"] = 1  # one torch thread on CPU: the box is shared
    cfg = tiny_train_config("unused", "unused", "lever-bench", **{**base, **overrides})
    dev = torch.device(device)
    w = build_worker(cfg, dev)
    size, ctx, k = w.built.image_size, w.built.context_length, cfg.optim.accum_freq
    g = torch.Generator(device=dev).manual_seed(0)
    micro = [
        {
            "image": torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, device=dev, generator=g),
            "text": torch.randint(1, 49000, (batch, ctx), device=dev, generator=g),
        }
        for _ in range(k)
    ]
    progress = Progress()
    step = lambda: train_step(w, micro, progress)  # noqa: E731
    for _ in range(3):
        step()
    return step, batch * k


def lever_round(step, per_step: int, steps: int, device: str) -> dict:
    """samples/s of `steps` calls of `step`, and peak device memory on CUDA."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    out = {"samples_per_s": per_step * steps / (time.perf_counter() - t0)}
    if cuda:
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def levers_main(args) -> int:
    """Every lever's step built and warmed once, then timed in `--rounds` alternating rounds; best round each."""
    workers = {name: lever_worker(args.model, args.batch, args.device, o) for name, o in LEVERS.items()}
    rounds: dict[str, list[dict]] = {name: [] for name in LEVERS}
    for r in range(args.rounds):
        for name, (step, per_step) in workers.items():
            rounds[name].append(lever_round(step, per_step, args.steps, args.device))
        print(f"round {r}: {[(n, round(x[-1]['samples_per_s'], 1)) for n, x in rounds.items()]}", file=sys.stderr)
    cmd = f"python benchmarks/bench_train.py --levers --device {args.device} --model {args.model} --batch {args.batch}"
    print(f"\n### Training levers, model step alone — `{cmd} --steps {args.steps} --rounds {args.rounds}`\n")
    print("| lever | samples/s, best round | per round | vs baseline | peak memory |")
    print("|---|---|---|---|---|")
    best = {name: max(x["samples_per_s"] for x in xs) for name, xs in rounds.items()}
    for name, xs in rounds.items():
        per = ", ".join(f"{x['samples_per_s']:.1f}" for x in xs)
        mem = f"{xs[-1]['peak_gib']:.2f} GiB" if "peak_gib" in xs[-1] else "n/a (CPU)"
        print(f"| {name} | {best[name]:.1f} | {per} | {best[name] / best['baseline']:.2f}x | {mem} |")
    return 0


def gpu_main(args) -> int:
    rows = []
    for compile_model in (False, True):
        r = gpu_step_bench(args.model, args.batch, args.steps, compile_model)
        rows.append((compile_model, r))
        print(f"compile={compile_model}: {r}", file=sys.stderr, flush=True)
    cmd = f"python benchmarks/bench_train.py --gpu --model {args.model} --batch {args.batch} --steps {args.steps}"
    print(f"\n### Training step on GPU — `{cmd}`\n")
    print("| step | torch.compile | samples/s | MFU (bf16 peak) | device |")
    print("|---|---|---|---|---|")
    for compile_model, r in rows:
        for who, key in (("plain open_clip-style", "peer"), ("clipforge train_step", "ours")):
            print(f"| {who} | {compile_model} | {r[key]:.0f} | {r['mfu_' + key]:.1%} | {r['device']} |")
    r = rows[0][1]
    print(
        f"\n{args.model}: {r['gflops_fwd_per_sample']:.2f} GFLOP forward per sample (FlopCounterMode), "
        f"peak {r['peak_tflops']:.0f} TFLOP/s bf16 dense; batch {args.batch}, bf16 autocast, fused AdamW."
    )
    if args.with_data:
        d = gpu_data_run(args)
        print(f"with data: {d}", file=sys.stderr, flush=True)
        print(
            f"\n| whole trainer ({args.model}, batch {args.batch}, 256 px JPEGs, {d['decode_cpus']} decode CPUs) "
            f"| samples/s | MFU | data-wait |\n|---|---|---|---|"
        )
        mfu = f"{d['mfu']:.1%}" if "mfu" in d else "n/a"
        print(
            f"| Ray Data -> 1 Ray Train GPU worker, {d['steps']} steps | {d['samples_per_s']:.0f} | {mfu} "
            f"| {d['data_wait_frac']:.1%} |"
        )
    return 0 if all(r["ours"] >= 0.9 * r["peer"] for _, r in rows) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="clipforge-tiny")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--skip", type=int, default=16, help="steps excluded from the figures (start-up)")
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--smoke", action="store_true", help="batch 8, 16 steps, 64 samples, 1 round; exit 0 anyway")
    p.add_argument("--gpu", action="store_true", help="model step on CUDA (bf16), no data loading, no Ray")
    p.add_argument("--levers", action="store_true", help="train_step with each lever (accum_freq, patch_dropout, ...)")
    p.add_argument("--device", default="cpu", help="--levers: cpu or cuda")
    p.add_argument("--with-data", action="store_true", help="--gpu: also the whole trainer (Ray Data) on one GPU")
    p.add_argument("--exact-order", action="store_true", help="clipforge with data.exact_order (deterministic order)")
    p.add_argument("--parse-only", action="store_true", help="print the parsed arguments as JSON and exit")
    args = p.parse_args()
    if args.parse_only:  # benchmarks/gpu_check.sh --dry-run: every command line parses, nothing runs
        print(json.dumps(vars(args)))
        return 0
    if args.levers:
        if "--steps" not in sys.argv:
            args.steps = 4 if args.smoke else 20
        if args.smoke:
            args.model, args.batch, args.rounds = "clipforge-debug", 8, 1
        return levers_main(args)
    if args.gpu:
        if "--model" not in sys.argv:
            args.model = "ViT-B-32"
        if "--batch" not in sys.argv:
            args.batch = 256
        if "--steps" not in sys.argv:
            args.steps = 30
        return gpu_main(args)
    if args.quick:
        args.steps, args.rounds = 48, 1
    if args.smoke:  # 16 steps: two of clipforge's 8-step metric windows, the first one skipped
        args.batch, args.steps, args.skip, args.samples, args.rounds = 8, 16, 4, 64, 1

    from pipeline.core.ray_setup import init_ray
    from tests.fixtures.training import write_synthetic_build

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    build = write_synthetic_build(work / "build", n=args.samples, shard_size=256, px=80)
    init_ray(num_cpus=2)
    peer, ours = [], []
    for r in range(args.rounds):
        peer.append(plain_loop(build, args.model, args.batch, args.steps, args.skip))
        extra = {"data.exact_order": True} if args.exact_order else {}
        ours.append(
            clipforge_run(build, work / "runs", f"bench-{r}", args.model, args.batch, args.steps, args.skip, **extra)
        )
        print(f"round {r}: peer {peer[-1]}  clipforge {ours[-1]}", file=sys.stderr, flush=True)

    best, best_peer = max(x["samples_per_s"] for x in ours), max(x["samples_per_s"] for x in peer)
    ratios = [o["samples_per_s"] / q["samples_per_s"] for o, q in zip(ours, peer, strict=True)]
    wait = statistics.median(x["data_wait_frac"] for x in ours)
    wait_peer = statistics.median(x["data_wait_frac"] for x in peer)
    ratio = best / best_peer
    cmd = "python benchmarks/bench_train.py" + (" --quick" if args.quick else "")
    cmd += " --exact-order" if args.exact_order else ""
    what = f"{args.model}, batch {args.batch}, {args.steps} steps ({args.skip} skipped), {args.samples} samples, CPU"
    print(f"\n### Training throughput — `{cmd}`\n")
    print("| trainer | samples/s, best round | samples/s, per round | data-wait (median) | setup |")
    print("|---|---|---|---|---|")
    for who, xs, b, w in (
        ("plain open_clip-style loop (DataLoader, 1 worker)", peer, best_peer, wait_peer),
        (f"clipforge (Ray Data + Ray Train, 1 worker{', exact_order' if args.exact_order else ''})", ours, best, wait),
    ):
        rounds = ", ".join(f"{x['samples_per_s']:.1f}" for x in xs)
        print(f"| {who} | {b:.1f} | {rounds} | {w:.1%} | {what} |")
    print(
        f"\nclipforge / peer, best round vs best round = **{ratio:.2f}x** (goal >= 0.9x; per-round ratios "
        f"{', '.join(f'{r:.2f}' for r in ratios)}, rounds alternate); clipforge data-wait {wait:.1%} (goal < 10 %). "
        "Best-of-rounds because this 2-core box is shared: other jobs' load only ever lowers a round."
    )
    return 0 if (ratio >= 0.9 and wait < 0.10) or args.smoke else 1  # a smoke run checks that it works


if __name__ == "__main__":
    sys.exit(main())
