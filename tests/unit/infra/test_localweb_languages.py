"""The synthetic web's foreign captions: every concept word is an entry of its language's offline metadata list, and
language ID reads each caption as the language the answers give (the planted expectation of a worldwide build)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from curation.langid import LangIdConfig, LanguageIdentifier
from curation.matching import EntryMatcher
from curation.metadata_worldwide import WorldwideMetadataConfig, language_entries, offline_languages
from infra.localweb.captions import _WORDS, FOREIGN_LANGUAGES
from infra.localweb.config import WebConfig
from infra.localweb.generate import generate

WITH_METADATA = [lang for lang in FOREIGN_LANGUAGES if lang != "th"]


def test_thai_is_the_language_without_offline_metadata():
    assert "th" in FOREIGN_LANGUAGES and "th" not in offline_languages()  # a planted no_metadata_language case
    assert set(WITH_METADATA) <= set(offline_languages())


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    generate(WebConfig(seed=5, n_candidates=3000, foreign_rate=0.6, wat_pages=0, eval_per_concept=1), out)
    return pq.read_table(out / "answers.parquet").to_pandas()


@pytest.mark.parametrize("lang", WITH_METADATA)
def test_concept_words_are_entries_of_the_language_list_and_match(lang, web):
    entries, _ = language_entries(lang, WorldwideMetadataConfig())
    ids = {e: i for i, e in enumerate(entries)}
    words = [w for kind in ("colour", "shape", "digit") for word in _WORDS[lang][kind] for w in word.split()]
    assert [w for w in words if w not in ids] == []
    rows = web[(web.lang == lang) & (web.caption_kind == "concept")]
    matcher = EntryMatcher(entries, rule="metaclip2")
    found = matcher.match_batch(rows.caption.tolist())
    for caption, concept, hits in zip(rows.caption, rows.concept, found, strict=True):
        digit = concept >= 64
        kind, index = ("digit", concept - 64) if digit else ("shape", concept % 8)
        native = _WORDS[lang][kind][index]
        if kana_edge(native):  # padded like a Latin word (Meta CLIP 2's rule): no match without spaces around it
            assert ids[native] not in hits, caption
            continue
        wanted = {ids[w] for w in native.split()}
        assert wanted <= set(hits) or (digit and ids[str(index)] in hits), caption


def kana_edge(word: str) -> bool:
    return any(0x3040 <= ord(c) <= 0x30FF for c in (word[0], word[-1]))


def test_language_id_reads_the_planted_language(web):
    lid = LanguageIdentifier(LangIdConfig(keep=None))
    concept = web[(web.caption_kind == "concept") & (web.lang != "en")]
    codes, _ = lid.predict(concept.caption.tolist())
    concept = concept.assign(pred=codes.to_pylist())
    accuracy = concept.groupby("lang").apply(lambda g: (g.pred == g.name).mean(), include_groups=False)
    assert set(accuracy.index) == set(FOREIGN_LANGUAGES)
    assert (accuracy >= 0.95).all(), accuracy.to_dict()
