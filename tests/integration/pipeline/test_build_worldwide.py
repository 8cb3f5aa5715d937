"""A worldwide text-only build: hand-made multilingual candidates and a metadata directory on the session Ray.

Each caption is matched against its own language's list with Meta CLIP 2's rule; French has no list and is rejected
as `no_metadata_language`; per-language entry counts and t_lang land in stats/ and the manifest.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.balancing import t_lang
from pipeline.build import build, text_config
from pipeline.build_config import BuildConfig
from pipeline.core.config import validate_config

CAPTIONS = {
    "en": [
        "A black cat sleeping on the sofa",
        "A red car parked on the street",
        "Two dogs playing in the park",
        "A black dog on the street at night",
        "The red sofa in the living room",
        "A cat and a dog in the park",
    ],
    "de": [
        "Eine schwarze Katze schläft auf dem Sofa",
        "Ein rotes Auto parkt auf der Straße",
        "Zwei Hunde spielen im Park",
        "Der schwarze Hund auf der Straße",
        "Das rote Sofa im Wohnzimmer",
        "Eine Katze und ein Hund im Park",
    ],
    "zh": [
        "一只可爱的黑猫正在沙发上睡觉",
        "一辆红色的汽车停在街上",
        "两只狗在公园里玩耍",
        "晚上街上的一只黑狗",
        "客厅里有一张红色的沙发",
        "公园里的一只猫和一只狗",
    ],
    "ru": [
        "Черная кошка спит на диване",
        "Красная машина стоит на улице",
        "Две собаки играют в парке",
        "Черная собака на улице ночью",
    ],
    "fr": [
        "Un chat noir dort sur le canapé",
        "Une voiture rouge garée dans la rue",
        "Deux chiens jouent dans le parc",
    ],
}
METADATA = {
    "en": ["the", "on", "in", "A", "cat", "dog", "dogs", "car", "red", "black", "park", "street", "sofa"],
    "de": ["auf", "dem", "im", "Katze", "Hund", "Hunde", "Auto", "Park", "Straße", "Sofa", "schwarze"],
    "zh": ["的", "猫", "黑猫", "狗", "汽车", "公园", "沙发", "红色", "街"],
    "ru": ["на", "кошка", "собаки", "собака", "машина", "улице", "парке", "Черная"],
}
COPIES = 5  # each caption at this many URLs, so head entries have counts to balance


@pytest.fixture(scope="module")
def worldwide_run(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("worldwide")
    meta = root / "metadata"
    meta.mkdir()
    for lang, entries in METADATA.items():
        (meta / f"{lang}.json").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    (meta / "sources.json").write_text("{}")
    rows = [
        {"url": f"http://{lang}.example/{i}/{k}.jpg", "caption": caption}
        for lang, captions in CAPTIONS.items()
        for i, caption in enumerate(captions)
        for k in range(COPIES)
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "candidates.parquet")
    data = {
        "input": {"path": str(root / "candidates.parquet"), "rows_per_block": 40},
        "output": str(root / "run"),
        "stages": ["text", "match", "balance"],
        "match": {"metadata": str(meta)},
        "balance": {"t": 3},
    }
    cfg = validate_config(BuildConfig, data, "test")
    return cfg, root / "run", build(cfg, say=lambda m: None), len(rows)


def test_languages_kept_and_no_metadata_language(worldwide_run):
    cfg, out, manifest, n_rows = worldwide_run
    kept = pq.read_table(out / "curated").to_pandas()
    rejects = pq.read_table(out / "rejects").to_pandas()
    assert len(kept) + len(rejects) == n_rows == manifest["counts"]["input_rows"]
    assert set(kept.metadata_lang) == {"en", "de", "zh", "ru"}
    assert (kept.lang == kept.metadata_lang).all()
    french = rejects[rejects.url.str.startswith("http://fr.")]
    assert len(french) == len(CAPTIONS["fr"]) * COPIES
    assert set(french.reason) == {"no_metadata_language"} and set(french.stage) == {"match"}
    assert set(french.detail) == {"language 'fr' has no metadata list"}
    # ids are per-language list indices: every kept caption contains the entries its ids name, in its own list
    for caption, lang, ids in zip(kept.caption, kept.metadata_lang, kept.entry_ids, strict=True):
        assert len(ids) > 0 and all(METADATA[lang][i] in caption for i in ids)
    zh = kept[kept.metadata_lang == "zh"]
    assert any(METADATA["zh"].index("猫") in ids for ids in zh.entry_ids)  # CJK: no spaces needed


def test_per_language_counts_and_t_lang_in_stats_and_manifest(worldwide_run):
    cfg, out, manifest, _ = worldwide_run
    languages = json.loads((out / "stats" / "languages.json").read_text())
    assert languages["layout"] == {lang: len(METADATA[lang]) for lang in ("en", "de", "ru", "zh")}
    pre = {lang: np.load(out / "stats" / "entry_counts_pre" / f"{lang}.npy") for lang in METADATA}
    assert np.array_equal(
        np.concatenate([pre[x] for x in languages["layout"]]), np.load(out / "stats" / "entry_counts_pre.npy")
    )
    assert pre["en"][METADATA["en"].index("cat")] == 2 * COPIES  # two English captions say "cat"
    assert pre["zh"][METADATA["zh"].index("猫")] == 2 * COPIES  # also inside 黑猫 (overlapping, no spaces)
    assert pre["zh"][METADATA["zh"].index("黑猫")] == COPIES
    t_by_lang = manifest["balance"]["t_by_lang"]
    assert t_by_lang == languages["t_by_lang"] and t_by_lang["en"] == 3.0 == manifest["balance"]["t"]
    for lang in ("de", "zh", "ru"):
        assert t_by_lang[lang] == t_lang(pre[lang], pre["en"], 3.0) >= 1
        assert manifest["balance"]["languages"][lang]["matches"] == int(pre[lang].sum()) > 0
    post = {lang: np.load(out / "stats" / "entry_counts_post" / f"{lang}.npy") for lang in METADATA}
    assert all((post[lang] <= pre[lang]).all() for lang in METADATA)
    assert sum(int(post[lang].sum()) for lang in METADATA) < sum(int(pre[lang].sum()) for lang in METADATA)


def test_langid_and_word_count_follow_the_metadata(worldwide_run, tmp_path):
    cfg, *_ = worldwide_run
    text = text_config(cfg)
    assert text.langid.keep is None and text.filters.script_chars_as_words is True
    single = tmp_path / "metadata.json"
    single.write_text(json.dumps(METADATA["en"]))
    english = text_config(cfg.model_copy(update={"match": cfg.match.model_copy(update={"metadata": str(single)})}))
    assert english.langid.keep == ["en"] and english.filters.script_chars_as_words is False


def test_report_shows_t_lang_and_language_entry_names(worldwide_run, tmp_path):
    from pipeline.report import write_report

    cfg, out, manifest, _ = worldwide_run
    html = Path(write_report(str(out), str(tmp_path / "report.html"))).read_text(encoding="utf-8")
    assert "Per-language thresholds" in html and "entry names unavailable" not in html
    t_de = manifest["balance"]["t_by_lang"]["de"]
    assert "<td>de</td>" in html and f"{t_de:g}" in html
    assert "en:the" in html or "zh:的" in html  # head entries are named by language


def test_language_funnel_and_worldwide_report_section(worldwide_run, tmp_path):
    from pipeline.report import write_report

    cfg, out, manifest, n_rows = worldwide_run
    funnel = json.loads((out / "stats" / "language_funnel.json").read_text())["languages"]
    kept = pq.read_table(out / "curated").to_pandas()
    assert sum(v["kept"] for v in funnel.values()) == len(kept) == manifest["counts"]["kept"]
    for lang in METADATA:
        v = funnel[lang]
        assert v["with_metadata"] and v["kept"] == int((kept.metadata_lang == lang).sum()) > 0
        assert v["candidates"] >= v["matched"] >= v["kept"]
    assert funnel["fr"] == {
        "candidates": len(CAPTIONS["fr"]) * COPIES,
        "matched": 0,
        "with_metadata": False,
        "kept": 0,
    }
    html = Path(write_report(str(out), str(tmp_path / "report.html"))).read_text(encoding="utf-8")
    section = html[html.index('<section id="worldwide">') :]
    assert "Dropped for lack of metadata (1 languages, 15 rows)" in section and "<td>fr</td>" in section
    assert "Balancing of the 4 largest languages" in section and "per-language entry counts rank plots" in section
    assert f'<td>zh</td><td class="n">{funnel["zh"]["candidates"]}</td>' in section
