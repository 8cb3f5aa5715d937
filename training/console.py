"""Terminal text for `clipforge train`: one progress line per logged step and the end-of-run summary. Pure."""

from __future__ import annotations

from typing import Any

from training.trainer import TrainSummary


def progress_line(m: dict[str, Any]) -> str:
    """`step 40/300 (epoch 1)  loss 2.311  lr 8.1e-04  scale 15.2  812 samples/s  wait 3%[  mfu 31.2%]`."""
    line = (
        f"step {m.get('step', '?')}/{m.get('steps', '?')} (epoch {m.get('epoch', 0)})"
        f"  loss {m.get('loss/contrastive', float('nan')):.3f}"
        f"  lr {m.get('train/lr', float('nan')):.1e}"
        f"  scale {m.get('train/logit_scale', float('nan')):.1f}"
        f"  {m.get('perf/samples_per_s', 0.0):.0f} samples/s"
        f"  wait {100 * m.get('time/data_wait_frac', 0.0):.0f}%"
    )
    if "perf/mfu" in m:
        line += f"  mfu {100 * m['perf/mfu']:.1f}%"
    return line + eval_text(m)


HEADLINE = {"acc1": "acc1", "image_retrieval_recall@1": "R@1"}


def eval_text(m: dict[str, Any]) -> str:
    """`  eval digits acc1 31.2%  captions_val R@1 12.0%` for the headline eval metrics in `m` ('' when none)."""
    parts = []
    for key in sorted(m):
        area, _, rest = key.partition("/")
        bench, _, metric = rest.rpartition("/")
        if area == "eval" and metric in HEADLINE:
            parts.append(f"{bench} {HEADLINE[metric]} {100 * float(m[key]):.1f}%")
    return "  eval " + "  ".join(parts) if parts else ""


def summary_text(s: TrainSummary) -> str:
    """The few lines printed when a run ends."""
    loss = "n/a" if s.final_loss is None else f"{s.final_loss:.4f}"
    resumed = f" (resumed from step {s.resumed_from_step})" if s.resumed_from_step else ""
    lines = [
        f"run {s.name}: {s.steps} steps{resumed}, {s.samples_seen} samples seen, {s.epochs} epoch(s), "
        f"{s.world_size} worker(s), {s.wall_s:.0f}s",
        f"final loss: {loss}" + (f"; final{eval_text(s.eval)}" if s.eval else ""),
        f"run directory: {s.run_dir}",
        f"export: {s.export or 'disabled'}",
    ]
    if s.export:
        lines.append(f'load it: open_clip.create_model_and_transforms("local-dir:{s.export}")')
    return "\n".join(lines)
