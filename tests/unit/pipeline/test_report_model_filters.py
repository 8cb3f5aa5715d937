"""The report's model-filter section (#22): the picks of `pipeline.stages.model_thumbs` (lowest-scoring dropped rows,
largest semantic-duplicate groups), the thumbs a build stores for them (only those rows, from the download parts),
and the section rendered from a run directory with synthetic artifacts: histogram with the threshold, thumbnails
with captions, groups with cosines; a run without the artifacts says so in one line. No Ray."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.report import render, write_report
from pipeline.report_inputs import ReportInputs
from pipeline.rundir import RunDir
from pipeline.stages.clip_filter import LIST_SCHEMA
from pipeline.stages.model_thumbs import (
    CLIP_SHOWN,
    DROPPED_PER_GROUP,
    duplicate_groups,
    lowest_scores,
    shown_uids,
    write_thumbs,
)


def jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 24, 3), shade, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def clip_list(n: int) -> pa.Table:
    """n dropped rows u00.., scores descending with the index (u{n-1} scores lowest), one tie."""
    scores = [0.1 - 0.01 * i for i in range(n)]
    scores[-1] = scores[-2]  # a tie: broken by uid
    details = [f"score={s:.4f} threshold=0.1500" for s in scores]
    return pa.table([[f"u{i:02d}" for i in range(n)], details], schema=LIST_SCHEMA)


def sem_list() -> pa.Table:
    """Groups: k1 (3 dropped), k0 (1 dropped), k2 (3 dropped: ties k1 in size, k1 < k2 so k1 first), k3 (6)."""
    rows = [("d10", "k1 cos=0.9900"), ("d11", "k1 cos=0.9950"), ("d12", "k1 cos=0.9910"), ("d00", "k0 cos=0.9800")]
    rows += [(f"d2{i}", f"k2 cos=0.99{i}0") for i in range(3)]
    rows += [(f"d3{i}", f"k3 cos=0.98{i}0") for i in range(6)]
    return pa.table([[r[0] for r in rows], [r[1] for r in rows]], schema=LIST_SCHEMA)


def test_lowest_scores_are_the_lowest_first_ties_by_uid():
    picked = lowest_scores(clip_list(20))
    assert len(picked) == CLIP_SHOWN
    assert [p["uid"] for p in picked[:3]] == ["u18", "u19", "u17"]  # u18 and u19 tie: by uid
    assert [p["score"] for p in picked] == sorted(p["score"] for p in picked)
    assert all(p["threshold"] == 0.15 for p in picked)
    assert [p["uid"] for p in lowest_scores(clip_list(3), k=5)] == ["u01", "u02", "u00"]


def test_duplicate_groups_largest_first_most_similar_first():
    groups = duplicate_groups(sem_list())
    assert [(g["kept"], g["n_dropped"]) for g in groups] == [("k3", 6), ("k1", 3), ("k2", 3), ("k0", 1)]
    assert len(groups[0]["dropped"]) == DROPPED_PER_GROUP and groups[0]["dropped"][0] == {"uid": "d35", "cos": 0.985}
    assert [r["uid"] for r in groups[1]["dropped"]] == ["d11", "d12", "d10"]
    assert shown_uids("semdedup", sem_list())[:5] == ["k3", "d35", "d34", "d33", "d32"]


def write_run(tmp: Path, with_thumbs: bool = True) -> Path:
    """A run with the model filters' artifacts; thumbs from download parts via `write_thumbs` (what a build does)."""
    (tmp / "dedup").mkdir(parents=True)
    (tmp / "work" / "download").mkdir(parents=True)
    (tmp / "manifest.json").write_text(json.dumps({"status": "complete"}))
    clip, sem = clip_list(20), sem_list()
    every = sorted(set(clip["uid"].to_pylist()) | set(sem["uid"].to_pylist()) | {"k0", "k1", "k2", "k3", "other"})
    half = len(every) // 2
    for part, uids in enumerate((every[:half], every[half:])):
        table = pa.table({"uid": uids, "caption": [f"caption of <{u}>" for u in uids], "image": [jpeg(9)] * len(uids)})
        pq.write_table(table, tmp / "work" / "download" / f"part-{part:06d}.parquet")
    pq.write_table(clip, tmp / "dedup" / "clip_filter.parquet")
    pq.write_table(sem, tmp / "dedup" / "semdedup.parquet")
    hist = [0] * 40
    hist[21], hist[22] = 20, 80
    edges = np.linspace(-1, 1, 41).tolist()
    summary = {"scored": 100, "rejected": 20, "threshold": 0.15, "keep_fraction": 0.8, "hist": hist}
    (tmp / "dedup" / "clip_filter.json").write_text(json.dumps({**summary, "hist_edges": edges}))
    info = {"embedded": 80, "rejected": sem.num_rows, "eps": 0.02, "clusters": 4, "largest_cluster": 30}
    (tmp / "dedup" / "semdedup.json").write_text(json.dumps(info))
    if with_thumbs:
        run = RunDir(str(tmp))
        assert write_thumbs(run, "clip_filter", clip) == CLIP_SHOWN
        assert write_thumbs(run, "semdedup", sem) == 4 + 4 + 3 + 3 + 1  # kept rows + at most 4 dropped each
    return tmp


def test_write_thumbs_stores_only_the_shown_rows(tmp_path):
    run = write_run(tmp_path)
    thumbs = pq.read_table(run / "dedup" / "clip_filter_thumbs.parquet")
    assert thumbs["uid"].to_pylist() == sorted(shown_uids("clip_filter", clip_list(20)))
    assert thumbs["caption"][0].as_py() == "caption of <u08>" and thumbs["image"][0].as_py() == jpeg(9)
    assert "other" not in pq.read_table(run / "dedup" / "semdedup_thumbs.parquet")["uid"].to_pylist()


def test_model_section_from_a_run(tmp_path):
    page = Path(write_report(str(write_run(tmp_path)))).read_text()
    block = re.search('<section id="model">(.*?)</section>', page, re.S).group(1)
    assert "Not in this run" not in block and 'class="noimg"' not in block
    assert "0.1500 (top 0.8 of the run)" in block and 'alt="CLIP-score histogram with the threshold"' in block
    low = block.split("Lowest-scoring dropped pairs")[1].split("<h3>")[0]
    assert low.count("data:image/jpeg") == CLIP_SHOWN and "score 0.0100" in low
    assert low.index("caption of &lt;u18&gt;") < low.index("caption of &lt;u19&gt;") < low.index("&lt;u17&gt;")
    groups = block.split("Semantic duplicates")[1]
    assert groups.count("data:image/jpeg") == 15 and 'kept <span class="mono">k3</span>, 6 dropped (2 more' in groups
    assert "cos 0.9950" in groups and "kept: caption of &lt;k1&gt;" in groups


def test_model_section_without_thumbs_or_artifacts(tmp_path):
    page = Path(write_report(str(write_run(tmp_path, with_thumbs=False)))).read_text()
    block = re.search('<section id="model">(.*?)</section>', page, re.S).group(1)
    assert "data:image/jpeg" not in block and block.count('class="noimg"') == CLIP_SHOWN + 15
    bare = render(ReportInputs(uri="/r", manifest={}, clip_filter={"scored": 0, "rejected": 0, "threshold": None}))
    bare = re.search('<section id="model">(.*?)</section>', bare, re.S).group(1)
    assert "—" in bare and "Not in this run: no dedup/semdedup.json" in bare
    none = render(ReportInputs(uri="/r", manifest={}))
    assert "Not in this run: no dedup/clip_filter.json or dedup/semdedup.json" in none
