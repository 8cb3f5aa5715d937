"""The curation report's figures: matplotlib (object API, no pyplot state) to SVG data URIs, and JPEG thumbnails.

Every figure is an `<img src="data:image/svg+xml;base64,…">`: self-contained (text drawn as paths, no fonts), and
isolated from the page (SVG ids of different figures cannot collide, no script can run). Output is deterministic
(fixed hash salt, no date). The funnel colour is reserved for the HTML funnel (the browser test looks for it).
"""

from __future__ import annotations

import base64
import io
import re

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

FUNNEL_COLOUR = "#2a9d8f"  # used only by the funnel bars (pipeline.report's CSS), never in a figure
PRE_COLOUR, POST_COLOUR, T_COLOUR, BAR_COLOUR = "#8d99ae", "#e76f51", "#264653", "#457b9d"
_RC = {"svg.hashsalt": "clipforge", "svg.fonttype": "path", "font.size": 9, "axes.spines.top": False}


def _figure(w: float = 6.4, h: float = 3.2) -> Figure:
    return Figure(figsize=(w, h), layout="constrained")


def svg_uri(fig: Figure) -> str:
    """`fig` as a base64 SVG data URI, without the XML prologue and RDF metadata (it names external vocabularies)."""
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = re.sub(r"<metadata>.*?</metadata>", "", buf.getvalue(), flags=re.S)
    svg = svg[svg.index("<svg") :]
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def barh(items: list[tuple[str, int]], xlabel: str, colour: str = BAR_COLOUR) -> str:
    """Horizontal bars, first item on top, each labelled with its value."""
    fig = _figure(6.4, 0.6 + 0.24 * max(len(items), 1))
    ax = fig.add_subplot()
    labels, values = [x[0] for x in items], [x[1] for x in items]
    bars = ax.barh(range(len(items)), values, color=colour)
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2, fontsize=8)
    ax.set_yticks(range(len(items)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.margins(x=0.12)
    return svg_uri(fig)


def rank_plot(ranks: np.ndarray, curves: dict[str, np.ndarray], lines: dict[str, float]) -> str:
    """Log-log: matches per entry at 1-based `ranks`, one line per curve (label → counts aligned with `ranks`; zero
    counts are not drawn) and one dashed horizontal line per threshold (label → value, e.g. t)."""
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    colours = (PRE_COLOUR, POST_COLOUR) if len(curves) == 2 else (PRE_COLOUR, BAR_COLOUR, POST_COLOUR)
    for i, (label, counts) in enumerate(curves.items()):
        c = np.asarray(counts, np.float64)
        ax.plot(ranks, np.where(c > 0, c, np.nan), color=colours[i % 3], lw=1.6 if i == 0 else 1.2, label=label)
    for i, (label, value) in enumerate(lines.items()):
        ax.axhline(value, color=T_COLOUR, ls=("--", ":")[i % 2], lw=1, label=f"{label} = {value:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("entry rank (by matches before balancing)")
    ax.set_ylabel("matches (texts per entry)")
    ax.legend(frameon=False)
    return svg_uri(fig)


def language_rank_plots(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], t_by_lang: dict[str, float]
) -> str:
    """Small multiples, one log-log panel per language (label → (ranks, matches before, after balancing)), each with
    its own t as a dashed line; zero counts are not drawn."""
    n = max(len(curves), 1)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig = _figure(2.0 * cols + 0.4, 1.9 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (lang, (ranks, pre, post)) in zip(axes.flat, curves.items(), strict=False):
        for counts, colour in ((pre, PRE_COLOUR), (post, POST_COLOUR)):
            c = np.asarray(counts, np.float64)
            ax.plot(ranks, np.where(c > 0, c, np.nan), color=colour, lw=1.2)
        if lang in t_by_lang:
            ax.axhline(t_by_lang[lang], color=T_COLOUR, ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{lang} (t = {t_by_lang.get(lang, float('nan')):g})", fontsize=9)
    for ax in list(axes.flat)[len(curves) :]:
        ax.set_axis_off()
    fig.supxlabel("entry rank (by matches before balancing)", fontsize=8)
    fig.supylabel("matches: before (grey), after (orange)", fontsize=8)
    return svg_uri(fig)


def histogram(values: np.ndarray, xlabel: str, bins: int = 40, log_x: bool = False, integer: bool = False) -> str:
    """A histogram of the finite `values`: one bin per integer when `integer` (and the range is small); log-spaced
    bins on a log axis when `log_x` and the positive values span more than 10x; else `bins` even bins."""
    from matplotlib.ticker import MaxNLocator

    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    log_x = log_x and len(v) > 0 and v.min() > 0 and v.max() > 10 * v.min()
    fig = _figure(4.6, 2.8)
    ax = fig.add_subplot()
    if len(v):
        if integer and v.max() - v.min() <= 100:
            edges = np.arange(v.min() - 0.5, v.max() + 1.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        elif log_x:
            edges = np.geomspace(v.min(), v.max(), bins + 1)
        else:
            edges = bins
        ax.hist(v, bins=edges, color=BAR_COLOUR)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    return svg_uri(fig)


def binned_histogram(counts: list[int], edges: list[float], xlabel: str, lines: dict[str, float]) -> str:
    """A histogram already binned (`counts` per bin between consecutive `edges`), with one dashed vertical line per
    marked value (label → value, e.g. the CLIP-score threshold)."""
    fig = _figure(6.4, 2.8)
    ax = fig.add_subplot()
    e = np.asarray(edges, np.float64)
    if len(counts) and len(e) == len(counts) + 1:
        ax.stairs(np.asarray(counts, np.float64), e, fill=True, color=BAR_COLOUR)
    for i, (label, value) in enumerate(lines.items()):
        if np.isfinite(value):
            ax.axvline(value, color=T_COLOUR, ls=("--", ":")[i % 2], lw=1.2, label=f"{label} = {value:.4g}")
    if lines:
        ax.legend(frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    return svg_uri(fig)


def cluster_bars(series: dict[str, list[tuple[int, int]]]) -> str:
    """Clusters per size (log count axis), one bar group per dedup step."""
    fig = _figure(6.4, 2.8)
    ax = fig.add_subplot()
    sizes = sorted({s for rows in series.values() for s, _ in rows})
    pos = {s: i for i, s in enumerate(sizes)}
    width = 0.8 / max(len(series), 1)
    for j, (step, rows) in enumerate(series.items()):
        xs = [pos[s] + (j - (len(series) - 1) / 2) * width for s, _ in rows]
        colour = (BAR_COLOUR, POST_COLOUR, T_COLOUR)[j % 3]
        bars = ax.bar(xs, [n for _, n in rows], width=width, label=step, color=colour)
        ax.bar_label(bars, labels=[f"{n:,}" for _, n in rows], padding=2, fontsize=8)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    counts = [n for rows in series.values() for _, n in rows]
    if counts and max(counts) > 100 * min(counts):  # heavy-tailed: most clusters are pairs
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.set_xlabel("cluster size (members, representative included)")
    ax.set_ylabel("clusters")
    ax.legend(frameon=False)
    return svg_uri(fig)


def training_curves(rows: list[dict[str, str]], keys: list[str]) -> str:
    """One small panel per metric key against `step` (rows of metrics.csv; empty cells skipped)."""
    fig = _figure(6.4, 2.2 * ((len(keys) + 1) // 2))
    for i, key in enumerate(keys):
        ax = fig.add_subplot((len(keys) + 1) // 2, 2, i + 1)
        pts = [(float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "") and r.get("step")]
        if pts:
            ax.plot(*zip(*pts, strict=True), color=BAR_COLOUR, lw=1.2, marker="o" if len(pts) < 20 else None, ms=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
    return svg_uri(fig)


def thumbnail_uri(data: bytes | None, px: int = 160) -> str | None:
    """A JPEG data URI of the image `data` scaled to fit `px`×`px`; None when there is no decodable image."""
    if not data:
        return None
    try:
        img = Image.open(io.BytesIO(data), formats=["JPEG", "PNG", "WEBP"])
        img.draft("RGB", (px, px))
        img = img.convert("RGB")
        img.thumbnail((px, px))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
