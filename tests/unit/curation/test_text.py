"""Caption normalisation, MetaCLIP spacing(), caption filters, URL canonical form and uid."""

import ftfy
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.text import (
    CaptionFilterConfig,
    TextReject,
    UrlReject,
    canonical_url,
    canonicalize_urls,
    caption_reject,
    caption_rejects,
    clean_captions,
    normalize_text,
    normalize_texts,
    spacing,
    url_uid,
    url_uids,
)


def _ftfy_then_whitespace(text: str) -> str:
    return " ".join(ftfy.fix_text(text).split())


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("  A  golden\tretriever\n on the beach  ", "A golden retriever on the beach"),
        ("Ã©tÃ© Ã  la plage", "été à la plage"),  # mojibake repaired
        ("Fish &amp; chips", "Fish & chips"),  # HTML entity
        ("It\u2019s a \u201cdog\u201d", 'It\'s a "dog"'),  # curly quotes
        ("tab\x0bbed\x00 null", "tabbed null"),  # control characters removed, not spaced
        ("non\u00a0breaking", "non breaking"),
        ("", ""),
    ],
)
def test_normalize_text_literals(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_texts_keeps_nulls_and_accepts_arrow():
    out = normalize_texts(pa.array(["a  b", None, "Fish &amp; chips"]))
    assert out.type == pa.string() and out.to_pylist() == ["a b", None, "Fish & chips"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40) | st.text(max_size=40))
def test_normalize_equals_ftfy_then_whitespace(text):
    """The ASCII fast path never changes the result: normalize == ftfy.fix_text + whitespace collapse."""
    assert normalize_text(text) == _ftfy_then_whitespace(text)


def test_spacing_is_metaclip_verbatim():
    assert spacing("a dog, a cat.") == " a dog ,  a cat .  "
    assert spacing("x\ty\nz\rw") == " x y z w "
    assert spacing("Hi!`what?;:") == " Hi !  ` what ?  ;  :  "
    assert spacing("dog-friendly (dog) 'dog' \"dog\" /dog/") == " dog-friendly (dog) 'dog' \"dog\" /dog/ "


RULES = CaptionFilterConfig(min_chars=6, max_chars=20, min_words=3, max_words=4)


@pytest.mark.parametrize(
    "text,reason",
    [
        (None, TextReject.EMPTY),
        ("", TextReject.EMPTY),
        ("a b c", TextReject.TOO_SHORT),  # 5 chars: the character rule comes first
        ("x" * 21, TextReject.TOO_LONG),
        ("two words", TextReject.TOO_FEW_WORDS),
        ("one two three four five", TextReject.TOO_LONG),
        ("a b c d e f g", TextReject.TOO_MANY_WORDS),
        ("a dog on sand", None),
    ],
)
def test_caption_reject_reasons_in_order(text, reason):
    assert caption_reject(text, RULES) == reason


def test_caption_rules_bounds_can_be_disabled():
    free = CaptionFilterConfig(min_chars=None, max_chars=None, min_words=None, max_words=None)
    assert caption_reject("x", free) is None and caption_reject("", free) == TextReject.EMPTY


def test_default_rules_are_datacomp_basic_filter():
    # DataComp basic filter: len(text) > 5 and len(text.split()) > 2
    rules = CaptionFilterConfig()
    assert caption_reject("a b c", rules) == "too_short"
    assert caption_reject("big dogs", rules) == "too_few_words"
    assert caption_reject("a big dog", rules) is None


def test_clean_captions_batch():
    texts, reasons = clean_captions(
        ["  a golden  retriever ", None, "dog", "Fish &amp; chips shop"], CaptionFilterConfig()
    )
    assert texts.to_pylist() == ["a golden retriever", None, "dog", "Fish & chips shop"]
    assert reasons.to_pylist() == [None, "empty", "too_short", None]
    assert caption_rejects(pa.array(["dog"]), CaptionFilterConfig()).to_pylist() == ["too_short"]


@pytest.mark.parametrize(
    "url,canonical,reason",
    [
        ("HTTP://Example.COM:80/a b/é?q=1&x=%7e#frag", "http://example.com/a%20b/%C3%A9?q=1&x=%7E", None),
        ("https://bücher.de./x", "https://xn--bcher-kva.de/x", None),
        ("https://user:pw@Host.com:443", "https://user:pw@host.com/", None),
        ("http://[::1]:8080", "http://[::1]:8080/", None),
        ("  http://x.com/%e2%82%ac?a=%2f  ", "http://x.com/%E2%82%AC?a=%2F", None),
        ("ftp://x.com/y", None, UrlReject.BAD_SCHEME),
        ("//x.com/y", None, UrlReject.BAD_SCHEME),
        ("http:///x", None, UrlReject.NO_HOST),
        ("http://a:99999/", None, UrlReject.BAD_URL),
        ("   ", None, UrlReject.EMPTY_URL),
        (None, None, UrlReject.EMPTY_URL),
        ("http://x.com/" + "a" * 2100, None, UrlReject.URL_TOO_LONG),
    ],
)
def test_canonical_url(url, canonical, reason):
    assert canonical_url(url) == (canonical, reason)


def test_canonical_url_rejects_unencodable_idna_host():
    assert canonical_url("http://ü" + "x" * 70 + ".de/") == (None, UrlReject.BAD_URL)


_url_text = st.text(alphabet=st.sampled_from("aZ09-._~%/?=&é #:@+"), max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["http", "HTTPS"]),
    st.sampled_from(["Example.com", "bücher.de", "x.org.", "[::1]", "a.b:8080", "h:80"]),
    _url_text,
    _url_text,
)
def test_canonical_url_is_idempotent(scheme, host, path, query):
    url = f"{scheme}://{host}/{path}?{query}"
    first, reason = canonical_url(url)
    if first is not None:
        assert canonical_url(first) == (first, None)
        assert " " not in first and "é" not in first and "#" not in first
    else:
        assert reason is not None


def test_canonicalize_urls_batch():
    urls, reasons = canonicalize_urls(pa.array(["HTTP://A.com", "mailto:x@y", None]))
    assert urls.to_pylist() == ["http://a.com/", None, None]
    assert reasons.to_pylist() == [None, "bad_scheme", "empty_url"]


def test_uid_is_metaclip_sha224_prefix():
    # printf '%s' "http://x.com/" | sha224sum | cut -c1-24
    assert url_uid("http://x.com/") == "3849ed8344d1b496c5ddb1fd"
    assert url_uids(["http://x.com/", None]).to_pylist() == ["3849ed8344d1b496c5ddb1fd", None]
    assert len(url_uid("http://\ud800.com/")) == 24  # a lone surrogate still hashes
