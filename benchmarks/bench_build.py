"""End-to-end build benchmark: `clipforge build` over a synthetic web on loopback, the whole DESIGN.md §1 graph.

    python benchmarks/bench_build.py                     # 50,000 candidates
    python benchmarks/bench_build.py --candidates 5000   # smaller
    python benchmarks/bench_build.py --smoke             # 200 candidates, no faults: does it run
    python benchmarks/bench_build.py --candidates 20000 --with-i2d   # + img2dataset on the same list, same run
    python benchmarks/bench_build.py --candidates 20000 --with-i2d --fault-rate 0   # a web without faults

The web is generated, then served from its own process (prewarmed, so rendering never limits). The build runs as
the real CLI (`python -m pipeline.cli build CONFIG -q`) in a child process with its own local Ray (all cores); CPU and
peak RSS are summed over that child's whole process tree from /proc (driver, raylet, GCS, every worker; RSS includes
object-store mappings). Per-step seconds come from the run's manifest (`seconds_by_step`). Reported: candidates/s
(input rows / wall), images/s (images downloaded and decoded / download-step seconds, and kept samples / wall).
The machine is shared: wall figures swing with other jobs' load. Prints a Markdown block for benchmarks/RESULTS.md.

--with-i2d: after the build, img2dataset downloads every candidate of the same list from the same web (its own
child process, CPU summed the same way): same output size and resize mode (center crop), same thread count, its
socket timeout = the build's per-request deadline, no retries, webdataset output, one shard per process (its
process spawns amortised, as in bench_download). It
is the peer a user would otherwise run: it downloads every candidate, clipforge downloads only what curation keeps
(after text filters, LID, matching and pre-balancing) and then dedups and balances. Both sides get wall and CPU
seconds per candidate; the ratio is clipforge / img2dataset (< 1: clipforge is faster).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_download import TreeSampler  # noqa: E402
from bench_download import run_i2d as i2d_download  # noqa: E402

COMMAND = "python benchmarks/bench_build.py"


def write_config(work: Path, web: Path, args: argparse.Namespace) -> Path:
    import yaml

    from infra.localweb.concepts import COLOURS, DIGIT_WORDS, SHAPES, TEXTURES

    words = ["0", "1", "7", "a", "photo", "digit", "handwritten", *COLOURS, *SHAPES, *TEXTURES, *DIGIT_WORDS]
    (work / "metadata.json").write_text(json.dumps(words + [f"{c} {s}" for c in COLOURS for s in SHAPES]))
    cfg = {
        "input": {"path": str(web / "candidates.parquet"), "rows_per_block": 2000},
        "output": str(work / "run"),
        "stages": ["text", "match", "pre_balance", "download", "dedup", "balance"],
        "match": {"metadata": str(work / "metadata.json")},
        "balance": {"oversample": 3.0},
        "download": {
            "fetch": {
                "allow_cidrs": ["127.0.0.0/8"],
                "deadline_s": 3.0,
                "backoff_base_s": 0.1,
                "per_host_concurrency": 64,
            },
            "threads": args.threads,
            "rows_per_part": args.rows_per_part,
        },
        "image": {"image_size": args.image_size, "min_image_size": 32, "max_aspect_ratio": 4.5},
        "dedup": {"eval_sets": [{"name": "synthetic", "path": str(web / "eval" / "synthetic.parquet")}]},
        "shards": {"samples_per_shard": 1000},
    }
    path = work / "build.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=int, default=50_000)
    p.add_argument("--threads", type=int, default=32, help="download threads per actor")
    p.add_argument("--rows-per-part", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--smoke", action="store_true", help="200 candidates without faults: checks the benchmark works")
    p.add_argument("--with-i2d", action="store_true", help="also run img2dataset on the same list (same run)")
    p.add_argument(
        "--fault-rate",
        type=float,
        default=None,
        help="share of the web's URLs with a fault (404, 429, slow, reset, decompression bomb, ...); default: the "
        "synthetic web's 0.15. 0: a clean web, every URL an image",
    )
    p.add_argument("--i2d-processes", type=int, default=2, help="img2dataset processes_count")
    p.add_argument("--i2d-child", nargs=2, metavar=("URLS", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.i2d_child:
        print(json.dumps({"ok": run_i2d(Path(args.i2d_child[0]), Path(args.i2d_child[1]), args)}))
        return
    if args.smoke:
        args.candidates, args.threads = 200, 8

    from infra.localweb.config import WebConfig
    from infra.localweb.generate import generate
    from infra.localweb.handle import LocalWebProcess

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_build_"))
    web = work / "web"
    t0 = time.monotonic()
    faults = {"fault_rate": 0.0, "eval_per_concept": 1} if args.smoke else {}  # smoke: nothing to wait for
    if args.fault_rate is not None:
        faults["fault_rate"] = args.fault_rate
    # Every image cached and prewarmed (~7 KiB each at this web's sizes; 16 KiB a row leaves room): before this,
    # the cache held ~30k images, so at 100k the web server rendered ~70 % of the images on demand on the same two
    # cores as the build while the build downloaded them — the 100k figures measured the harness too.
    cache_mb = max(256, args.candidates * 16 // 1024)
    generate(WebConfig(seed=0, n_candidates=args.candidates, slow_seconds=6.0, cache_mb=cache_mb, **faults), web)
    print(f"web of {args.candidates} candidates generated in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    cfg = write_config(work, web, args)
    env = {**os.environ, "RAY_ADDRESS": ""}
    with LocalWebProcess(web, prewarm=args.candidates, timeout=max(600, args.candidates // 100)):
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "pipeline.cli", "build", str(cfg), "-q", "--overwrite"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        with TreeSampler(proc.pid) as tree:
            rc = proc.wait()
        wall = time.monotonic() - t0
        if rc != 0:
            raise SystemExit(f"build failed with exit status {rc}")
        i2d = run_i2d_side(web, work, args) if args.with_i2d else None
    manifest = json.loads((work / "run" / "manifest.json").read_text())
    report(args, work, manifest, wall, tree, i2d)
    if args.smoke and args.workdir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def run_i2d(urls: Path, out: Path, args: argparse.Namespace) -> int:
    """img2dataset over every candidate in `urls` (bench_download's peer call: one shard per process, so its process
    spawns are amortised); its socket timeout = the build's download.fetch.deadline_s (3 s)."""
    import pyarrow.parquet as pq

    peer = argparse.Namespace(processes=args.i2d_processes, threads=args.threads, image_size=args.image_size)
    return i2d_download(urls, out, peer, pq.read_metadata(urls).num_rows, timeout=3)


def run_i2d_side(web: Path, work: Path, args: argparse.Namespace) -> dict:
    """img2dataset on the build's candidate list in a child process: {wall, cpu, ok, peak_rss}."""
    out = work / "i2d"
    cmd = [sys.executable, __file__, "--i2d-child", str(web / "candidates.parquet"), str(out)]
    cmd += ["--threads", str(args.threads), "--image-size", str(args.image_size)]
    cmd += ["--i2d-processes", str(args.i2d_processes)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with TreeSampler(proc.pid) as tree:
        stdout, _ = proc.communicate()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"img2dataset failed with exit status {proc.returncode}")
    ok = json.loads(stdout.strip().splitlines()[-1])["ok"]
    return {"wall": wall, "cpu": sum(tree.cpu_by_pid.values()), "ok": ok, "peak_rss": tree.peak_rss}


def report(
    args: argparse.Namespace, work: Path, m: dict, wall: float, tree: TreeSampler, i2d: dict | None = None
) -> None:
    import pyarrow.parquet as pq

    steps = m["seconds_by_step"]
    stages = pq.read_table(work / "run" / "rejects", columns=["stage"])["stage"].to_pylist()
    decoded = m["download"]["rows"] - sum(s in ("download", "images") for s in stages)
    cpu = sum(tree.cpu_by_pid.values())
    flags = " --with-i2d" if i2d else ""
    flags += f" --fault-rate {args.fault_rate:g}" if args.fault_rate is not None else ""
    print(f"\n### Build end to end (`{COMMAND} --candidates {args.candidates}{flags}`)\n")
    print(
        f"{os.cpu_count()} cores (shared box), local Ray, synthetic web in its own process, "
        f"{args.image_size} px output\n"
    )
    print(
        "| candidates | downloaded | kept | shards | wall s | candidates/s | images/s (download step) | kept/s "
        "| CPU s | peak RSS GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    dl = steps.get("download", 0.0) or float("nan")
    print(
        f"| {m['counts']['input_rows']} | {m['download']['rows']} | {m['counts']['kept']} | {m['counts']['shards']} | "
        f"{wall:.0f} | {m['counts']['input_rows'] / wall:.1f} | {decoded / dl:.1f} | "
        f"{m['counts']['kept'] / wall:.1f} | "
        f"{cpu:.0f} | {tree.peak_rss / 2**30:.2f} |"
    )
    print("\n| step | seconds | share |\n|---|---|---|")
    total = sum(steps.values())
    for name, s in steps.items():
        print(f"| {name} | {s:.1f} | {s / total:.0%} |")
    print(f"\n(decoded images: {decoded}; t = {m['balance'].get('t')}, t_pre = {m['balance'].get('t_pre')})")
    if i2d:
        n = m["counts"]["input_rows"]
        print(
            "\n| side | candidates | downloaded | images written | wall s | CPU s | ms wall / candidate "
            "| ms CPU / candidate | peak RSS GiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        rows = [
            ("clipforge build", m["download"]["rows"], m["counts"]["kept"], wall, cpu, tree.peak_rss),
            ("img2dataset", n, i2d["ok"], i2d["wall"], i2d["cpu"], i2d["peak_rss"]),
        ]
        for side, downloaded, written, w, c, rss in rows:
            print(
                f"| {side} | {n} | {downloaded} | {written} | {w:.0f} | {c:.0f} | {1e3 * w / n:.2f} | "
                f"{1e3 * c / n:.2f} | {rss / 2**30:.2f} |"
            )
        print(f"\nclipforge / img2dataset: wall {wall / i2d['wall']:.2f}, CPU {cpu / i2d['cpu']:.2f}")


if __name__ == "__main__":
    main()
