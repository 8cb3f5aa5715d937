"""Result tables: write an evaluation's results.json, results.md and resolved config.yaml. Formatting only.

results.json is strict JSON: NaN metrics (e.g. acc5 with fewer than 5 classes) are written as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel

TASK_ORDER = ("zeroshot_classification", "zeroshot_retrieval", "linear_probe")


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _cell(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key == "C":
        return f"{value:g}"
    return f"{100 * value:.1f}"


def results_markdown(results: dict[str, Any]) -> str:
    """A Markdown page: a header naming the model, then one table per task; metrics in % (C as is). A record with
    `chance` (what a random guess scores: 1/n_classes for zero-shot acc1, k/n for recall@k) gets a "↳ chance" row
    under its own."""
    model = results["model"] + (f" ({results['checkpoint']})" if results.get("checkpoint") else "")
    lines = [f"# Evaluation of `{model}`", ""]
    if results.get("random_init"):
        lines += ["Randomly initialised model (no weights loaded): a chance-level baseline.", ""]
    for task in TASK_ORDER:
        records = [r for r in results["results"] if r["task"] == task]
        if not records:
            continue
        keys = list(dict.fromkeys(k for r in records for k in r["metrics"]))
        lines += [f"## {task}", "", "| benchmark | n | " + " | ".join(keys) + " |"]
        lines.append("|---|---:|" + "---:|" * len(keys))
        for r in records:
            cells = [_cell(k, r["metrics"].get(k)) for k in keys]
            lines.append(f"| {r['benchmark']} | {r['n_samples']} | " + " | ".join(cells) + " |")
            if r.get("chance"):  # what a random guess scores on the same set: the number to beat
                cells = [_cell(k, r["chance"].get(k)) for k in keys]
                lines.append("| ↳ chance |  | " + " | ".join(cells) + " |")
        lines.append("")
    notes = sorted(
        {f"{r['benchmark']}: {n}" for r in results["results"] for n in r.get("notes", []) + [r.get("note")] if n}
    )
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    return "\n".join(lines)


def progress_line(record: dict[str, Any]) -> str:
    """One line per finished result for the terminal: `digits zeroshot_classification: acc1 12.0 (chance 10.0),
    200 samples, 3.1 s`; the first metric stands for the record."""
    key, value = next(iter(record["metrics"].items()))
    chance = (record.get("chance") or {}).get(key)
    beside = f" (chance {_cell(key, chance)})" if chance is not None else ""
    return (
        f"{record['benchmark']} {record['task']}: {key} {_cell(key, value)}{beside}, {record['n_samples']} samples, "
        f"{record.get('seconds', 0):.1f} s"
    )


def write_results(results: dict[str, Any], output_dir: str | Path, cfg: BaseModel | None = None) -> Path:
    """Write `results.json`, `results.md` (and `config.yaml` when `cfg` is given) into `output_dir`; returns it."""
    from pipeline.core.config import dump_config

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n")
    (out / "results.md").write_text(results_markdown(results), encoding="utf-8")
    if cfg is not None:
        (out / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    return out
