"""The embed stage's images/s against a plain open_clip inference loop over the same stored images and the same model
on the same device, in one run (#22: goal ≥ 0.9×).

Both sides decode the stored JPEGs, preprocess, embed images and captions in batches of `--batch`. The stage side is
`pipeline.stages.embed.embed_parts` on a local Ray (download parts in, float16 embedding parts committed): measured
end to end (actor start and model load included) and in steady state (the rows over the actor's own per-part
seconds: read, dedup pass, decode, embed, write). The peer is a loop in this process. On CPU both sides get one torch
thread (Ray gives a 0.5-CPU actor OMP_NUM_THREADS=1); on CUDA both use bf16 autocast and the GPU's utilisation is
sampled (nvidia-smi, every 0.2 s) during each side.

    python benchmarks/bench_embed.py                                   # CPU, clipforge-tiny, 1024 images
    python benchmarks/bench_embed.py --device cuda --model ViT-B-32 --images 8192 --batch 256
    python benchmarks/bench_embed.py --smoke
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--model", default="clipforge-tiny", help="an open_clip config name (random init, exported)")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--image-size", type=int, default=256, help="stored image side (the build's image.image_size)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--parts", type=int, default=4, help="download parts the images are spread over")
    ap.add_argument("--smoke", action="store_true", help="64 images, 2 parts: does it run")
    ap.add_argument("--parse-only", action="store_true", help="print the parsed arguments as JSON and exit")
    return ap.parse_args()


def stored_images(n: int, size: int) -> list[bytes]:
    """`n` distinct JPEGs of side `size` (random noise over a gradient: not trivially compressible)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, size, dtype=np.float32)[None, :, None]
    out = []
    for _ in range(n):
        px = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def write_parts(run: Path, images: list[bytes], parts: int) -> list[str]:
    """RUN/work/download/part-*.parquet holding the images (as a build stores them); returns the captions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = run / "work" / "download"
    d.mkdir(parents=True)
    captions = [f"a photo of a red circle number {i}" for i in range(len(images))]
    for p in range(parts):
        idx = list(range(p, len(images), parts))
        table = pa.table(
            {
                "uid": [f"{i:08d}" for i in idx],
                "caption": [captions[i] for i in idx],
                "image": pa.array([images[i] for i in idx], pa.binary()),
                "reject_reason": pa.nulls(len(idx), pa.string()),
            }
        )
        pq.write_table(table, d / f"part-{p:06d}.parquet")
    return captions


class GpuSampler:
    """Mean GPU utilisation (%) from nvidia-smi while the block runs; None without a GPU."""

    def __init__(self, on: bool) -> None:
        self.on, self.samples, self._stop = on, [], threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                self.samples.append(float(out.stdout.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return

    def __enter__(self) -> GpuSampler:
        if self.on:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def mean(self) -> str:
        return f"{sum(self.samples) / len(self.samples):.0f} %" if self.samples else "n/a"


def plain_loop(model_dir: Path, images: list[bytes], captions: list[str], batch: int, device: str) -> float:
    """The peer: decode + preprocess + encode_image / encode_text in batches with open_clip directly; seconds."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}", device=device)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    model.eval()
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")

    def step(s: int) -> None:
        ims = [Image.open(io.BytesIO(b)).convert("RGB") for b in images[s : s + batch]]
        x = torch.stack([preprocess(im) for im in ims]).to(device)
        F.normalize(model.encode_image(x).float(), dim=-1).cpu()
        F.normalize(model.encode_text(tokenizer(captions[s : s + batch]).to(device)).float(), dim=-1).cpu()

    with torch.inference_mode(), amp:
        step(0)  # untimed warm-up (both sides get one)
        t0 = time.perf_counter()
        for s in range(0, len(images), batch):
            step(s)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    args = parse()
    if args.parse_only:
        print(json.dumps(vars(args)))
        return
    if args.smoke:
        args.images, args.parts, args.image_size, args.batch = 64, 2, 64, 32
    import pyarrow.dataset as pads
    import torch

    from evaluation.models import export_random_local_dir
    from pipeline.core.ray_setup import init_ray
    from pipeline.rundir import RunDir
    from pipeline.stages.embed import PARTS_DIR, check_model, embed_parts
    from pipeline.stages.model_configs import EmbedConfig

    if args.device == "cpu":
        torch.set_num_threads(1)  # what a 0.5-CPU Ray actor gets
    tmp = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    model_dir = export_random_local_dir(args.model, tmp / "model", seed=0)
    images = stored_images(args.images, args.image_size)
    captions = write_parts(tmp / "run", images, args.parts)
    with GpuSampler(args.device == "cuda") as peer_gpu:
        peer_s = plain_loop(model_dir, images, captions, args.batch, args.device)
    init_ray(num_cpus=None if args.device == "cuda" else 2)
    cfg = EmbedConfig(
        model=f"local-dir:{model_dir}", batch_size=args.batch, device="auto" if args.device == "cuda" else "cpu"
    )
    run = RunDir(str(tmp / "run"))
    t0 = time.perf_counter()
    with GpuSampler(args.device == "cuda") as stage_gpu:
        embed_parts(cfg, run, [], check_model(cfg), lambda line: None)
    stage_s = time.perf_counter() - t0
    n = pads.dataset(str(tmp / "run" / PARTS_DIR), format="parquet").count_rows()
    assert n == args.images, (n, args.images)
    # the actor's per-part seconds are not returned by embed_parts: re-embed one part in-process for steady state
    from pipeline.stages.embed import EmbedPartsConfig, EmbedPartStage

    stage = EmbedPartStage(
        EmbedPartsConfig(
            embed=cfg, download_dir=run.path("work", "download"), out_dir=str(tmp / "again"), dim=check_model(cfg)
        )
    )
    stage.commit(0)  # untimed warm-up (both sides get one)
    t1 = time.perf_counter()
    rows = sum(stage.commit(p) for p in range(args.parts))
    steady_s = time.perf_counter() - t1
    peer, end_to_end, steady = args.images / peer_s, args.images / stage_s, rows / steady_s
    what = f"{args.model}, {args.images} images of {args.image_size} px, batch {args.batch}, {args.device}"
    print(f"### Embed stage vs a plain open_clip loop: {what}")
    print("| measurement | images/s | ratio vs peer | GPU util |")
    print("|---|---|---|---|")
    print(f"| plain open_clip loop (peer) | {peer:.1f} | 1.00 | {peer_gpu.mean} |")
    print(f"| embed stage, steady state (EmbedPartStage.commit per part) | {steady:.1f} | {steady / peer:.2f} | |")
    shutil.rmtree(tmp, ignore_errors=True)
    e2e = "embed stage end to end (embed_parts: Ray actor start, model load, commit)"
    print(f"| {e2e} | {end_to_end:.1f} | {end_to_end / peer:.2f} | {stage_gpu.mean} |")


if __name__ == "__main__":
    main()
