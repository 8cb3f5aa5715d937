"""`input.keep_columns` (#18 item 5): a DataComp-style input's own columns (its `uid`, scores) reach a text-only
build's curated/ files and rejects/, so results join back to the input; a name clipforge uses itself gets `input_`."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipeline.build import build, preflight
from pipeline.core.errors import ClipforgeError
from tests.fixtures.builds import text_build_config

N = 300


@pytest.fixture(scope="module")
def datacomp_input(web, tmp_path_factory):
    """The web's first N candidates as DataComp ships them: uid (its own hash), url, text, a score."""
    cands = pq.read_table(web / "candidates.parquet").slice(0, N)
    table = pa.table(
        {
            "uid": [f"dc{i:05d}" for i in range(N)],
            "url": cands["url"],
            "text": cands["caption"],
            "clip_score": pa.array([i / N for i in range(N)], pa.float64()),
        }
    )
    d = tmp_path_factory.mktemp("datacomp")
    pq.write_table(table, d / "0000.parquet")
    pacsv.write_csv(table, d / "0000.csv")
    return d, table


def _config(web, metadata, out, path, **input_):
    cfg = text_build_config(web, metadata, out)
    return cfg.model_copy(update={"input": cfg.input.model_copy(update={"path": str(path), **input_})})


def test_all_input_columns_reach_curated_and_rejects(ray_local, web, metadata, datacomp_input, tmp_path):
    d, table = datacomp_input
    out = tmp_path / "run"
    build(_config(web, metadata, out, d / "0000.parquet", caption_col="text"), say=lambda m: None)
    curated, rejects = pq.read_table(out / "curated"), pq.read_table(out / "rejects")
    assert {"input_uid", "clip_score"} <= set(curated.column_names) and "text" not in curated.column_names
    assert {"input_uid", "clip_score"} <= set(rejects.column_names)
    assert curated.schema.field("clip_score").type == pa.float64()
    assert curated.num_rows + rejects.num_rows == N and curated.num_rows > 0
    by_uid = {u: s for u, s in zip(table["uid"].to_pylist(), table["clip_score"].to_pylist(), strict=True)}
    for t in (curated, rejects):  # every row carries its own input row's values
        got = zip(t["input_uid"].to_pylist(), t["clip_score"].to_pylist(), strict=True)
        assert all(by_uid[u] == s for u, s in got)
    assert sorted(curated["input_uid"].to_pylist() + rejects["input_uid"].to_pylist()) == sorted(by_uid)
    # clipforge's own uid is the canonical URL's hash, not the input's
    assert not set(curated["uid"].to_pylist()) & set(by_uid)


def test_a_csv_keeps_the_listed_columns_as_strings(ray_local, web, metadata, datacomp_input, tmp_path):
    d, _ = datacomp_input
    out = tmp_path / "run"
    cfg = _config(web, metadata, out, d / "0000.csv", caption_col="text", keep_columns=["uid"])
    build(cfg, say=lambda m: None)
    curated = pq.read_table(out / "curated")
    assert "input_uid" in curated.column_names and "clip_score" not in curated.column_names
    assert curated.schema.field("input_uid").type == pa.string()
    assert pc.all(pc.starts_with(curated["input_uid"], "dc")).as_py()


def test_a_missing_keep_column_is_refused_before_anything_is_written(web, metadata, datacomp_input, tmp_path):
    d, _ = datacomp_input
    cfg = _config(web, metadata, tmp_path / "run", d / "0000.parquet", caption_col="text", keep_columns=["score"])
    with pytest.raises(ClipforgeError, match=r"input.keep_columns names \['score'\], which input .* does not have"):
        preflight(cfg)
    assert not (tmp_path / "run").exists()
