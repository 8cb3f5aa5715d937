"""A worldwide image build (#21): the synthetic web's English and German captions against a metadata directory with an
`en` and a `de` list, downloaded, deduplicated and balanced per language into shards; French and Spanish captions have
no list and are rejected as `no_metadata_language`.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.localweb.captions import _WORDS
from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from infra.localweb.handle import serve_in_thread
from pipeline.build import build
from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config
from tests.fixtures.builds import text_metadata

N = 240


@pytest.mark.timeout(900)
def test_worldwide_image_build_balances_each_language(ray_local, tmp_path):
    web = tmp_path / "web"
    cfg = WebConfig(seed=11, n_candidates=N, foreign_rate=0.5, fault_rate=0.05, eval_per_concept=2)
    generate(cfg.model_copy(update={"foreign_languages": ["de", "fr", "es"]}), web)
    meta = tmp_path / "metadata"
    meta.mkdir()
    text_metadata(meta / "en.json")
    german = sorted({w for words in _WORDS["de"].values() for w in words} | {"Foto", "Zeichnung", "Aufkleber"})
    (meta / "de.json").write_text(json.dumps(german, ensure_ascii=False), encoding="utf-8")
    data = {
        "input": {"path": str(web / "candidates.parquet"), "rows_per_block": 80},
        "output": str(tmp_path / "run"),
        "stages": ["text", "match", "pre_balance", "download", "dedup", "balance"],
        "match": {"metadata": str(meta)},
        "balance": {"t": 4},
        "download": {"fetch": {"allow_cidrs": ["127.0.0.0/8"], "deadline_s": 3.0}, "threads": 8},
        "image": {"image_size": 32, "min_image_size": 16, "max_aspect_ratio": 4.5},
        "dedup": {"eval_sets": [{"name": "synthetic", "path": str(web / "eval" / "synthetic.parquet")}]},
    }
    cfg = validate_config(BuildConfig, data, "test")
    with serve_in_thread(web, prewarm=N):
        manifest = build(cfg, say=lambda line: None)
    run = tmp_path / "run"
    sidecars = pa.concat_tables([pq.read_table(run / e["sidecar"]) for e in manifest["shards"]])
    assert set(sidecars["metadata_lang"].to_pylist()) == {"en", "de"}
    for lang, ids in zip(sidecars["metadata_lang"].to_pylist(), sidecars["entry_ids"].to_pylist(), strict=True):
        assert ids and max(ids) < (len(german) if lang == "de" else len(json.loads((meta / "en.json").read_text())))
    rejects = pq.read_table(run / "rejects").to_pandas()
    no_list = rejects[rejects.reason == "no_metadata_language"]
    assert len(no_list) > 0 and set(no_list.stage) == {"match"}
    labels = {d.removeprefix("language '").removesuffix("' has no metadata list") for d in no_list.detail}
    assert {"fr", "es"} <= labels and not labels & {"en", "de"}  # (short captions: LID also says nl, it, ...)
    t_by_lang = manifest["balance"]["t_by_lang"]
    assert t_by_lang["en"] == 4.0 and t_by_lang["de"] >= 1
    for when in ("pre", "dedup", "post"):
        per_lang = [np.load(run / "stats" / f"entry_counts_{when}" / f"{lang}.npy") for lang in ("en", "de")]
        assert np.array_equal(np.concatenate(per_lang), np.load(run / "stats" / f"entry_counts_{when}.npy"))
    post_de = np.load(run / "stats" / "entry_counts_post" / "de.npy")
    assert post_de.sum() > 0 and json.loads((run / "stats" / "languages.json").read_text())["t_by_lang"] == t_by_lang
    assert manifest["counts"]["kept"] == sidecars.num_rows
    funnel = json.loads((run / "stats" / "language_funnel.json").read_text())["languages"]  # the report's funnel
    assert sum(v["kept"] for v in funnel.values()) == sidecars.num_rows
    assert funnel["de"]["with_metadata"] and funnel["de"]["kept"] == sidecars["metadata_lang"].to_pylist().count("de")
    assert not funnel["fr"]["with_metadata"] and funnel["fr"]["matched"] == funnel["fr"]["kept"] == 0
