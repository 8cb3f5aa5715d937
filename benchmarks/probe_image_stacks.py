"""CPU per image of the image step alone, in one process, for three decode/resize stacks on the same bodies:

  ours      `curation.images.process_image`: sha256, Pillow decode (draft when it applies), exact pHash pixels,
            box resize with centre crop, JPEG q95 — what the download stage runs per image
  cv2_i2d   img2dataset's core work: `cv2.imdecode`, shortest side to S with INTER_AREA, centre crop, JPEG q95
  vips      sha256 + libvips `thumbnail_buffer` (shrink-on-load, centre crop) + JPEG q95 (no pHash), only if `pyvips`
            is importable (not a clipforge dependency: `pip install pyvips-binary pyvips` into a scratch
            environment to try it)

    python benchmarks/probe_image_stacks.py                      # 300 small sources (256–768 px)
    python benchmarks/probe_image_stacks.py --min-side 512 --max-side 2048
    python benchmarks/probe_image_stacks.py --smoke              # 5 images, 1 round: does it run

A probe, not the benchmark: no network, no Ray; `bench_download.py` measures the whole step against img2dataset.
"""

from __future__ import annotations

import os

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one thread, as the per-core comparison needs; before pyvips loads

import argparse  # noqa: E402
import hashlib  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--min-side", type=int, default=256)
    p.add_argument("--max-side", type=int, default=768)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="a tiny run that checks the probe works: 5 images, 1 round")
    args = p.parse_args()
    if args.smoke:
        args.images, args.rounds = 5, 1

    import cv2
    import numpy as np

    from curation.images import ImageConfig, process_image
    from infra.localweb.config import WebConfig
    from infra.localweb.render import image_bytes

    cv2.setNumThreads(1)
    zero = dict(fault_rate=0, dup_exact_rate=0, dup_near_rate=0, dup_url_rate=0, eval_copy_rate=0)
    web = WebConfig(
        seed=7, n_candidates=args.images, min_side=args.min_side, max_side=args.max_side, eval_per_concept=1, **zero
    )
    bodies = [image_bytes(web, i) for i in range(args.images)]
    s = args.size
    cfg = ImageConfig(image_size=s, resize_mode="center_crop", resample="box", min_image_size=1, max_aspect_ratio=100)

    def ours(b: bytes) -> object:
        return process_image(b, cfg)

    def cv2_i2d(b: bytes) -> object:
        a = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
        h, w = a.shape[:2]
        k = s / min(h, w)
        a = cv2.resize(a, (max(s, round(w * k)), max(s, round(h * k))), interpolation=cv2.INTER_AREA)
        h, w = a.shape[:2]
        y, x = (h - s) // 2, (w - s) // 2
        return cv2.imencode(".jpg", a[y : y + s, x : x + s], [cv2.IMWRITE_JPEG_QUALITY, 95])[1]

    stacks: dict[str, Callable[[bytes], object]] = {"ours": ours, "cv2_i2d": cv2_i2d}
    try:
        import pyvips

        pyvips.cache_set_max(0)

        def vips(b: bytes) -> object:
            hashlib.sha256(b).hexdigest()
            return pyvips.Image.thumbnail_buffer(b, s, height=s, crop="centre").jpegsave_buffer(Q=95)

        stacks["vips"] = vips
    except ImportError:
        print("pyvips not importable: vips stack skipped")

    print(f"{args.images} JPEGs, {args.min_side}–{args.max_side} px → {s}² centre crop; CPU ms per image")
    for r in range(args.rounds):
        for name, f in stacks.items():
            for b in bodies[:20]:  # warm caches and lazy imports
                f(b)
            t = time.process_time()
            for b in bodies:
                f(b)
            print(f"round {r + 1}  {name:8s} {1000 * (time.process_time() - t) / len(bodies):.3f}", flush=True)


if __name__ == "__main__":
    main()
