"""The proof that ftfy would leave a caption unchanged: never wrong against ftfy itself, and taken for clean text."""

from __future__ import annotations

import re

import ftfy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import curation.ftfy_identity as fi
from curation.ftfy_identity import identity_pattern, unchanged_by_ftfy
from curation.text import normalize_text

CLEAN = [
    "fecha debate misión sectores base opciones",
    "nächsten ist dr nötig inhalt gebaut",
    "avons empêcher vendre met application président",
    "Привет мир, Город и Река",
    "想道德常高兴巴西连结实在",
    "ひらがなとカタカナ",
    "안녕하세요 세계",
    "مرحبا بالعالم",
    "Ελληνικά γράμματα",
    "Tiếng Việt có dấu",
    "a no\xa0break space — and an em dash",
]
MOJIBAKE = [
    "cafÃ©",
    "schÃ¶n",
    "Ã¢â‚¬â„¢",
    "â€œquotedâ€\x9d",
    "Ð¿Ñ€Ð¸Ð²ÐµÑ‚",
    "РЎРѕ РІСЃРµРј",
    "Ãºnico",
    "the ligature ﬁne",
    "ｆｕｌｌｗｉｄｔｈ",
    "it’s “curly”",
    "e\u0301 decomposed",
    "a\x1b[31m red",
    "ctrl\x07char",
    "AT&amp;T",
]


def ftfy_then_whitespace(text: str) -> str:
    return " ".join(ftfy.fix_text(text).split())


def test_the_proof_applies_to_this_ftfy():
    pattern = identity_pattern()
    assert pattern is not None  # this ftfy's BADNESS_RE has a shape the proof covers: there is a fast path
    bad = fi._badness_sets()
    assert {"Ã", "Â", "€", "Ð"} <= bad  # the classic mojibake lead characters are among those BADNESS_RE needs
    assert not [c for c in sorted(bad) if pattern.fullmatch(c)]  # and none of them is allowed
    assert all(pattern.fullmatch(chr(c)) for c in range(0x20, 0x7F) if chr(c) != "&")  # printable ASCII is
    for changed in ("&", "\x1b", "\u2019", "ﬁ", "ｆ", "\x85"):  # what a character-level fixer rewrites is not
        assert pattern.fullmatch(changed) is None, repr(changed)
    assert all(pattern.fullmatch(text) for text in CLEAN)


@pytest.mark.parametrize("text", CLEAN)
def test_clean_non_ascii_takes_the_fast_path_and_is_right(text):
    assert unchanged_by_ftfy(text)
    assert ftfy.fix_text(text) == text and normalize_text(text) == ftfy_then_whitespace(text)


@pytest.mark.parametrize("text", MOJIBAKE)
def test_text_ftfy_changes_never_takes_the_fast_path(text):
    assert ftfy.fix_text(text) != text  # the fixture is something ftfy repairs
    assert not unchanged_by_ftfy(text)
    assert normalize_text(text) == ftfy_then_whitespace(text)


# Characters that matter: clean letters of many scripts, every character BADNESS_RE looks for, quotes, controls,
# combining marks, ligatures, full-width forms, entities.
_ALPHABET = "".join(CLEAN) + "".join(MOJIBAKE) + "".join(sorted(fi._badness_sets() or ())) + "&;#<> \t\r\n\u0301\u0308"


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=_ALPHABET, max_size=30) | st.lists(st.sampled_from(CLEAN + MOJIBAKE), max_size=4).map(" ".join)
)
def test_never_claims_identity_when_ftfy_changes_the_text(text):
    if unchanged_by_ftfy(text):
        assert ftfy_then_whitespace(text) == " ".join(text.split())
    assert normalize_text(text) == ftfy_then_whitespace(text)


def test_an_alternative_it_cannot_bound_turns_the_fast_path_off(monkeypatch):
    import ftfy.badness

    monkeypatch.setattr(ftfy.badness, "BADNESS_RE", re.compile("[a-z]é|x[^a]"))  # x[^a]: nothing non-ASCII
    assert fi._badness_sets() is None
    monkeypatch.setattr(ftfy.badness, "BADNESS_RE", re.compile("[a-z]é|x[ÃÂ]"))
    assert fi._badness_sets() == {"é", "Ã", "Â"}


def test_the_proof_covers_every_step_of_this_ftfys_loop():
    """If an ftfy upgrade adds a fixer to fix_and_explain's loop, the proof must be revisited: fail loudly."""
    import inspect

    source = inspect.getsource(ftfy.fix_and_explain)
    loop = re.search(r"for fixer in \[(.*?)\]", source, re.S).group(1)
    steps = set(re.findall(r'"(\w+)"', loop)) | set(re.findall(r'_try_fix\(\s*"(\w+)"', source))
    assert steps == {f.__name__ for f in fi._char_fixers()}
    assert "fix_encoding(text)" in source and "unicodedata.normalize(config.normalization" in source
