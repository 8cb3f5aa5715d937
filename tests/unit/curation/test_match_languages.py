"""`curation.matching.match_languages`: a mixed-language batch matched in one pass equals each text matched alone
by its own language's matcher (the per-language path the match stage used before)."""

import random

import numpy as np
import pytest
import wordfreq

from curation.matching import EntryMatcher, match_languages

LANGS = ("en", "de", "ru", "zh", "ja", "ar")


@pytest.fixture(scope="module")
def lists():
    out = {}
    for lang in LANGS:
        words = [w for w in wordfreq.top_n_list(lang, 3000) if "0" not in w][:2000]
        out[lang] = (
            [str(i) for i in range(20)] + words + [f"{a} {b}" for a, b in zip(words[:50], words[1:51], strict=True)]
        )
    return out


@pytest.fixture(scope="module")
def matchers(lists):
    return {lang: EntryMatcher(entries, rule="metaclip2") for lang, entries in lists.items()}


def captions(lists, n: int, seed: int) -> tuple[list, list]:
    rng = random.Random(seed)
    texts, langs = [], []
    for _ in range(n):
        lang = rng.choice((*LANGS, "th", None))
        words = rng.sample(lists.get(lang or "en", lists["en"]), rng.randint(1, 10))
        sep = "" if lang in ("zh", "ja") and rng.random() < 0.8 else " "
        texts.append(sep.join(words) + rng.choice(["", ".", "!", "。", "，"]))
        langs.append(lang)
    texts[3], texts[7], texts[11] = None, "", "  "
    return texts, langs


def per_text(matchers, texts, langs) -> list[list[int]]:
    return [
        matchers[lang].match_batch([t])[0].tolist() if t is not None and lang in matchers else []
        for t, lang in zip(texts, langs, strict=True)
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_pass_equals_each_language_alone(lists, matchers, seed):
    texts, langs = captions(lists, 1500, seed)
    offsets, ids = match_languages(matchers, texts, langs)
    got = [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    want = per_text(matchers, texts, langs)
    assert got == want and sum(map(len, want)) > 3000
    zh = [bool(got[i]) for i, lang in enumerate(langs) if lang == "zh" and texts[i]]
    assert np.mean(zh) > 0.9  # CJK runs without spaces matched


def test_separator_in_a_caption_and_mixed_rules_fall_back_to_per_language(lists, matchers):
    texts, langs = captions(lists, 300, 5)
    texts[20] = texts[20] + "\x00" + texts[21]  # the batch separator inside a caption
    mixed = {**matchers, "en": EntryMatcher(lists["en"])}  # an English list under MetaCLIP 1's rule
    for ms in (matchers, mixed):
        offsets, ids = match_languages(ms, texts, langs)
        got = [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        assert got == per_text(ms, texts, langs)
    empty_offsets, empty_ids = match_languages(matchers, ["x", None], ["th", "de"])
    assert empty_offsets.tolist() == [0, 0, 0] and empty_ids.size == 0
    assert np.asarray(match_languages(matchers, [], [])[0]).tolist() == [0]
