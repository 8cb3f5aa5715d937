"""Download benchmark: images/s through download → decode → resize → encode (→ pHash for ours), clipforge on Ray Data
vs img2dataset itself, side by side in one run on the same URLs from the synthetic web on loopback.

    python benchmarks/bench_download.py                 # 6,000 URLs, 256–768 px JPEGs → 256² center crop, ~3 min
    python benchmarks/bench_download.py --quick         # 1,200 URLs over 200 images
    python benchmarks/bench_download.py --smoke         # does it run: 20 URLs, `fused` + `hosts-polite`, no peer
    python benchmarks/bench_download.py --min-side 512 --max-side 2048 --images 300 --n 3000   # large sources
    python benchmarks/bench_download.py --sides i2d,fused,parts --rounds 3
    python benchmarks/bench_download.py --sides hosts-off,hosts-polite --rounds 3   # politeness on vs off (#23)

Sides, each in its own child process (the web server is another process, prewarmed, so rendering never limits):
  i2d    `img2dataset.download(input_format="parquet", output_format="webdataset", resize_mode="center_crop",
         processes_count=2, thread_count=T)`: urllib fetch, cv2 + albumentations resize, tar writer; no pHash.
  fused  clipforge `FetchImagesStage` on a local Ray with 2 CPUs (each thread fetches its URL through the safe
         fetcher, then decodes, resizes, encodes, sha256s and pHashes it); written as parquet.
  parts  what `clipforge build` runs: rows hashed into download parts of --rows-per-part (1,000, the build's
         default), `map_groups` calls `DownloadPartStage` once per part, which fetches and processes the part as
         `fused` does and writes it to parquet itself; only a one-row summary returns through Ray.
  parts-ungated  `parts` with `download.process_slots` = the thread count: every thread may decode at once (the
         behaviour before the process slots; an ablation).
  parts-1slot  `parts` with `download.process_slots` = 1: one thread of each actor decodes at a time.
  hosts-off     the politeness row's baseline: `parts` over URLs spread across --hosts virtual hosts
         (`site-NNN.web.test`, one loopback server, `download.fetch.resolve`), robots.txt off, parts by uid hash.
  hosts-polite  the same URLs with politeness on, as `clipforge build` runs it: robots.txt fetched once per host
         (`robots_once`, inside the measured job), parts grouped by host (`part_plan`: `curation.host_parts`), the
         default per-host limit on both sides. Goal (#23): images/s ≥ 0.95× of hosts-off in the same run.
Same fault-free URLs (distinct, cycling over `--images` prewarmed images), same size and resize mode, same filter
(box = img2dataset's default "area"), same thread count; per-host politeness cap lifted to the thread count.

Each side runs a small job and a full job (Ray: after an unmeasured 50-URL warm-up that starts its workers;
img2dataset's own import is done first, its per-call process spawn is part of every job). CPU is summed over the
side's whole process tree from /proc every 0.2 s (Ray: driver, raylet, GCS, every worker). "Job" figures include
each job's start-up; "marginal" figures are (full − small) — start-up costs cancel, what remains is the steady
per-image cost a long crawl pays. Per core = images per CPU-second. Peak RSS sums the tree (Ray's includes its
object-store mappings). The machine is shared: wall figures swing with other jobs' load, CPU figures much less.
Prints a Markdown block for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMMAND = "python benchmarks/bench_download.py"
WARMUP = 50  # URLs of an unmeasured first job: imports, Ray workers, img2dataset's first process spawn
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class TreeSampler:
    """CPU seconds and peak RSS of a process and all its descendants, sampled from /proc on a thread."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root, self.interval = root, interval
        self.cpu_by_pid: dict[int, float] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[tuple[int, float, int]]:
        """(pid, cpu seconds, rss bytes) of the root and its descendants right now."""
        procs = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, int(fields[21]) * PAGE)
        keep, frontier = {self.root}, [self.root]
        while frontier:
            parent = frontier.pop()
            kids = [p for p, (pp, _, _) in procs.items() if pp == parent and p not in keep]
            keep.update(kids)
            frontier += kids
        return [(p, procs[p][1], procs[p][2]) for p in keep if p in procs]

    def sample(self) -> float:
        """Take one sample; return the tree's CPU seconds so far (processes that exited keep their last value)."""
        tree = self._tree()
        for pid, cpu, _ in tree:
            self.cpu_by_pid[pid] = max(cpu, self.cpu_by_pid.get(pid, 0.0))
        self.peak_rss = max(self.peak_rss, sum(rss for _, _, rss in tree))
        return sum(self.cpu_by_pid.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_i2d(urls: Path, out: Path, args: argparse.Namespace, n: int, timeout: float = 10) -> int:
    """img2dataset on the `n` URLs of `urls` (`args`: processes, threads, image_size; `timeout`: its socket
    timeout); returns the number of images it wrote (from its per-shard stats). bench_build runs it too."""
    from img2dataset import download

    # One shard per process: img2dataset spawns a process per 5 shards (maxtasksperchild=5), each importing cv2,
    # albumentations and torch; with its default 10^4-row shards that cost is amortised, so amortise it here too.
    per_shard = max(1, -(-n // args.processes))
    download(
        url_list=str(urls),
        input_format="parquet",
        url_col="url",
        caption_col="caption",
        output_format="webdataset",
        output_folder=str(out),
        image_size=args.image_size,
        resize_mode="center_crop",
        processes_count=args.processes,
        thread_count=args.threads,
        number_sample_per_shard=per_shard,
        timeout=timeout,
        retries=0,
        enable_wandb=False,
    )
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    return sum(s["successes"] for s in stats)


def run_ours(side: str, urls: Path, out: Path, args: argparse.Namespace, n: int) -> int:
    """clipforge's stages on a local Ray over `urls`, written as parquet; returns the number of images kept."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import ray

    from curation.fetch_config import FetchConfig
    from curation.images import ImageConfig
    from pipeline.stages.base import StageSpec, run_stages
    from pipeline.stages.download import DownloadConfig, FetchImagesConfig, FetchImagesStage

    # One host serves every URL here, so the per-host cap is lifted to the thread count (img2dataset has none).
    fetch = FetchConfig(allow_cidrs=["127.0.0.0/8"], per_host_concurrency=args.threads, retries=0)
    slots = {"parts-ungated": args.threads, "parts-1slot": 1}.get(side, args.process_slots)
    download = DownloadConfig(fetch=fetch, threads=args.threads, process_slots=slots)
    # resample "box" is img2dataset's default downscale filter ("area"): both sides resize the same way.
    image = ImageConfig(
        image_size=args.image_size, resize_mode="center_crop", resample="box", min_image_size=1, max_aspect_ratio=100
    )
    if side.startswith("hosts"):
        return run_hosts(side, urls, out, args, n, download, image)
    if side.startswith("parts"):  # what `clipforge build` runs: parts fetched, processed, written by actors
        import math

        from curation.text import url_uids
        from pipeline.build_images import MAX_GROUP_PARTITIONS
        from pipeline.stages.base import apply_group_stage
        from pipeline.stages.download_parts import DownloadPartsConfig, DownloadPartStage, add_part_column

        n_parts = max(1, math.ceil(n / args.rows_per_part))
        cfg = DownloadPartsConfig(fetch=FetchImagesConfig(download=download, image=image), out_dir=str(out))
        ds = ray.data.read_parquet(str(urls)).map_batches(
            lambda b: b.append_column("uid", url_uids(b["url"])), batch_format="pyarrow"
        )
        ds = run_stages(ds, [StageSpec(add_part_column, n_parts)])
        done = apply_group_stage(ds, "part", StageSpec(DownloadPartStage, cfg), min(n_parts, MAX_GROUP_PARTITIONS))
        return sum(row["ok"] for row in done.take_all())
    specs = [StageSpec(FetchImagesStage, FetchImagesConfig(download=download, image=image), args.batch)]
    ds = ray.data.read_parquet(str(urls)).repartition(max(2, n // args.batch))
    run_stages(ds, specs).write_parquet(str(out))
    reasons = pq.read_table(out, columns=["reject_reason"])["reject_reason"]
    return len(reasons) - pc.sum(pc.is_valid(reasons).cast("int64")).as_py()


def run_hosts(side: str, urls: Path, out: Path, args: argparse.Namespace, n: int, download, image) -> int:
    """The politeness row: the build's download parts over many virtual hosts, politeness off (robots.txt off, parts
    by uid hash) or on (the build's `part_plan`: robots.txt once per host, then parts grouped by host)."""
    import math

    import pyarrow.parquet as pq
    import ray

    from curation.text import url_uids
    from infra.localweb.hosts import HOST_SUFFIX
    from pipeline.build_config import BuildConfig
    from pipeline.build_images import MAX_GROUP_PARTITIONS, part_plan
    from pipeline.rundir import RunDir
    from pipeline.stages.base import StageSpec, apply_group_stage, run_stages
    from pipeline.stages.download import FetchImagesConfig
    from pipeline.stages.download_parts import DownloadPartsConfig, DownloadPartStage, add_part_column

    polite = side == "hosts-polite"
    fetch = download.fetch.model_dump() | {
        "resolve": {f"*.{HOST_SUFFIX}": "127.0.0.1"},
        "robots_txt": polite,
        "per_host_concurrency": args.per_host,
    }
    data = {
        "input": {"path": str(urls)},
        "output": str(out),
        "match": {"metadata": "unused"},  # only the download settings are read
        "download": download.model_dump() | {"fetch": fetch, "rows_per_part": args.rows_per_part},
        "image": image.model_dump(),
    }
    cfg = BuildConfig.model_validate(data)
    rows = pq.read_table(urls)
    rows = rows.append_column("uid", url_uids(rows["url"]))
    if polite:
        plan, fetch_images = part_plan(cfg, RunDir(str(out)), rows, say=lambda line: None)
        n_parts = plan.n_parts
    else:
        plan = n_parts = max(1, math.ceil(n / args.rows_per_part))
        fetch_images = FetchImagesConfig(download=cfg.download, image=cfg.image)
    stage_cfg = DownloadPartsConfig(fetch=fetch_images, out_dir=str(out / "parts"))
    ds = run_stages(ray.data.from_arrow(rows), [StageSpec(add_part_column, plan)])
    done = apply_group_stage(ds, "part", StageSpec(DownloadPartStage, stage_cfg), min(n_parts, MAX_GROUP_PARTITIONS))
    return sum(row["ok"] for row in done.take_all())


def child(args: argparse.Namespace) -> None:
    """One side in this process: set-up outside the measured window, then the jobs; one JSON line per job."""
    work = Path(args.work)
    if args.child == "i2d":
        import img2dataset  # noqa: F401  # the parent's import; each download() call spawns its own workers anyway

        jobs = (("small", args.small), ("full", args.n))
    else:
        from pipeline.core.ray_setup import init_ray

        init_ray(num_cpus=args.cpus)
        jobs = (("warmup", args.warmup), ("small", args.small), ("full", args.n))  # Ray starts its workers once
        jobs = tuple((name, n) for name, n in jobs if n)  # --smoke has no warm-up job
    runner = run_i2d if args.child == "i2d" else lambda *a: run_ours(args.child, *a)
    with TreeSampler(os.getpid()) as sampler:
        for name, n in jobs:
            cpu0, t0 = sampler.sample(), time.perf_counter()
            prefix = "hosts-urls" if args.child.startswith("hosts") else "urls"
            ok = runner(work / f"{prefix}-{name}.parquet", work / f"out-{args.child}-{name}", args, n)
            wall, cpu = time.perf_counter() - t0, sampler.sample() - cpu0
            line = {"side": args.child, "job": name, "n": n, "ok": ok, "wall": wall, "cpu": cpu}
            print(json.dumps({**line, "peak_rss": sampler.peak_rss}), flush=True)


def make_web(work: Path, args: argparse.Namespace) -> Path:
    """A fault-free synthetic web of `args.images` distinct images and URL lists for the jobs: every URL distinct,
    cycling over the images (the server caches by image, so prewarming `images` renders covers any number of URLs)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from infra.localweb.config import WebConfig, load_web
    from infra.localweb.generate import generate
    from infra.localweb.hosts import ROBOTS_VARIANTS, host_names

    zero = dict(fault_rate=0, dup_exact_rate=0, dup_near_rate=0, dup_url_rate=0, eval_copy_rate=0)
    # Virtual hosts for the politeness sides: the robots.txt variants sit on the last hosts (hosts.py), so the URLs
    # use only the first --hosts ones, which all serve a plain 200 robots.txt (rules to parse and check every URL).
    hosts = host_names(args.hosts + len(ROBOTS_VARIANTS) + 1)[: args.hosts]
    cfg = WebConfig(
        seed=7,
        n_candidates=args.images,
        min_side=args.min_side,
        max_side=args.max_side,
        eval_per_concept=1,
        virtual_hosts=args.hosts + len(ROBOTS_VARIANTS) + 1,
        **zero,
    )
    web = work / "web"
    generate(cfg, web)
    base = load_web(web)[0].base_url
    port = base.rsplit(":", 1)[1]
    row = 0
    for name, n in (("warmup", args.warmup), ("small", args.small), ("full", args.n)):
        paths = [f"/img/ok/{(row + i) % args.images}/0/{row + i}.jpg" for i in range(n)]
        captions = [f"picture {row + i}" for i in range(n)]
        pq.write_table(
            pa.table({"url": [base + p for p in paths], "caption": captions}), work / f"urls-{name}.parquet"
        )
        spread = [f"http://{hosts[(row + i) % len(hosts)]}:{port}{p}" for i, p in enumerate(paths)]
        pq.write_table(pa.table({"url": spread, "caption": captions}), work / f"hosts-urls-{name}.parquet")
        row += n
    return web


def run_side(side: str, work: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Run one side in a child process; its per-job JSON lines by job name."""
    cmd = [sys.executable, __file__, "--child", side, "--work", str(work)]
    keys = ("n", "small", "warmup", "images", "image_size", "threads", "processes", "cpus", "batch", "rows_per_part")
    keys += ("hosts", "per_host")
    for key in (*keys, "process_slots"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    jobs = {}
    for line in out.stdout.splitlines():
        if line.startswith("{") and '"side"' in line:
            r = json.loads(line)
            jobs[r["job"]] = r
    if out.returncode or "full" not in jobs:
        sys.exit(f"{side} failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return jobs


def figures(jobs: dict[str, dict]) -> dict[str, float]:
    """Figures of the full job and marginal ones (full − small: start-up costs cancel)."""
    f, s = jobs["full"], jobs["small"]
    d_ok, d_wall, d_cpu = f["ok"] - s["ok"], f["wall"] - s["wall"], f["cpu"] - s["cpu"]
    return {
        "ok": f["ok"],
        "job_img_s": f["ok"] / f["wall"],
        "job_cpu_ms": 1000 * f["cpu"] / f["ok"],
        "marginal_img_s": d_ok / d_wall if d_wall > 0 else float("nan"),
        "marginal_cpu_ms": 1000 * d_cpu / d_ok if d_ok > 0 else float("nan"),
        "peak_rss_mib": max(f["peak_rss"], s["peak_rss"]) / 2**20,
    }


LABELS = {
    "i2d": "img2dataset 1.47 (no pHash)",
    "fused": "clipforge FetchImagesStage (+ sha256, pHash)",
    "parts": "clipforge build's download parts (fused, written by the actor)",
    "parts-ungated": "same, every thread may decode at once (no process slots)",
    "parts-1slot": "same, one process slot per actor",
    "hosts-off": "build's download parts over many hosts, politeness off (no robots.txt, parts by uid)",
    "hosts-polite": "same, politeness on (robots.txt once per host, parts grouped by host)",
}


def report(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    """Markdown block: median over rounds per side; per-core ratio against img2dataset from marginal CPU."""
    med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in results.items()}
    base = med.get("i2d")
    cmd = f"{COMMAND} --n {args.n} --images {args.images} --min-side {args.min_side} --max-side {args.max_side}"
    lines = [
        f"`{cmd} --sides {args.sides} --rounds {args.rounds}`: {args.n} fault-free URLs, {args.min_side}–"
        f"{args.max_side} px JPEGs → {args.image_size}² center crop, {args.threads} threads, img2dataset "
        f"{args.processes} processes vs Ray {args.cpus} CPUs, median of {args.rounds} round(s).",
        "",
        "| side | images/s (job) | images/s (marginal) | CPU ms / image (job) | CPU ms / image (marginal) | "
        "images per CPU-s (marginal) | per core vs img2dataset | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for side, m in med.items():
        ratio = "1" if side == "i2d" else "—"  # "—": no img2dataset side in this run
        if base and side != "i2d":
            ratio = f"**{base['marginal_cpu_ms'] / m['marginal_cpu_ms']:.2f}×**"
        lines.append(
            f"| {LABELS[side]} | {m['job_img_s']:.0f} | {m['marginal_img_s']:.0f} | {m['job_cpu_ms']:.2f} | "
            f"{m['marginal_cpu_ms']:.2f} | {1000 / m['marginal_cpu_ms']:.0f} | {ratio} | {m['peak_rss_mib']:.0f} |"
        )
    if "hosts-off" in med and "hosts-polite" in med:
        off, on = med["hosts-off"], med["hosts-polite"]
        lines += [
            "",
            f"Politeness on / off over {args.hosts} hosts (per-host limit {args.per_host}): images/s (job) "
            f"**{on['job_img_s'] / off['job_img_s']:.2f}×**, "
            f"marginal {on['marginal_img_s'] / off['marginal_img_s']:.2f}× (goal ≥ 0.95×).",
        ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=6000, help="URLs of the full job")
    p.add_argument("--small", type=int, default=0, help="URLs of the small job (default n/8)")
    p.add_argument("--images", type=int, default=800, help="distinct images the URLs cycle over (all prewarmed)")
    p.add_argument("--min-side", type=int, default=256)
    p.add_argument("--max-side", type=int, default=768)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--process-slots", type=int, default=0, help="ours: download.process_slots (0 = the cores)")
    p.add_argument("--processes", type=int, default=2, help="img2dataset processes_count")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    p.add_argument("--batch", type=int, default=100, help="rows per Ray Data batch (and block)")
    p.add_argument("--rows-per-part", type=int, default=1000, help="parts side: rows per part (build default)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--hosts", type=int, default=200, help="hosts-* sides: virtual hosts the URLs spread over")
    p.add_argument("--per-host", type=int, default=8, help="hosts-* sides: download.fetch.per_host_concurrency")
    p.add_argument("--sides", help="any of i2d, fused, parts, parts-ungated, parts-1slot, hosts-off, hosts-polite")
    p.add_argument("--warmup", type=int, default=WARMUP, help="URLs of the unmeasured first job (Ray sides)")
    p.add_argument("--quick", action="store_true", help="1,200 URLs over 200 images")
    p.add_argument("--smoke", action="store_true", help="a tiny run that checks the benchmark works (no img2dataset)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.n, args.images = 1200, 200
    args.sides = args.sides or ("fused,hosts-polite" if args.smoke else "i2d,fused")
    if args.smoke:  # a few URLs, one round, no warm-up, no peer (img2dataset need not be installed)
        args.n, args.small, args.warmup, args.images, args.threads, args.rounds = 20, 10, 0, 10, 8, 1
        args.min_side, args.max_side, args.image_size, args.batch, args.rows_per_part = 64, 128, 64, 10, 10
        args.hosts = 4
        args.sides = ",".join(s for s in args.sides.split(",") if s != "i2d") or "fused"
    args.small = args.small or max(50, args.n // 8)
    from infra.localweb.handle import LocalWebProcess

    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        web = make_web(work, args)
        results: dict[str, list[dict]] = {side: [] for side in args.sides.split(",")}
        with LocalWebProcess(web, prewarm=args.images, timeout=600, access_log=False):
            for r in range(args.rounds):
                for side in results:  # alternate sides within a round so load drift hits all of them
                    for d in work.glob(f"out-{side}-*"):
                        subprocess.run(["rm", "-rf", str(d)], check=True)
                    jobs = run_side(side, work, args)
                    results[side].append(figures(jobs))
                    print(f"round {r + 1} {side}: {json.dumps(results[side][-1])}", flush=True)
                    print(f"    raw: {json.dumps(jobs)}", flush=True)
    print()
    print(report(results, args))


if __name__ == "__main__":
    main()
