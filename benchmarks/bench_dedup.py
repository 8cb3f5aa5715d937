"""Dedup benchmark: pHash vs imagehash, near-duplicate search at 10^6, and a measured extrapolation to 10^8.

    python benchmarks/bench_dedup.py [--n 1000000] [--images 300] [--quick | --smoke]

1. pHash per image, single thread, outputs asserted bit-identical:
   (a) hash only, on images already decoded (what `phash64` replaces): `imagehash.phash` in a loop vs `phash64`
       on the batch, at several image sizes;
   (b) in the download stage, from JPEG bytes: imagehash on a second, full decode (`imagehash.phash(Image.open)`,
       what an img2dataset + imagehash pipeline adds) vs the marginal cost of our hash on the image the stage has
       already decoded (draft-reduced when the target is small);
   (c) the whole per-image stage: img2dataset's `Resizer` + `imagehash.phash(Image.open)` vs `process_images`
       (one decode: header checks, draft, resize, encode, sha256, pHash).
2. `near_duplicate_clusters` on --n pHash-like hashes (MSB set, 32 bits set) with 1 % planted near copies at
   distance 0 or 2 (what real pHash near-duplicates differ by), single core.
3. Extrapolation to 10^8: candidate pairs per table (items sharing a 31–33-bit key) measured at several N and
   fitted to c·N²; bucketing throughput (rows of (table, key) per core-second) measured at --n; both scaled to
   10^8 hashes × 20 tables. Real pHashes are more skewed than these synthetic ones, so the candidate figure is
   a lower bound; the cluster cost excludes Ray's shuffle.
`--smoke` checks that it runs (a few seconds): tiny sizes, and no img2dataset side (1c is skipped).
Times are CPU seconds of this single-threaded process (other load on a shared machine does not count).
Prints Markdown lines for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # single core means single core, BLAS included
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import imagehash  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_sample_images  # noqa: E402

from curation.images import ImageConfig, decode_image, process_images  # noqa: E402
from curation.neardup import _sort_keys, _table_keys, block_layout, near_duplicate_clusters, table_blocks  # noqa: E402
from curation.phash import phash64, phash64_from_pixels, phash_pixels, to_hex  # noqa: E402

COMMAND = "python benchmarks/bench_dedup.py"


def cpu(fn, repeats: int = 3) -> float:
    """Best CPU time of `repeats` runs of fn()."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def photos(n: int, size: tuple[int, int], seed: int = 0) -> list[Image.Image]:
    """n distinct decoded RGB images of `size`: random crops of scikit-learn's two sample photos, resized."""
    rng = np.random.default_rng(seed)
    src = [Image.fromarray(a) for a in load_sample_images().images]
    out = []
    for i in range(n):
        im = src[i % 2]
        x, y = int(rng.integers(0, 160)), int(rng.integers(0, 100))
        crop = im.crop((x, y, x + 480, y + 320)).resize(size, Image.Resampling.BICUBIC)
        crop.load()
        out.append(crop)
    return out


def jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bench_hash_only(n: int) -> list[str]:
    lines = []
    for size in [(64, 64), (256, 256), (640, 427)]:
        imgs = photos(n, size)
        ref = [str(imagehash.phash(im)) for im in imgs]
        assert to_hex(phash64(imgs)) == ref
        t_ref = cpu(lambda imgs=imgs: [imagehash.phash(im) for im in imgs]) / n
        t_ours = cpu(lambda imgs=imgs: phash64(imgs)) / n
        t_pix = cpu(lambda imgs=imgs: [phash_pixels(im) for im in imgs]) / n
        lines.append(
            f"| pHash, hash only, decoded {size[0]}×{size[1]} | imagehash.phash {t_ref * 1e6:.0f} µs | "
            f"phash64 {t_ours * 1e6:.0f} µs (grayscale + 32×32 LANCZOS {t_pix * 1e6:.0f} µs of it) | "
            f"**{t_ref / t_ours:.1f}×** | `{COMMAND}` |"
        )
    return lines


def bench_from_bytes(n: int) -> list[str]:
    lines = []
    cfg = ImageConfig(image_size=256)
    for size in [(640, 427), (1280, 853), (2048, 1365)]:
        blobs = [jpeg(im) for im in photos(n, size, seed=1)]
        decoded = [decode_image(b, cfg) for b in blobs]
        t_ref = cpu(lambda blobs=blobs: [imagehash.phash(Image.open(io.BytesIO(b))) for b in blobs]) / n

        def ours(decoded=decoded):
            phash64_from_pixels(np.stack([phash_pixels(d.image) for d in decoded]))

        t_ours = cpu(ours) / n
        red = decoded[0].reduction
        lines.append(
            f"| pHash in the download stage, JPEG {size[0]}×{size[1]} → 256 | imagehash on a 2nd full decode "
            f"{t_ref * 1e3:.2f} ms | ours on the stage's decode (draft 1/{red}) {t_ours * 1e3:.2f} ms | "
            f"**{t_ref / t_ours:.1f}×** | `{COMMAND}` |"
        )
    return lines


def load_i2d_resizer():
    spec = importlib.util.find_spec("img2dataset")
    if spec is None:
        return None
    path = Path(spec.submodule_search_locations[0]) / "resizer.py"  # skip the package __init__ (imports torch)
    module_spec = importlib.util.spec_from_file_location("_i2d_resizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def bench_stage(n: int) -> list[str]:
    i2d = load_i2d_resizer()
    if i2d is None:
        return ["| whole image stage | img2dataset not installed | | | |"]
    lines = []
    resizer = i2d.Resizer(image_size=256, resize_mode="center_crop", resize_only_if_bigger=False)
    cfg = ImageConfig(image_size=256, resize_mode="center_crop", resample="box")
    for size in [(640, 427), (2048, 1365)]:
        blobs = [jpeg(im) for im in photos(n, size, seed=2)]

        def theirs(blobs=blobs):
            for b in blobs:
                resizer(io.BytesIO(b))
                imagehash.phash(Image.open(io.BytesIO(b)))

        t_ref = cpu(theirs, 2) / n
        t_ours = cpu(lambda blobs=blobs: process_images(blobs, cfg), 2) / n
        lines.append(
            f"| whole image stage, JPEG {size[0]}×{size[1]} → 256 center_crop | img2dataset Resizer + imagehash "
            f"{t_ref * 1e3:.2f} ms | process_images {t_ours * 1e3:.2f} ms | **{t_ref / t_ours:.1f}×** | "
            f"`{COMMAND}` |"
        )
    return lines


def phash_like(rng: np.random.Generator, n: int, chunk: int = 200_000) -> np.ndarray:
    """Synthetic hashes with real pHash's invariants: MSB (the DC term) set and exactly 32 bits set."""
    out = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        bits = np.zeros((m, 64), dtype=bool)
        bits[:, 0] = True
        np.put_along_axis(bits, np.argsort(rng.random((m, 63)), axis=1)[:, :31] + 1, True, axis=1)
        out.append(np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64))
    return np.concatenate(out)


def plant_swaps(rng: np.random.Generator, h: np.ndarray, frac: float) -> int:
    """Overwrite frac·n items with copies of others, half exact and half with one set/unset bit swap (d = 2)."""
    k = int(len(h) * frac)
    idx = rng.choice(len(h), 2 * k, replace=False)
    src, dst = idx[:k], idx[k:]
    copies = h[src].copy()
    for i in range(k // 2):  # swap: clear one set bit (not the MSB), set one clear bit
        v = int(copies[i])
        ones = [b for b in range(63) if v >> b & 1]
        zeros = [b for b in range(63) if not v >> b & 1]
        copies[i] = np.uint64(v ^ (1 << ones[i % len(ones)]) ^ (1 << zeros[i % len(zeros)]))
    h[dst] = copies
    return k


def candidates_per_table(h: np.ndarray, radius: int) -> float:
    """Mean number of candidate pairs (items sharing a key) per table of the layout covering `radius`."""
    layout, total = block_layout(radius), 0
    tables = table_blocks(radius)
    for blocks in tables:
        sk, _ = _sort_keys(_table_keys(h, layout, blocks), sum(layout[b][1] for b in blocks))
        _, counts = np.unique(sk, return_counts=True)
        total += int((counts * (counts - 1) // 2).sum())
    return total / len(tables)


def extrapolate(n: int, radius: int, rows_per_s: float) -> str:
    """Fit candidates/table = c·N² at N = n/4 … 2n and scale the candidate count and bucketing cost to 10^8."""
    sizes = [n // 4, n // 2, n, 2 * n]
    cands = [candidates_per_table(phash_like(np.random.default_rng(s), s), radius) for s in sizes]
    c = sum(cands) / sum(s**2 for s in sizes)  # fit of c·N², dominated by the largest N
    tables, target = len(table_blocks(radius)), 10**8
    key_bits = np.mean([sum(block_layout(radius)[b][1] for b in t) for t in table_blocks(radius)])
    core_s = tables * target / rows_per_s
    measured = ", ".join(f"{s:.1e}: {cnd:.1f}" for s, cnd in zip(sizes, cands, strict=True))
    return (
        f"| near-dup at 10^8, {tables} tables (k={radius} layout, {key_bits:.1f}-bit keys) | candidates/table "
        f"measured at N = {measured} → {c:.2e}·N² ({c * 2 ** (key_bits + 1):.1f}× uniform keys) | "
        f"**{tables * c * target**2:.1e} candidate pairs**; bucketing {tables * target:.0e} rows at "
        f"{rows_per_s / 1e6:.0f} M rows/core-s = {core_s:.0f} core-s (≈ {core_s / 64:.1f} s on 64 cores, shuffle "
        f"not included) | | `{COMMAND} --n {n}` |"
    )


def bench_neardup(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    h = phash_like(rng, n)
    planted = plant_swaps(rng, h, 0.01)
    t0 = time.process_time()
    rep = near_duplicate_clusters(h, 3)
    t_cluster = time.process_time() - t0
    merged = int((rep != np.arange(n)).sum())
    uniform = rng.integers(0, 2**64, n, dtype=np.uint64)
    t0 = time.process_time()
    near_duplicate_clusters(uniform, 3, exclude_degenerate=False)
    t_uniform = time.process_time() - t0
    layout = block_layout(3)
    t_rows = cpu(lambda: [_sort_keys(_table_keys(h, layout, b), 33) for b in table_blocks(3)], 1)
    rows_per_s = 20 * n / t_rows
    return [
        f"| near-dup clusters, {n:.0e} pHash-like hashes (32 bits set), k=3, 1 core | {planted} planted copies, "
        f"{merged} merged | **{t_cluster:.2f} s** (10 tables: even radius suffices) | goal ≤ 10 s | "
        f"`{COMMAND} --n {n}` |",
        f"| near-dup clusters, {n:.0e} uniform random hashes, k=3, no degenerate filter, 1 core | | "
        f"**{t_uniform:.2f} s** (20 tables) | goal ≤ 10 s | `{COMMAND} --n {n}` |",
        extrapolate(n, 3, rows_per_s),
        extrapolate(n, 2, rows_per_s),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="hashes for the near-dup benchmark")
    ap.add_argument("--images", type=int, default=300, help="images per pHash measurement")
    ap.add_argument("--quick", action="store_true", help="n=100000, images=60")
    ap.add_argument("--smoke", action="store_true", help="n=2000, images=3, no img2dataset side: does it run")
    args = ap.parse_args()
    if args.quick:
        args.n, args.images = 100_000, 60
    if args.smoke:
        args.n, args.images = 2000, 3
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"load average at start: {os.getloadavg()[0]:.2f} (CPU-time measurements)\n")
    print("| measurement | peer | clipforge | ratio | command |")
    print("|---|---|---|---|---|")
    steps = [(bench_hash_only, args.images), (bench_from_bytes, args.images)]
    steps += [] if args.smoke else [(bench_stage, args.images // 3)]  # the peer (img2dataset) side
    for fn, arg in [*steps, (bench_neardup, args.n)]:
        for line in fn(arg):
            print(line, flush=True)


if __name__ == "__main__":
    main()
