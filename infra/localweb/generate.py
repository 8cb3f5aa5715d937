"""Corpus generator of the synthetic web: writes candidates, the hidden answers, the held-out eval split and web.json;
it never renders a candidate image and never talks to the network.

    OUT/candidates.parquet   url, caption                      (all the pipeline may read)
    OUT/answers.parquet      one row per candidate: ground truth (see ANSWERS_SCHEMA)
    OUT/eval/synthetic.parquet, OUT/eval/classnames.txt   held-out split: same concepts, other images
    OUT/wat/*.warc.wat.gz, OUT/wat/answers.parquet   pages linking the images, as Common Crawl WAT files (wat.py)
    OUT/crawl/*.warc.wat.gz, OUT/crawl/answers.parquet   every candidate linked from some page (only with crawl_files)
    OUT/web.json             seed, base_url, resolved config, counts (written last: its presence means complete)

Rows are written in chunks with `ParquetWriter`, so 10^6 rows take bounded memory (the plan's few integer arrays
plus one chunk of strings) and a few seconds.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from infra.localweb.captions import FOREIGN_SLOT, JUNK, SLOT_KIND, SLOT_LANG, junk_lang, write_captions
from infra.localweb.concepts import CONCEPTS, N_CONCEPTS, TEXTURES, concepts_of, eval_image_ids, is_digit, textures_of
from infra.localweb.config import ACCESS_LOG, WEB_JSON, WebConfig
from infra.localweb.faults import BOMB_SIDE, EXPECTED_OUTCOME, FAULTS, SERVES_IMAGE, Fault
from infra.localweb.hosts import host_names, host_of_rows, robots_expected, robots_of_hosts
from infra.localweb.plan import ORIGINAL, ROLES, RowPlan, plan_rows
from infra.localweb.plants import caption_concepts
from infra.localweb.rand import hash64, randint, uniform
from infra.localweb.render import TINY_SIDE, VARIANTS, image_bytes, image_sizes, variant_sizes
from infra.localweb.wat import write_crawl_wat, write_wat

CHUNK_ROWS = 65536
FAULT_NAMES = ("ok",) + tuple(str(f) for f in FAULTS)
_SALT_SLOT, _SALT_LANG, _SALT_TEMPLATE, _SALT_NUMBER = 401, 402, 403, 404

CANDIDATES_SCHEMA = pa.schema([("url", pa.string()), ("caption", pa.string())])
ANSWERS_SCHEMA = pa.schema(
    [
        ("row_id", pa.int64()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("concept", pa.int16()),  # index into CONCEPTS (eval/classnames.txt line number)
        ("class_name", pa.string()),  # "red circle", "handwritten digit 7"
        ("colour", pa.string()),  # null for digits
        ("shape", pa.string()),  # null for digits
        ("texture", pa.string()),  # null for digits
        ("digit", pa.int8()),  # -1 for shapes
        ("lang", pa.string()),  # en or a foreign_languages code (de, zh, th, ...); "und" for file-name junk
        ("caption_kind", pa.string()),  # concept, partial, junk
        ("role", pa.string()),  # plan.ROLES
        ("image_id", pa.int64()),
        ("variant", pa.int8()),  # render.VARIANTS index; 0 is the canonical image
        ("dup_cluster", pa.int64()),  # image id shared by >= 2 distinct URLs, else -1
        ("eval_copy_of", pa.int64()),  # eval split image_id this row copies, else -1
        ("same_url_as", pa.int64()),  # earlier row whose URL this row repeats, else -1
        ("fault", pa.string()),  # faults.Fault value
        ("expected_outcome", pa.string()),  # faults.EXPECTED_OUTCOME
        ("width", pa.int32()),  # of the image the URL finally serves; null when it serves none
        ("height", pa.int32()),
        ("host", pa.string()),  # the URL's host (base_url's unless virtual_hosts)
        ("robots", pa.string()),  # its robots.txt variant (hosts.Robots); null without virtual_hosts
        ("semantic_dup_of", pa.int64()),  # row whose image a dup_semantic row shows (pHash misses it), else -1
        ("caption_concept", pa.int16()),  # the concept the caption describes (differs from concept when mismatched)
        ("caption_mismatch", pa.bool_()),  # planted: the caption describes another concept (plants.py)
    ]
)


def generate(cfg: WebConfig, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the synthetic web for `cfg` into `out_dir` (created; existing files are replaced) and return the
    web.json content. Port 0 in `cfg.base_url` is resolved to a free loopback port first."""
    out = Path(out_dir)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    (out / WEB_JSON).unlink(missing_ok=True)  # an interrupted run must not look complete
    (out / ACCESS_LOG).unlink(missing_ok=True)  # a new web: its servers' requests start a new log
    cfg = resolve_port(cfg)
    plan = plan_rows(cfg)
    counts = _write_rows(cfg, plan, out)
    counts["eval_images"] = write_eval_split(cfg, out / "eval")
    if cfg.wat_pages:
        counts["wat"] = _write_wat(cfg, plan, out)
    if cfg.crawl_files:
        candidates = pq.read_table(out / "candidates.parquet")
        rows = list(zip(candidates["url"].to_pylist(), candidates["caption"].to_pylist(), strict=True))
        counts["crawl"] = write_crawl_wat(cfg.base_url, rows, out, cfg.crawl_files)
    info = {
        "format": 1,
        "seed": cfg.seed,
        "base_url": cfg.base_url,
        "config": cfg.model_dump(mode="json"),
        "counts": counts,
        "class_names": [c.class_name for c in CONCEPTS],
    }
    _atomic_write(out / WEB_JSON, json.dumps(info, indent=2).encode())
    return info


def resolve_port(cfg: WebConfig) -> WebConfig:
    """`cfg` with port 0 replaced by a port that is free on its host right now (the server binds it later)."""
    if cfg.port:
        return cfg
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((cfg.host, 0))
        port = s.getsockname()[1]
    return cfg.model_copy(update={"base_url": f"http://{cfg.host}:{port}"})


def _write_rows(cfg: WebConfig, plan: RowPlan, out: Path) -> dict[str, Any]:
    """Stream candidates.parquet and answers.parquet chunk by chunk; return the counts for web.json."""
    tallies: dict[str, dict[str, int]] = {"fault": {}, "role": {}, "lang": {}, "caption_kind": {}}
    if cfg.virtual_hosts:
        tallies["robots"] = {}
    per_concept = np.zeros(N_CONCEPTS, dtype=np.int64)
    tmp_c, tmp_a = out / "candidates.parquet.tmp", out / "answers.parquet.tmp"
    with pq.ParquetWriter(tmp_c, CANDIDATES_SCHEMA) as wc, pq.ParquetWriter(tmp_a, ANSWERS_SCHEMA) as wa:
        for start in range(0, cfg.n_candidates, CHUNK_ROWS):
            table = answer_chunk(cfg, plan, start, min(start + CHUNK_ROWS, cfg.n_candidates))
            wc.write_table(table.select(["url", "caption"]).cast(CANDIDATES_SCHEMA))
            wa.write_table(table)
            for key, tally in tallies.items():
                for item in pc.value_counts(table[key]).to_pylist():
                    tally[item["values"]] = tally.get(item["values"], 0) + item["counts"]
            per_concept += np.bincount(table["concept"].to_numpy(), minlength=N_CONCEPTS)
    os.replace(tmp_c, out / "candidates.parquet")
    os.replace(tmp_a, out / "answers.parquet")
    return {
        "rows": cfg.n_candidates,
        **{f"by_{k}": dict(sorted(v.items())) for k, v in tallies.items()},
        "dup_clusters": int(len(np.unique(plan.dup_cluster[plan.dup_cluster >= 0]))),
        "rows_in_dup_clusters": int((plan.dup_cluster >= 0).sum()),
        "by_concept": {CONCEPTS[i].class_name: int(n) for i, n in enumerate(per_concept)},
    }


def _write_wat(cfg: WebConfig, plan: RowPlan, out: Path) -> dict[str, int]:
    """OUT/wat/: pages linking about 2 × wat_pages of the web's `ok` images (each on ~2 pages), see `wat.py`."""
    wanted = 2 * cfg.wat_pages
    head = answer_chunk(cfg, plan, 0, min(cfg.n_candidates, 2 * wanted + 64))
    head = head.filter(pc.equal(head["fault"], "ok"))
    images = list(zip(head["url"].to_pylist()[:wanted], head["caption"].to_pylist()[:wanted], strict=True))
    if not images:
        return {}
    return write_wat(cfg.base_url, images, out, cfg.wat_pages, cfg.wat_files)


def answer_chunk(cfg: WebConfig, plan: RowPlan, start: int, stop: int) -> pa.Table:
    """The answers rows [start, stop) as an Arrow table with ANSWERS_SCHEMA (candidates are its url, caption)."""
    rows = np.arange(start, stop, dtype=np.int64)
    ids, variant, fault = plan.image_id[start:stop], plan.variant[start:stop], plan.fault[start:stop]
    concepts, textures = concepts_of(cfg, ids), textures_of(cfg, ids)
    plain = (plan.role[start:stop] == ORIGINAL) & (fault == 0) & (plan.dup_cluster[start:stop] < 0)
    described, mismatch = caption_concepts(cfg.seed, rows, concepts, plain, cfg.caption_mismatch_rate)
    slots, langs, captions = _captions(cfg, rows, described, textures)
    mismatch &= slots != JUNK  # a junk caption describes nothing
    described = np.where(mismatch, described, concepts)
    digit = is_digit(concepts)
    width, height = _served_sizes(cfg, ids, variant, fault)
    faults = np.array(FAULT_NAMES, dtype=object)[fault]
    expected = np.array([EXPECTED_OUTCOME[Fault(f)] for f in FAULT_NAMES], dtype=object)[fault]
    bases, hosts, robots = _hosts(cfg, plan.url_row[start:stop])
    if robots is not None:
        expected = robots_expected(robots, faults, expected)
    columns = {
        "row_id": rows,
        "url": _urls(bases, faults, ids, variant, plan.url_row[start:stop]),
        "caption": captions,
        "concept": concepts.astype(np.int16),
        "class_name": _CONCEPT_TABLE["class_name"][concepts],
        "colour": _CONCEPT_TABLE["colour"][concepts],
        "shape": _CONCEPT_TABLE["shape"][concepts],
        "texture": np.where(digit, None, np.array(TEXTURES, dtype=object)[textures]),
        "digit": _CONCEPT_TABLE["digit"][concepts].astype(np.int8),
        "lang": langs,
        "caption_kind": np.array(SLOT_KIND, dtype=object)[slots],
        "role": np.array(ROLES, dtype=object)[plan.role[start:stop]],
        "image_id": ids,
        "variant": variant,
        "dup_cluster": plan.dup_cluster[start:stop],
        "eval_copy_of": plan.eval_copy_of[start:stop],
        "same_url_as": np.where(plan.url_row[start:stop] != rows, plan.url_row[start:stop], -1),
        "fault": faults,
        "expected_outcome": expected,
        "width": width,
        "height": height,
        "host": hosts,
        "robots": robots if robots is not None else np.full(len(rows), None, dtype=object),
        "semantic_dup_of": plan.semantic_dup_of[start:stop],
        "caption_concept": described.astype(np.int16),
        "caption_mismatch": mismatch,
    }
    return pa.table({k: pa.array(v, type=ANSWERS_SCHEMA.field(k).type) for k, v in columns.items()})


def _concept_table() -> dict[str, np.ndarray]:
    return {
        "class_name": np.array([c.class_name for c in CONCEPTS], dtype=object),
        "colour": np.array([c.colour for c in CONCEPTS], dtype=object),
        "shape": np.array([c.shape for c in CONCEPTS], dtype=object),
        "digit": np.array([c.digit for c in CONCEPTS], dtype=np.int64),
    }


_CONCEPT_TABLE = _concept_table()


def _captions(cfg: WebConfig, rows: np.ndarray, concepts: np.ndarray, textures: np.ndarray):
    """(slot, lang, caption) per row: junk first, then foreign (`foreign_languages` evenly), then partial, else
    English."""
    u = uniform(cfg.seed, rows, _SALT_SLOT)
    slots = np.zeros(len(rows), dtype=np.int64)
    foreign = (u >= cfg.junk_rate) & (u < cfg.junk_rate + cfg.foreign_rate)
    slots[u < cfg.junk_rate] = JUNK
    foreign_slots = np.array([FOREIGN_SLOT[lang] for lang in cfg.foreign_languages], dtype=np.int64)
    slots[foreign] = foreign_slots[randint(cfg.seed, rows[foreign], _SALT_LANG, len(foreign_slots))]
    slots[(u >= cfg.junk_rate + cfg.foreign_rate) & (u < cfg.junk_rate + cfg.foreign_rate + cfg.partial_rate)] = 1
    templates, numbers = hash64(cfg.seed, rows, _SALT_TEMPLATE), hash64(cfg.seed, rows, _SALT_NUMBER)
    captions = write_captions(slots, templates, concepts, textures, numbers)
    langs = np.array(SLOT_LANG, dtype=object)[slots]
    langs[slots == JUNK] = junk_lang(templates[slots == JUNK])
    return slots, langs, captions


def _served_sizes(cfg: WebConfig, ids: np.ndarray, variant: np.ndarray, fault: np.ndarray):
    """(width, height) of what each URL finally serves as an image (None where it serves none)."""
    w, h = variant_sizes(*image_sizes(cfg, ids), variant)
    names = np.array(FAULT_NAMES, dtype=object)[fault]
    tiny, bomb = names == Fault.TINY, names == Fault.BOMB
    w[tiny], h[tiny], w[bomb], h[bomb] = TINY_SIDE, TINY_SIDE, BOMB_SIDE, BOMB_SIDE
    serves = np.isin(names, [str(f) for f in SERVES_IMAGE])
    return np.where(serves, w, None), np.where(serves, h, None)


def _hosts(cfg: WebConfig, url_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(base URL, host, robots variant or None) per row: base_url's host, or its virtual host (hosts.py)."""
    n = len(url_rows)
    if not cfg.virtual_hosts:
        return np.full(n, cfg.base_url, dtype=object), np.full(n, cfg.host, dtype=object), None
    k = host_of_rows(cfg.seed, url_rows, cfg.virtual_hosts, cfg.host_skew)
    names = np.array(host_names(cfg.virtual_hosts), dtype=object)
    variants = np.array([str(v) for v in robots_of_hosts(cfg.virtual_hosts)], dtype=object)
    bases = np.array([f"http://{h}:{cfg.port}" for h in names], dtype=object)
    return bases[k], names[k], variants[k]


def _urls(base: np.ndarray, faults: np.ndarray, ids: np.ndarray, variant: np.ndarray, url_row: np.ndarray) -> list:
    """`{base}/img/{fault}/{image_id}/{variant}/{url_row}.{ext}` (`base` per row): stateless, the server parses
    everything it needs."""
    ext = np.array([v.ext for v in VARIANTS], dtype=object)[variant]
    ext[np.isin(faults, [Fault.TINY, Fault.BOMB])] = "png"
    return [
        f"{b}/img/{f}/{i}/{v}/{r}.{e}"
        for b, f, i, v, r, e in zip(
            base.tolist(), faults.tolist(), ids.tolist(), variant.tolist(), url_row.tolist(), ext.tolist(), strict=True
        )
    ]


def write_eval_split(cfg: WebConfig, eval_dir: Path) -> int:
    """Render the held-out split (eval_per_concept images per concept, canonical JPEGs) into
    eval_dir/synthetic.parquet (image, label, class_name, image_id) and eval_dir/classnames.txt
    (one class name per line, line number = label). Returns the number of images."""
    ids = eval_image_ids(cfg)
    labels = concepts_of(cfg, ids)
    schema = pa.schema(
        [("image", pa.binary()), ("label", pa.int32()), ("class_name", pa.string()), ("image_id", pa.int64())]
    )
    tmp = eval_dir / "synthetic.parquet.tmp"
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, len(ids), 256):
            chunk_ids, chunk_labels = ids[start : start + 256], labels[start : start + 256]
            images = [image_bytes(cfg, int(i), 0) for i in chunk_ids]
            names = [CONCEPTS[int(c)].class_name for c in chunk_labels]
            writer.write_table(pa.table([images, chunk_labels.astype(np.int32), names, chunk_ids], schema=schema))
    os.replace(tmp, eval_dir / "synthetic.parquet")
    _atomic_write(eval_dir / "classnames.txt", "".join(c.class_name + "\n" for c in CONCEPTS).encode())
    return len(ids)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
