"""A worldwide text-only build of the synthetic web (#21 part 7): captions in eight languages against the real offline
metadata lists (`clipforge metadata build --languages`, wordfreq; English: the web's concept list).

Each language's kept count is checked against what the answers file predicts: its rows (by the answers' `lang`),
matched independently against its own list with Meta CLIP 2's rule, counted, t_lang from those counts and the
English ones, and the keep probability 1 - prod(1 - min(1, t / c_e)) summed; the build must land within 4 sigma.
Thai has no offline list: its captions go to rejects as `no_metadata_language`.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from curation.balancing import entry_counts, entry_probs, keep_prob, t_lang
from curation.matching import EntryMatcher
from curation.metadata_worldwide import metadata_lists
from infra.localweb.config import WebConfig
from infra.localweb.generate import generate
from pipeline.build import build
from tests.fixtures.builds import text_build_config, worldwide_metadata

T_EN = 20
LANGS_WITH_METADATA = ["en", "de", "fr", "es", "ru", "zh", "ja", "ar"]


@pytest.fixture(scope="module")
def worldwide_web_run(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("worldwide_web")
    web = root / "web"
    generate(
        WebConfig(seed=21, n_candidates=4000, foreign_rate=0.5, dup_url_rate=0, wat_pages=0, eval_per_concept=1), web
    )
    meta = worldwide_metadata(root / "metadata", LANGS_WITH_METADATA[1:])
    manifest = build(text_build_config(web, meta, root / "run", t=T_EN), say=lambda m: None)
    return web, meta, root / "run", manifest


def test_each_language_kept_within_4_sigma_of_the_answers(worldwide_web_run):
    web, meta, run, manifest = worldwide_web_run
    answers = pq.read_table(web / "answers.parquet").to_pandas()
    kept = pq.read_table(run / "curated").to_pandas()
    rejects = pq.read_table(run / "rejects").to_pandas()
    assert len(kept) + len(rejects) == len(answers)
    before_match = set(rejects.url[rejects.stage.isin(["text", "langid"])])  # text filters are not tested here
    rows = answers[~answers.url.isin(before_match)]
    lists = metadata_lists(meta)
    matched = {
        lang: EntryMatcher(lists[lang], rule="metaclip2").match_batch(rows.caption[rows.lang == lang].tolist())
        for lang in LANGS_WITH_METADATA
    }
    counts = {lang: entry_counts(ids, len(lists[lang])) for lang, ids in matched.items()}
    t_by_lang = manifest["balance"]["t_by_lang"]
    lang_of = dict(zip(answers.url, answers.lang, strict=True))
    report = {}
    for lang in LANGS_WITH_METADATA:
        t = float(T_EN) if lang == "en" else t_lang(counts[lang], counts["en"], T_EN)
        p_row = keep_prob([ids for ids in matched[lang] if len(ids)], entry_probs(counts[lang], t))
        mean, sigma = float(np.sum(p_row)), float(np.sqrt(np.sum(p_row * (1 - p_row))))
        n_kept = int((kept.metadata_lang == lang).sum())
        report[lang] = (n_kept, round(mean, 1), round(sigma, 1), t, t_by_lang.get(lang))
        assert abs(n_kept - mean) < 4 * max(sigma, 1.0), report
    assert all(report[lang][0] > 50 for lang in LANGS_WITH_METADATA), report
    # the kept rows of a language are that language's rows (the expected language of the answers)
    agree = np.mean([lang_of[u] == lang for u, lang in zip(kept.url, kept.metadata_lang, strict=True)])
    assert agree > 0.97, agree


def test_thai_captions_rejected_for_lack_of_metadata(worldwide_web_run):
    web, _, run, manifest = worldwide_web_run
    answers = pq.read_table(web / "answers.parquet").to_pandas()
    rejects = pq.read_table(run / "rejects").to_pandas().set_index("url")
    thai = answers[answers.lang == "th"]
    assert len(thai) > 100
    reasons = rejects.loc[thai.url]
    assert (reasons.reason == "no_metadata_language").mean() > 0.97
    assert set(reasons.detail[reasons.reason == "no_metadata_language"]) == {"language 'th' has no metadata list"}
    assert set(reasons.stage[reasons.reason == "no_metadata_language"]) == {"match"}
    assert "th" not in manifest["balance"]["t_by_lang"]
