"""Caption and URL text rules: ftfy repair, whitespace, MetaCLIP `spacing()`, length filters, URL canonical form
and uid. Pure: no Ray, no I/O, no module state.

Batch functions take a list of `str | None` or an Arrow string array and return Arrow string arrays; a row that
fails a rule gets a reason (`TextReject`, `UrlReject`; null when it passes) — never an exception.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from enum import StrEnum
from urllib.parse import quote, urlsplit

import ftfy
import pyarrow as pa

from curation.charclass import NO_SPACE_RANGES
from curation.ftfy_identity import unchanged_by_ftfy
from curation.strict import StrictModel

TextBatch = Sequence[str | None] | pa.Array | pa.ChunkedArray

# MetaCLIP `spacing()`: "for p in [",", ".", ";", ":", "?", "!", "`"]: t = t.replace(p, f" {p} ")" and
# "for c in ["\t", "\n", "\r"]: t = t.replace(c, " ")" — the seven wrapped marks are token boundaries.
WRAPPED_PUNCT = (",", ".", ";", ":", "?", "!", "`")
SPACED_CONTROLS = ("\t", "\n", "\r")

# Characters for which ftfy.fix_text is provably the identity up to whitespace: printable ASCII except "&"
# (HTML entities), plus \t \n \x0c \r (ftfy keeps or turns them into "\n"; we collapse them to " " anyway).
# Everything else (non-ASCII, "&", other C0 controls, DEL) takes the ftfy path unless `unchanged_by_ftfy` proves
# ftfy would return it as is (curation/ftfy_identity.py). Both are tested against ftfy itself.
# The scripts of Meta CLIP 2's no-space class (its punctuation aside): each character is a word for min_words.
_SCRIPT_CHARS = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in NO_SPACE_RANGES) + "]")
_NEEDS_FTFY = re.compile(r"[^\t\n\x0c\r\x20-\x25\x27-\x7e]")


class TextReject(StrEnum):
    """Why a caption was rejected by the text rules (checked in this order; the first failing rule wins)."""

    EMPTY = "empty"  # null, or nothing left after normalisation
    TOO_SHORT = "too_short"  # fewer than min_chars characters
    TOO_LONG = "too_long"  # more than max_chars characters
    TOO_FEW_WORDS = "too_few_words"  # fewer than min_words whitespace-separated words
    TOO_MANY_WORDS = "too_many_words"  # more than max_words words


class CaptionFilterConfig(StrictModel):
    """Length limits for a normalised caption; null disables a bound. Characters are Unicode code points, words
    are `str.split()` tokens. The defaults are DataComp's basic filter (`len(text) > 5` and
    `len(text.split()) > 2`) plus a generous upper bound; MetaCLIP itself applies no length filter."""

    min_chars: int | None = 6
    """Reject captions shorter than this (`too_short`)."""
    max_chars: int | None = 1000
    """Reject captions longer than this (`too_long`)."""
    min_words: int | None = 3
    """Reject captions with fewer words (`too_few_words`)."""
    max_words: int | None = None
    """Reject captions with more words (`too_many_words`)."""
    script_chars_as_words: bool | None = None
    """Count every CJK/Thai/Lao/Burmese/Khmer/Tibetan character as a word (`curation.charclass`), so captions of
    languages written without spaces can pass min_words ("一只黑猫在沙发上睡觉" is 10 words, not 1). None: on in a
    build with a metadata directory (worldwide), off otherwise (DataComp's rule, English builds unchanged)."""


def as_pylist(texts: TextBatch) -> list:
    """A batch (list, tuple, Arrow array or chunked array) as a Python list."""
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        return texts.to_pylist()
    return list(texts)


def normalize_text(text: str | None) -> str | None:
    """ftfy's `fix_text` (default config: mojibake, HTML entities, control characters, NFC, curly quotes), then
    every run of `str.split()` whitespace collapsed to one space and the ends stripped. None stays None."""
    if text is None:
        return None
    if _NEEDS_FTFY.search(text) is not None and not unchanged_by_ftfy(text):
        text = ftfy.fix_text(text)
    return " ".join(text.split())


def normalize_texts(texts: TextBatch) -> pa.StringArray:
    """`normalize_text` over a batch; nulls stay null. Returns a `pa.string()` array of the same length."""
    return pa.array([normalize_text(t) for t in as_pylist(texts)], type=pa.string())


def spacing(text: str) -> str:
    """MetaCLIP's `spacing()`, verbatim: pad with one space each side, wrap the seven marks `, . ; : ? ! ``
    in spaces, and turn tab/newline/carriage return into spaces. Text is not lower-cased."""
    t = f" {text} "
    for p in WRAPPED_PUNCT:
        t = t.replace(p, f" {p} ")
    for c in SPACED_CONTROLS:
        t = t.replace(c, " ")
    return t


def caption_reject(text: str | None, rules: CaptionFilterConfig) -> TextReject | None:
    """The first rule a normalised caption breaks, or None when it passes."""
    if not text:
        return TextReject.EMPTY
    n = len(text)
    if rules.min_chars is not None and n < rules.min_chars:
        return TextReject.TOO_SHORT
    if rules.max_chars is not None and n > rules.max_chars:
        return TextReject.TOO_LONG
    if rules.min_words is None and rules.max_words is None:
        return None
    words = count_words(text, bool(rules.script_chars_as_words))
    if rules.min_words is not None and words < rules.min_words:
        return TextReject.TOO_FEW_WORDS
    if rules.max_words is not None and words > rules.max_words:
        return TextReject.TOO_MANY_WORDS
    return None


def count_words(text: str, script_chars_as_words: bool = False) -> int:
    """`len(text.split())`; with `script_chars_as_words`, a token holding no-space script characters counts as
    that many words instead of one."""
    tokens = text.split()
    if not script_chars_as_words:
        return len(tokens)
    return sum(max(1, len(_SCRIPT_CHARS.findall(tok))) for tok in tokens)


def caption_rejects(texts: TextBatch, rules: CaptionFilterConfig) -> pa.StringArray:
    """`caption_reject` over a batch of normalised captions: a `pa.string()` array of reasons, null = kept."""
    return pa.array([caption_reject(t, rules) for t in as_pylist(texts)], type=pa.string())


def clean_captions(texts: TextBatch, rules: CaptionFilterConfig) -> tuple[pa.StringArray, pa.StringArray]:
    """Normalise then filter a batch: (normalised captions, reasons). Rejected rows keep their normalised text
    (null only where the input was null) so rejects can show what was judged."""
    normalized = [normalize_text(t) for t in as_pylist(texts)]
    reasons = [caption_reject(t, rules) for t in normalized]
    return pa.array(normalized, type=pa.string()), pa.array(reasons, type=pa.string())


class UrlReject(StrEnum):
    """Why a URL has no canonical form."""

    EMPTY_URL = "empty_url"  # null or blank
    BAD_SCHEME = "bad_scheme"  # not http or https
    NO_HOST = "no_host"
    BAD_URL = "bad_url"  # unparsable: bad port or IPv6 literal, host not IDNA-encodable, unencodable characters
    URL_TOO_LONG = "url_too_long"  # canonical form longer than MAX_URL_CHARS


MAX_URL_CHARS = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 pchar plus "/" (and "?" in queries) stay as they are; "%" is kept so existing escapes survive.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_PCT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def _requote(part: str, safe: str) -> str:
    """Percent-encode what RFC 3986 does not allow (spaces, non-ASCII as UTF-8) and upper-case escape hex."""
    return _PCT_ESCAPE.sub(lambda m: m.group().upper(), quote(part, safe=safe))


def _canonical_host(hostname: str) -> str | None:
    """Lower-case host without a trailing dot, IDNA (punycode) when non-ASCII, IPv6 in brackets; None if bad."""
    host = hostname.rstrip(".")
    if ":" in host:
        return f"[{host}]"
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host


def canonical_url(url: str | None) -> tuple[str | None, UrlReject | None]:
    """(canonical URL, None) or (None, reason). Canonical form: surrounding whitespace stripped; http/https
    only; scheme and host lower-cased, trailing host dot dropped, IDNA host; default port dropped; user info
    kept; empty path -> "/"; path and query percent-encoded per RFC 3986 with upper-case hex (existing escapes
    kept, never decoded); query order kept; fragment dropped (it never reaches the server)."""
    if url is None or not url.strip():
        return None, UrlReject.EMPTY_URL
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None, UrlReject.BAD_URL
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None, UrlReject.BAD_SCHEME
    if not parts.hostname or not parts.hostname.rstrip("."):
        return None, UrlReject.NO_HOST
    host = _canonical_host(parts.hostname)
    if host is None:
        return None, UrlReject.BAD_URL
    userinfo, at, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}{at}{host}" + (f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else "")
    try:
        path = _requote(parts.path, _PATH_SAFE) or "/"
        query = _requote(parts.query, _QUERY_SAFE)
    except UnicodeEncodeError:
        return None, UrlReject.BAD_URL
    out = f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    if len(out) > MAX_URL_CHARS:
        return None, UrlReject.URL_TOO_LONG
    return out, None


def canonicalize_urls(urls: TextBatch) -> tuple[pa.StringArray, pa.StringArray]:
    """`canonical_url` over a batch: (canonical URLs, null where rejected; reasons, null where accepted)."""
    pairs = [canonical_url(u) for u in as_pylist(urls)]
    return pa.array([p[0] for p in pairs], type=pa.string()), pa.array([p[1] for p in pairs], type=pa.string())


def url_uid(url: str) -> str:
    """MetaCLIP's uid: `hashlib.sha224(url.encode()).hexdigest()[:24]` — 24 lower-case hex chars (96 bits).
    Hash the canonical URL where there is one (two spellings of a URL then share a uid), else the raw string;
    lone surrogates are hashed as they are ("surrogatepass") so every string has a uid."""
    return hashlib.sha224(url.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def url_uids(urls: TextBatch) -> pa.StringArray:
    """`url_uid` over a batch; null stays null. Returns a `pa.string()` array."""
    return pa.array([None if u is None else url_uid(u) for u in as_pylist(urls)], type=pa.string())
