"""`clipforge report RUN`: one self-contained, offline HTML page of what curation did (DESIGN.md §8).

Sections, in order: run header, extraction (only for a build of a `clipforge extract` output), funnel, rejection
reasons, download errors, politeness (requests per host, robots.txt, opt-outs), languages, balancing (rank plot, head
entries), dedup (cluster sizes, example pairs), model filters (CLIP-score histogram with the threshold, the
lowest-scoring dropped pairs, semantic-duplicate groups), image size and caption length, random kept samples, training,
evaluation. A section whose inputs the run lacks says so in one line. `pipeline.report_inputs` reads the run,
`pipeline.report_summaries` computes, `pipeline.report_plots` draws; this module only lays out HTML and writes it.
"""

from __future__ import annotations

import numpy as np

from pipeline import report_plots as plots
from pipeline.core.storage import S3Options, write_bytes
from pipeline.report_html import esc, figure, kv_table, missing, page, section, table
from pipeline.report_inputs import ReportInputs, load_inputs
from pipeline.report_summaries import (
    DOWNLOAD_STAGES,
    IMAGE_STAGES,
    cluster_sizes,
    funnel_problems,
    funnel_steps,
    head_entries,
    http_details,
    log_spaced_indices,
    rank_curves,
    reasons_for,
    value_counts,
    word_counts,
)
from pipeline.rundir import RunDir

TRAIN_KEYS = ("loss/contrastive", "train/lr", "train/logit_scale", "perf/samples_per_s")


def header(x: ReportInputs) -> str:
    m = x.manifest
    rows = [["run", x.uri], ["status", m.get("status")], ["kind", m.get("kind")]]
    rows += [["config hash", m.get("config_hash")], ["seconds", m.get("seconds")]]
    rows += [[f"count: {k}", v] for k, v in (m.get("counts") or {}).items()]
    steps = m.get("seconds_by_step") or {}
    if steps:
        rows.append(["seconds by step", ", ".join(f"{k} {float(v):.1f}" for k, v in steps.items())])
    n_in = (m.get("counts") or {}).get("input_rows")
    if isinstance(n_in, int) and isinstance(m.get("seconds"), int | float) and m["seconds"] > 0:
        rows.append(["throughput", f"{n_in / m['seconds']:,.1f} input rows/s"])
    shards = m.get("shards") or []
    if shards:
        rows.append(["shards", f"{len(shards):,} files, {sum(int(s.get('n', 0)) for s in shards):,} samples"])
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
    rows.append(["versions", versions or "—"])
    body = kv_table(rows)
    if shards:
        shard_rows = [[s.get("path"), s.get("n"), s.get("sha256")] for s in shards[:200]]
        more = f" (first 200 of {len(shards):,})" if len(shards) > 200 else ""
        body += f"<details><summary>shard manifest{more}</summary>{table(['path', 'n', 'sha256'], shard_rows, [1])}"
        body += "</details>"
    return section("run", "Run", body)


EXTRACT_STEPS = (
    ("records", "WAT records"),
    ("records_with_links", "records with links"),
    ("img_links", "IMG links"),
    ("pairs", "pairs"),
    ("candidates", "candidates"),
)


def extraction(x: ReportInputs) -> str:
    """The `clipforge extract` funnel ahead of the build's (only for a build whose input was an extract output)."""
    e = x.extract or {}
    total = max(int(e.get("img_links") or 0), 1)
    lines = [f"<p>{int(e.get('files', 0)):,} WAT files read by <code>clipforge extract</code> into "]
    lines[0] += f"<code>{esc(e.get('extract', '?'))}</code>; its candidates are the build's input.</p>"
    dropped = e.get("dropped") or {}
    notes = {
        "pairs": ", ".join(f"{esc(k)} {int(v):,}" for k, v in dropped.items()) or "nothing dropped",
        "candidates": f"−{int(e.get('duplicates_collapsed', 0)):,} exact (url, caption) duplicates collapsed",
    }
    bars = [_funnel_row(label, int(e.get(key) or 0), total, notes.get(key, "")) for key, label in EXTRACT_STEPS]
    body = lines[0] + f'<div class="funnel">{"".join(bars)}</div>'
    rows = [["files", e.get("files")], ["files committed", e.get("files_committed")]]
    rows += [[label, e.get(key)] for key, label in EXTRACT_STEPS]
    rows += [[f"dropped: {k}", v] for k, v in dropped.items()]
    rows += [["duplicates collapsed", e.get("duplicates_collapsed")]]
    rows += [["truncated files", len(e.get("truncated_files") or [])], ["errors", len(e.get("errors") or [])]]
    body += kv_table(rows)
    return section("extraction", "Extraction (clipforge extract)", body)


def funnel(x: ReportInputs) -> str:
    if x.funnel is None:
        return section("funnel", "Funnel", missing("stats/funnel.json is absent"))
    f, total = x.funnel, max(int(x.funnel["input_rows"]), 1)
    lines = [_funnel_row("input", int(f["input_rows"]), total, "")]
    for s in funnel_steps(f):
        drops = ", ".join(f"{esc(r)} {n:,}" for r, n in s["reasons"])
        lines.append(_funnel_row(f"after {s['stage']}", s["after"], total, f"−{s['dropped']:,}: {drops}"))
    lines.append(_funnel_row("kept", int(f["kept"]), total, f"{int(f['kept']) / total:.1%} of input"))
    body = f'<div class="funnel">{"".join(lines)}</div>'
    body += "".join(f'<p class="warn">Funnel does not add up: {esc(p)}</p>' for p in funnel_problems(f))
    return section("funnel", "Funnel", body)


def _funnel_row(label: str, rows: int, total: int, drops: str) -> str:
    width = 100.0 * rows / total
    bar = f'<div class="track"><div class="fbar" style="width:{width:.2f}%"></div></div>'
    return f'<div><b>{esc(label)}</b> {rows:,}</div>{bar}<div class="drops">{drops}</div>'


def reasons(x: ReportInputs) -> str:
    if x.funnel is None or not x.funnel.get("by_reason"):
        return section("reasons", "Rejection reasons", missing("no rejected rows (stats/funnel.json)"))
    total = max(int(x.funnel["input_rows"]), 1)
    rows = [[r["stage"], r["reason"], r["rows"], f"{r['rows'] / total:.2%}"] for r in x.funnel["by_reason"]]
    top = [(f"{r['stage']} / {r['reason']}", int(r["rows"])) for r in x.funnel["by_reason"][:20]]
    body = figure(plots.barh(top, "rows rejected"), "rejection reasons")
    return section("reasons", "Rejection reasons", body + table(["stage", "reason", "rows", "of input"], rows, [2, 3]))


def downloads(x: ReportInputs) -> str:
    got = reasons_for(x.funnel or {}, DOWNLOAD_STAGES)
    bad = reasons_for(x.funnel or {}, IMAGE_STAGES)
    if not got and not bad:
        return section("download", "Download errors", missing("no download or image stage rejected rows"))
    info = x.manifest.get("download")
    body = kv_table([(f"download {k}", v) for k, v in info.items()]) if isinstance(info, dict) else ""
    if got:
        body += figure(plots.barh(got, "rows"), "download errors") + table(["download reason", "rows"], got, [1])
    codes = http_details(x.http) if x.http is not None else []
    if codes:
        body += table(["HTTP status (detail of http_error / http_5xx)", "rows"], codes, [1])
    if bad:
        body += table(["decode / validation reason", "rows"], bad, [1])
    return section("download", "Download errors", body)


def politeness(x: ReportInputs) -> str:
    """How the download treated the sites it read: settings, requests per host, robots.txt, opt-outs by source."""
    p = x.politeness
    if p is None:
        return section("politeness", "Politeness", missing("stats/politeness.json is absent (text-only build)"))
    body = (
        f"<p>{int(p.get('requests', 0)):,} HTTP requests to {int(p.get('hosts', 0)):,} hosts for "
        f"{int(p.get('rows', 0)):,} downloaded rows: every image attempt (retries included) plus one robots.txt "
        "request per origin; a registry or robots.txt refusal makes no request.</p>"
    )
    body += "<h3>Settings</h3>" + kv_table(list((p.get("settings") or {}).items()))
    if x.hosts is not None and x.hosts.num_rows:
        cols = x.hosts.column_names
        top = list(zip(x.hosts["host"].to_pylist(), x.hosts["requests"].to_pylist(), strict=True))
        body += f"<h3>Requests per host (top {x.hosts.num_rows})</h3>"
        body += figure(plots.barh([(h or "(no host)", int(n)) for h, n in top], "requests"), "requests per host")
        rows = [[f"{v:.1f}" if isinstance(v, float) else v for v in r.values()] for r in x.hosts.to_pylist()]
        body += table(cols, rows, range(1, len(cols)))
    spread = p.get("spread_hosts") or []
    if spread:
        body += "<h3>Large hosts spread over download parts</h3>" + table(
            ["host", "parts", "requests at once per part"],
            [[r["host"], r["parts"], r["slots_per_part"]] for r in spread[:20]],
            [1, 2],
        )
        body += (
            '<p class="muted">A host with more rows than download.rows_per_part is spread over k ≤ '
            "per_host_concurrency parts, each allowed ⌊per_host_concurrency / k⌋ requests at once, so the sum over "
            "the cluster stays within the limit; a host with a Crawl-delay is never spread.</p>"
        )
    robots = p.get("robots") or {}
    if robots.get("origins"):
        states = ", ".join(f"{esc(k)} {int(v):,}" for k, v in (robots.get("states") or {}).items())
        body += f"<h3>robots.txt</h3><p>{int(robots['origins']):,} origins fetched once each: {states}.</p>"
    refused = p.get("robots_refused_origins") or []
    if refused:
        body += table(["origin refused as a whole", "why"], [[r["origin"], r["why"]] for r in refused])
    by_source = p.get("opt_out_by_source") or {}
    robots_rows = by_source.get("robots.txt", {}).get("top", [])
    if robots_rows:
        rows = [[*key.split("\t", 1), n] for key, n in robots_rows[:20]]
        body += table(["host refused by robots.txt", "why", "rows"], rows, [2])
    if by_source:
        body += "<h3>Opt-outs by source</h3>" + table(
            ["source", "rows"], [[k, v["rows"]] for k, v in by_source.items()], [1]
        )
        for source in ("X-Robots-Tag", "registry"):
            top = by_source.get(source, {}).get("top", [])
            if top:
                key = "directive" if source == "X-Robots-Tag" else "registry entry"
                body += table([f"{source}: {key}", "rows"], top[:20], [1])
    else:
        body += '<p class="muted">No opt-outs: no X-Robots-Tag, registry or robots.txt refusal.</p>'
    return section("politeness", "Politeness", body)


def languages(x: ReportInputs) -> str:
    t = x.sidecars
    if t is None or "lang" not in t.column_names:
        return section("languages", "Languages", missing("no kept rows with a `lang` column"))
    counts = value_counts(t["lang"].to_pylist())
    body = figure(plots.barh(counts, "kept rows"), "languages") + _source_note(x)
    return section("languages", "Languages (kept rows)", body + table(["language", "rows"], counts, [1]))


def _source_note(x: ReportInputs) -> str:
    where = f"{x.sidecar_kind}/ ({len(x.files):,} of {x.n_files_total:,} parquet files)"
    return f'<p class="muted">From {x.sidecars.num_rows:,} kept rows in {esc(where)}.</p>'


def balance(x: ReportInputs) -> str:
    if x.pre is None or x.post is None:
        return section("balance", "Balancing", missing("stats/entry_counts_pre.npy / entry_counts_post.npy absent"))
    ids, pre, post = rank_curves(x.pre, x.post)
    keep = log_spaced_indices(len(ids))
    curves = {"before balancing": pre[keep]}
    if x.after_dedup is not None and x.after_dedup.shape == x.pre.shape:
        curves["after dedup"] = x.after_dedup.astype(np.int64)[ids][keep]
    curves["after balancing"] = post[keep]
    info = x.manifest.get("balance") or {}
    lines = {k: float(info[k]) for k in ("t", "t_pre") if isinstance(info.get(k), int | float)}
    body = figure(plots.rank_plot(keep + 1, curves, lines), "entry counts rank plot")
    flat = [(k, v) for k, v in info.items() if k not in ("t_by_lang", "languages")]
    body += kv_table(flat) if flat else ""
    body += _t_lang_table(info.get("languages"))
    if "balance" in x.notes:
        body += f'<p class="muted">{esc(x.notes["balance"])}</p>'
    head = head_entries(x.pre, x.post, x.t, x.names)
    rows = [[e["id"], e["name"] if e["name"] is not None else "—", e["pre"], e["cap"], e["post"]] for e in head]
    headers = ["entry id", "entry", "matches before", "cap min(before, t)", "after"]
    body += "<h3>Head entries</h3>" + table(headers, rows, [0, 2, 3, 4])
    body += (
        '<p class="muted">Matches per entry before and after balancing; the entry alone keeps ~min(before, t). '
        "After can exceed the cap: a row is kept with 1 − Π(1 − p<sub>e</sub>) over all its entries.</p>"
    )
    return section("balance", "Balancing (entry counts)", body)


def _t_lang_table(languages: dict | None) -> str:
    """Worldwide: each language's threshold (t_en for en, t_lang for the others) and count₁ summary."""
    if not languages:
        return ""
    headers = ["language", "entries", "entries matched", "matches", "t", "tail share at t"]
    rows = [
        [lang, v["entries"], v["entries_matched"], v["matches"], f"{v['t']:g}", f"{v['tail_share_at_t']:.3f}"]
        for lang, v in sorted(languages.items(), key=lambda kv: -kv[1]["matches"])
    ]
    note = (
        '<p class="muted">Meta CLIP 2: English at balance.t; every other language at '
        "t<sub>lang</sub> = max(1, p_to_t(counts<sub>lang</sub>, t_to_p(counts<sub>en</sub>, t<sub>en</sub>))), so "
        "each keeps English's tail share.</p>"
    )
    return "<h3>Per-language thresholds</h3>" + table(headers, rows, [1, 2, 3, 4, 5]) + note


def worldwide(x: ReportInputs) -> str:
    """Worldwide builds (#21): the per-language funnel, the languages dropped for lack of metadata and the balancing
    of the largest languages."""
    rows = x.language_funnel or {}
    listed = {k: v for k, v in rows.items() if v["with_metadata"]}
    dropped = {k: v for k, v in rows.items() if not v["with_metadata"]}
    order = sorted(listed.items(), key=lambda kv: (-kv[1]["candidates"], kv[0]))
    headers = ["language", "candidates", "with metadata", "matched", "kept", "kept / candidates"]
    body = table(
        headers,
        [
            [lang, v["candidates"], v["candidates"], v["matched"], v["kept"], _share(v["kept"], v["candidates"])]
            for lang, v in order
        ],
        [1, 2, 3, 4, 5],
    )
    body += (
        '<p class="muted">Per language: the rows that reached the match stage (by the language of their list; '
        "lid.176 labels merged into one list, e.g. yue into zh, count under it), those with a metadata list, those "
        "matched against it and those kept after balancing at the language's own t.</p>"
    )
    n_dropped = sum(v["candidates"] for v in dropped.values())
    body += f"<h3>Dropped for lack of metadata ({len(dropped)} languages, {n_dropped:,} rows)</h3>"
    if dropped:
        items = sorted(((lang, v["candidates"]) for lang, v in dropped.items()), key=lambda kv: (-kv[1], kv[0]))
        body += table(["lid.176 label", "rows (no_metadata_language)"], items, [1])
    else:
        body += "<p>None: every caption's language has a list.</p>"
    if x.language_counts:
        curves = {}
        for lang, (pre, post) in x.language_counts.items():
            ids, a, b = rank_curves(pre, post)
            keep = log_spaced_indices(len(ids), 400)
            curves[lang] = (keep + 1, a[keep], b[keep])
        body += f"<h3>Balancing of the {len(curves)} largest languages</h3>"
        body += figure(plots.language_rank_plots(curves, x.t_by_lang), "per-language entry counts rank plots")
    return section("worldwide", "Worldwide (per language)", body)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def dedup(x: ReportInputs) -> str:
    if not x.dedup:
        return section("dedup", "Duplicates", missing("no dedup/exact.parquet or dedup/near.parquet"))
    keys = ["rows", "edges", "dropped", "clusters", "seconds"]
    rows = [[step, *[s.get(k, "—") for k in keys]] for step, s in x.dedup_summary.items()]
    body = table(["step", *keys], rows, range(1, 6))
    series = {step: cluster_sizes(a) for step, a in x.dedup.items() if a.num_rows}
    if series:
        body += figure(plots.cluster_bars(series), "duplicate cluster sizes")
    for step, pairs in x.pairs.items():
        if pairs:
            body += f'<h3>Example {esc(step)} duplicates</h3><div class="grid">{"".join(map(_pair, pairs))}</div>'
    return section("dedup", "Duplicates", body)


def _thumb(data: bytes | None, label: str) -> str:
    uri = plots.thumbnail_uri(data)
    return f'<img src="{esc(uri)}" alt="{esc(label)}">' if uri else f'<div class="noimg">{esc(label)}</div>'


def _pair(p: dict) -> str:
    imgs = _thumb(p["rep_image"], "kept copy: image not in the sampled shards")
    imgs += _thumb(p["image"], "dropped copy: no image kept")
    note = f"Hamming {p['distance']}, cluster of {p['cluster_size']}"
    urls = f'kept <span class="mono">{esc(p["rep_url"])}</span><br>dropped <span class="mono">{esc(p["url"])}</span>'
    return f'<div class="card" style="grid-column: span 2"><div class="pair">{imgs}</div>{esc(note)}<br>{urls}</div>'


def model_filters(x: ReportInputs) -> str:
    if x.clip_filter is None and x.semdedup is None:
        why = "no dedup/clip_filter.json or dedup/semdedup.json (a build without the clip_filter and semdedup stages)"
        return section("model", "Model filters", missing(why))
    body = ""
    if x.clip_filter is not None:
        c = x.clip_filter
        rule = f"top {c['keep_fraction']:g} of the run" if c.get("keep_fraction") is not None else "fixed threshold"
        body += "<h3>CLIP score (cosine of image and caption embeddings)</h3>"
        thr = c.get("threshold")
        rows = [["scored", c.get("scored")], ["rejected low_clip_score", c.get("rejected")]]
        body += kv_table([*rows, ["threshold", f"{thr:.4f} ({rule})" if thr is not None else "—"]])
        lines = {"threshold": float(thr)} if thr is not None else {}
        hist = plots.binned_histogram(c.get("hist", []), c.get("hist_edges", []), "CLIP score", lines)
        body += figure(hist, "CLIP-score histogram with the threshold")
        if x.clip_low:
            cards = "".join(_scored(r) for r in x.clip_low)
            body += f'<h3>Lowest-scoring dropped pairs</h3><div class="grid">{cards}</div>'
    else:
        body += missing("no dedup/clip_filter.json (the clip_filter stage did not run)")
    if x.semdedup is not None:
        s = x.semdedup
        keys = ["embedded", "rejected", "eps", "clusters", "largest_cluster"]
        body += "<h3>Semantic duplicates (SemDeDup over image embeddings)</h3>"
        body += table(keys, [[s.get(k, "—") for k in keys]], range(len(keys)))
        for g in x.sem_groups:
            body += _group(g)
    else:
        body += missing("no dedup/semdedup.json (the semdedup stage did not run)")
    return section("model", "Model filters", body)


def _scored(r: dict) -> str:
    img = _thumb(r["image"], "no image stored")
    return (
        f'<div class="card">{img}<div>{esc(r["caption"])}</div><div class="muted">score {r["score"]:.4f}</div></div>'
    )


def _group(g: dict) -> str:
    k = g["kept_row"]
    cards = f'<div class="card">{_thumb(k["image"], "no image stored")}<div>kept: {esc(k["caption"])}</div></div>'
    for r in g["dropped"]:
        img = _thumb(r["image"], "no image stored")
        cards += (
            f'<div class="card">{img}<div>{esc(r["caption"])}</div><div class="muted">cos {r["cos"]:.4f}</div></div>'
        )
    more = g["n_dropped"] - len(g["dropped"])
    note = f" ({more} more not shown)" if more > 0 else ""
    head = f'<p class="muted">kept <span class="mono">{esc(g["kept"])}</span>, {g["n_dropped"]} dropped{note}</p>'
    return head + f'<div class="grid">{cards}</div>'


def sizes(x: ReportInputs) -> str:
    t = x.sidecars
    if t is None:
        return section("sizes", "Image size and caption length", missing("no kept rows"))
    figs, cols = [], t.column_names
    for a, b, label in (("orig_width", "orig_height", "source"), ("width", "height", "stored")):
        if a in cols and b in cols:
            w, h = (np.asarray(t[c].to_numpy(zero_copy_only=False), np.float64) for c in (a, b))
            figs.append(figure(plots.histogram(np.sqrt(w * h), f"{label} image size √(w·h), px", log_x=True), label))
            figs.append(figure(plots.histogram(w / np.where(h > 0, h, np.nan), f"{label} aspect ratio w/h"), label))
    note = "" if figs else missing("image sizes (a text-only build has no images)")
    if "caption" in cols:
        caps = t["caption"].to_pylist()
        chars = np.asarray([len(c or "") for c in caps])
        figs.append(figure(plots.histogram(chars, "caption length, characters", log_x=True), "caption characters"))
        figs.append(figure(plots.histogram(word_counts(caps), "caption length, words", integer=True), "words"))
    body = note + f'<div class="figs">{"".join(figs)}</div>' + _source_note(x)
    return section("sizes", "Image size and caption length", body)


def samples(x: ReportInputs) -> str:
    if not x.samples:
        return section("samples", "Random kept samples", missing("no kept rows"))
    cards = []
    for r in x.samples:
        size = f"{r['width']}×{r['height']} · " if r.get("width") is not None else ""
        img = _thumb(r.get("image"), "no image (text-only build)") if x.sidecar_kind == "shards" else ""
        meta = f'<div class="muted">{esc(size)}{esc(r.get("lang") or "")}</div>'
        cards.append(f'<div class="card">{img}<div>{esc(r.get("caption"))}</div>{meta}</div>')
    note = f'<p class="muted">{len(x.samples)} rows drawn with a fixed seed.</p>'
    return section("samples", "Random kept samples", note + f'<div class="grid">{"".join(cards)}</div>')


def training(x: ReportInputs) -> str:
    if x.train is None:
        why = x.notes.get("training", "no metrics.csv (pass --train-run DIR, or put the training run at RUN/train/)")
        return section("training", "Training", missing(why))
    rows = x.train["rows"]
    keys = [k for k in TRAIN_KEYS if rows and k in rows[0]] + eval_curve_keys(rows)
    body = f'<p class="muted">{esc(x.train["source"])}: {len(rows)} logged steps.</p>'
    body += figure(plots.training_curves(rows, keys), "training curves") if keys else ""
    if rows:
        last = rows[-1]
        body += table(["last logged", "value"], [[k, last[k]] for k in last if last[k] != ""])
    return section("training", "Training", body)


def eval_curve_keys(rows: list[dict[str, str]]) -> list[str]:
    """The in-run evaluation's headline columns of metrics.csv (`eval/<benchmark>/acc1`, `.../image_retrieval_
    recall@1`), drawn beside the loss; their cells are empty on steps without an evaluation."""
    heads = ("/acc1", "/image_retrieval_recall@1")
    return sorted(k for k in (rows[0] if rows else {}) if k.startswith("eval/") and k.endswith(heads))


def evaluation(x: ReportInputs) -> str:
    if x.eval is None:
        why = x.notes.get("evaluation", "no results.json (pass --eval DIR, or put it at RUN/eval/)")
        return section("evaluation", "Evaluation", missing(why))
    res = x.eval["results"]
    body = f'<p class="muted">{esc(x.eval["source"])} · model {esc(res.get("model"))}</p>'
    records = res.get("results", [])
    for task in dict.fromkeys(r["task"] for r in records):
        mine = [r for r in records if r["task"] == task]
        keys = list(dict.fromkeys(k for r in mine for k in r["metrics"]))
        rows = [[r["benchmark"], r.get("n_samples"), *[_metric(k, r["metrics"].get(k)) for k in keys]] for r in mine]
        body += f"<h3>{esc(task)}</h3>" + table(["benchmark", "n", *keys], rows, range(1, len(keys) + 2))
    return section("evaluation", "Evaluation", body)


def _metric(key: str, value: object) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value:g}" if key == "C" else f"{100 * value:.1f}"


SECTIONS = (
    ("run", "Run", header),
    ("extraction", "Extraction", extraction),
    ("funnel", "Funnel", funnel),
    ("reasons", "Reasons", reasons),
    ("download", "Downloads", downloads),
    ("politeness", "Politeness", politeness),
    ("languages", "Languages", languages),
    ("balance", "Balancing", balance),
    ("worldwide", "Worldwide", worldwide),
    ("dedup", "Duplicates", dedup),
    ("model", "Model filters", model_filters),
    ("sizes", "Sizes", sizes),
    ("samples", "Samples", samples),
    ("training", "Training", training),
    ("evaluation", "Evaluation", evaluation),
)


def render(x: ReportInputs) -> str:
    """The report page for `x` (pure: same inputs, same bytes)."""
    shown = [s for s in SECTIONS if s[0] != "extraction" or x.extract is not None]  # a plain list: no extraction
    shown = [s for s in shown if s[0] != "worldwide" or x.language_funnel is not None]  # English-only: none
    body = "\n".join(fn(x) for _, _, fn in shown)
    return page(f"clipforge report: {x.uri}", [(sid, name) for sid, name, _ in shown], body)


def write_report(
    run: str,
    out: str | None = None,
    *,
    s3: S3Options | None = None,
    train_run: str | None = None,
    eval_dir: str | None = None,
    seed: int = 0,
) -> str:
    """Write the report of `run` to `out` (default RUN/report.html; local or s3://, atomically); returns its URI."""
    inputs = load_inputs(run, s3, train_run=train_run, eval_dir=eval_dir, seed=seed)
    target = out or RunDir(run, s3).path("report.html")
    write_bytes(target, render(inputs).encode("utf-8"), s3)
    return target
