"""Training metrics: a per-window accumulator, MFU, and rank 0's run log (metrics.csv + TensorBoard).

Metric keys are namespaced `area/metric` (`loss/contrastive`, `time/data_wait_frac`, `perf/mfu`). The run log
lives in the run directory on the storage filesystem; on object storage it is written to a local staging
directory and pushed with every checkpoint (and at the end), so logs never run ahead of what a resume restores.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

# Dense bf16 tensor-core peaks in TFLOP/s (vendor datasheets; SXM parts unless named), matched by substring of
# torch.cuda.get_device_name(). Override with workers.peak_tflops.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "V100": 125.0,
    "T4": 65.0,
}


def peak_tflops_for(device_name: str) -> float | None:
    """The table's peak for the first (longest-first) name contained in `device_name`, else None."""
    for name in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if name in device_name:
            return PEAK_TFLOPS[name]
    return None


@dataclass
class MetricWindow:
    """Sums over the steps since the last flush; `summary` turns them into per-window rates and fractions."""

    steps: int = 0
    wait_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    loss_sum: Any = 0.0  # a device tensor during the window: no host sync per step

    def reset(self) -> None:
        self.steps, self.wait_s, self.started, self.loss_sum = 0, 0.0, time.perf_counter(), 0.0

    def add(self, loss, wait_s: float) -> None:
        self.steps += 1
        self.wait_s += wait_s
        self.loss_sum = self.loss_sum + loss.detach().float()

    def summary(self, global_batch: int, flops_per_sample: float, world: int, peak_tflops: float | None) -> dict:
        """Window averages: samples/s, data-wait fraction, achieved TFLOP/s per device and MFU (when peak known)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        samples_per_s = global_batch * self.steps / elapsed
        tflops = 3.0 * flops_per_sample * samples_per_s / world / 1e12  # fwd + 2x bwd, recompute not counted
        out = {
            "perf/samples_per_s": samples_per_s,
            "perf/tflops_per_device": tflops,
            "time/step_s": elapsed / max(self.steps, 1),
            "time/data_wait_frac": self.wait_s / elapsed,
        }
        if peak_tflops:
            out["perf/mfu"] = tflops / peak_tflops
        return out


CSV_FIRST = ["step", "epoch", "samples_seen", "loss/contrastive", "train/lr", "train/logit_scale"]


class RunLog:
    """Rank 0's metrics.csv and TensorBoard events under RUN (pyarrow `fs`, `root`)."""

    def __init__(self, fs: Any, root: str, tensorboard: bool):
        import pyarrow.fs as pafs

        self.fs, self.root = fs, root
        self.local = isinstance(fs, pafs.LocalFileSystem)
        self.dir = root if self.local else tempfile.mkdtemp(prefix="clipforge-runlog-")
        os.makedirs(self.dir, exist_ok=True)
        self.csv_path = os.path.join(self.dir, "metrics.csv")
        self.header: list[str] | None = None
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(self.dir, "tb"))

    def resume_at(self, step: int) -> None:
        """Continue the log of a run restored at `step`: fetch it from storage if needed and drop rows logged
        after `step` (by an attempt that died before its next checkpoint), so every step appears once."""
        if not self.local and not os.path.exists(self.csv_path):
            try:
                with self.fs.open_input_stream(f"{self.root}/metrics.csv") as src, open(self.csv_path, "wb") as dst:
                    dst.write(src.read())
            except (FileNotFoundError, OSError):
                pass
        if not os.path.exists(self.csv_path):
            return
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        self.header = rows[0]
        kept = [r for r in rows[1:] if r and int(float(r[0])) <= step]
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerows([self.header, *kept])

    def write(self, metrics: dict[str, Any]) -> None:
        """Append one row and the TensorBoard scalars. Columns are those of the first row; a row with new keys
        (the first `eval/...` metrics) rewrites the file with the extra columns appended (earlier rows empty)."""
        new = self.header is None
        if new:
            self.header = CSV_FIRST + sorted(k for k in metrics if k not in CSV_FIRST)
        elif extra := sorted(k for k in metrics if k not in self.header):
            self._add_columns(extra)
        with open(self.csv_path, "w" if new else "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(self.header)
            writer.writerow([_fmt(metrics.get(k, "")) for k in self.header])
        if self.tb is not None:
            for k, v in metrics.items():
                if k != "step" and isinstance(v, int | float):
                    self.tb.add_scalar(k, v, int(metrics["step"]))

    def _add_columns(self, extra: list[str]) -> None:
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        self.header = [*self.header, *extra]
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerows([self.header, *(r + [""] * len(extra) for r in rows)])

    def push(self) -> None:
        """Flush TensorBoard and, on object storage, copy metrics.csv and tb/ into RUN."""
        import pyarrow.fs as pafs

        if self.tb is not None:
            self.tb.flush()
        if self.local:
            return
        self.fs.create_dir(self.root, recursive=True)
        pafs.copy_files(self.dir, self.root, pafs.LocalFileSystem(), self.fs)

    def close(self) -> None:
        self.push()
        if self.tb is not None:
            self.tb.close()


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def read_metrics_csv(text: str) -> list[dict[str, str]]:
    """Rows of a metrics.csv as dicts (for tests, the report and the CLI summary)."""
    return list(csv.DictReader(io.StringIO(text)))


class SampleLog:
    """`log.sample_keys`: one rank's trained sample keys, `step<TAB>epoch<TAB>uid64,uid64,...` per step, rewritten
    whole to RUN/samples/rank-R.from-S.tsv on every `flush` (small: one line per step)."""

    def __init__(self, fs: Any, root: str, rank: int, start_step: int):
        self.fs, self.path = fs, f"{root}/samples/rank-{rank}.from-{start_step:09d}.tsv"
        self.lines: list[str] = []

    def add(self, step: int, epoch: int, uid64s: list[int]) -> None:
        self.lines.append(f"{step}\t{epoch}\t{','.join(map(str, uid64s))}\n")

    def flush(self) -> None:
        self.fs.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write("".join(self.lines).encode())


def read_sample_log(text: str) -> dict[int, list[int]]:
    """{step: [uid64, ...]} of a sample log (the audit trail of `log.sample_keys`)."""
    out = {}
    for line in text.splitlines():
        step, _, keys = line.split("\t")
        out[int(step)] = [int(k) for k in keys.split(",") if k]
    return out
