"""Image–text pairs from one Common Crawl WAT file, MetaCLIP 2's parse_wat made correct; pure, single-process, no Ray.

Rules (DESIGN.md §1, shared/research/frontier_anchors.md §1):
- only WARC `metadata` records whose JSON has `Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata.Links`;
- a link counts when its `path` starts with `IMG@/src`;
- its URL, with tabs, newlines and spaces removed (an empty one is `bad_url`), is resolved with `urljoin` against the
  page's base: `HTML-Metadata.Head.Base` (itself resolved against `WARC-Header-Metadata.WARC-Target-URI`) when
  present, else the target URI — MetaCLIP ignores `<base href>`, which sends base-relative images to wrong URLs;
  only http/https survive the join (`data:`, `javascript:`, ...: `bad_scheme`);
- each of `alt`, `title`, `data-image-title` that is non-empty after `\\r`/`\\n` → space and strip gives one row
  (none: `no_text`);
- a record whose JSON does not parse is counted (`bad_record`) and skipped, never the whole file (cc2dataset loses
  the file); a truncated or corrupt gzip member ends the file with what was read so far (`truncated`). A member
  cut inside its 8-byte gzip trailer, after the whole record, loses nothing and is not noticed.

Why these libraries: FastWARC (Rust, `ArchiveIterator(record_types=metadata, parse_http=False)`) reads gzipped WARCs
3.8–4× faster than warcio; orjson parses the record JSON several times faster than `json`. And most WAT records
(request metadata, pages without images) have no `IMG@/src` at all: a byte search for it before parsing skips their
JSON entirely (`prefilter`; measured in benchmarks/bench_extract.py). With the prefilter on, a malformed record that
does not name `IMG@/src` is never parsed, so it is not counted as `bad_record` (it could give no pair).
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import orjson
import pyarrow as pa

PAIRS_SCHEMA = pa.schema(
    [("url", pa.string()), ("caption", pa.string()), ("caption_source", pa.string()), ("page_url", pa.string())]
)
TEXT_KEYS = ("alt", "title", "data-image-title")
IMG_PATH = "IMG@/src"
_IMG_BYTES = IMG_PATH.encode()
_URL_WHITESPACE = str.maketrans("", "", "\t\n\r ")


class Drop(StrEnum):
    """Why an `IMG@/src` link (or a record) gave no pair."""

    NO_TEXT = "no_text"  # none of alt/title/data-image-title is non-empty after cleaning
    BAD_SCHEME = "bad_scheme"  # not http/https after joining (data:, javascript:, mailto:, ...)
    BAD_URL = "bad_url"  # empty (or not a string) once whitespace is removed
    BAD_RECORD = "bad_record"  # a metadata record whose JSON does not parse (the record, not a link)


@dataclass
class WatCounts:
    """What one WAT file held: metadata records read, those parsed (after the prefilter), those with an
    HTML-Metadata.Links list, IMG@/src links, pairs written, drops by `Drop` reason, and `truncated` (1 when a
    corrupt or truncated gzip member ended the file early)."""

    records: int = 0
    records_parsed: int = 0
    records_with_links: int = 0
    img_links: int = 0
    pairs: int = 0
    no_text: int = 0
    bad_scheme: int = 0
    bad_url: int = 0
    bad_record: int = 0
    truncated: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def page_base(target_uri: str, head: object) -> str:
    """The URL relative image URLs of a page resolve against: `Head.Base` joined to the target URI, else the URI."""
    base = head.get("Base") if isinstance(head, dict) else None
    if isinstance(base, str):
        base = base.translate(_URL_WHITESPACE)
        if base:
            return urljoin(target_uri, base)
    return target_uri


# A link URL urljoin would hand back unchanged (or only prefixed by the base's scheme / scheme://netloc): ASCII, no
# leading control character, no `;` (params), `#`, brackets (IPv6, which urljoin validates), trailing `?` or `/.`
# (dot segments). tests/unit/curation/test_wat.py checks `joiner` against urljoin on generated URLs.
_OPAQUE = ("data:", "javascript:", "mailto:", "blob:", "about:")
_NOT_TRIVIAL = re.compile(r"[;#\[\]]|\?$|^[\x00-\x20]|/\.")


def joiner(base: str) -> Callable[[str], str]:
    """`lambda raw: urljoin(base, raw)`, with the result computed without urljoin for the common forms — absolute
    http(s) URLs, protocol-relative `//host/...` and root-relative `/path` — when `raw` holds nothing urljoin would
    rewrite (half the cost of extraction went to urljoin)."""
    parts = urlsplit(base) if base.isascii() else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return lambda raw: urljoin(base, raw)
    scheme, origin = parts.scheme, f"{parts.scheme}://{parts.netloc}"

    def join(raw: str) -> str:
        if raw.startswith(_OPAQUE) and raw.isascii() and "[" not in raw and "]" not in raw:
            return raw  # urljoin returns a URL of another scheme unchanged (brackets: it may raise instead)
        if raw.isascii() and _NOT_TRIVIAL.search(raw) is None:
            if raw[0] == "/":
                if raw[1:2] != "/":
                    return origin + raw
                if raw[2:3] not in ("/", "?", ""):
                    return f"{scheme}:{raw}"
            elif raw.startswith(("http://", "https://")):
                k = 7 if raw[4] == ":" else 8
                if raw[k : k + 1] not in ("/", "?", ""):
                    return raw
        return urljoin(base, raw)

    return join


def link_pairs(links: list, base: str, counts: WatCounts) -> list[tuple[str, str, str]]:
    """(url, caption, caption_source) of the IMG@/src links in `links`, counting each link and drop in `counts`."""
    out: list[tuple[str, str, str]] = []
    join = joiner(base)
    for link in links:  # most links are anchors: the test for an image link comes first and is cheap
        path = link.get("path") if link.__class__ is dict else None
        if path.__class__ is not str or not path.startswith(IMG_PATH):
            continue
        counts.img_links += 1
        raw = link.get("url")
        raw = raw.translate(_URL_WHITESPACE) if raw.__class__ is str else ""
        if not raw:
            counts.bad_url += 1
            continue
        try:
            url = join(raw)
        except ValueError:  # e.g. an invalid IPv6 literal
            counts.bad_url += 1
            continue
        if not url.startswith(("http://", "https://")):  # urljoin lower-cases the scheme
            counts.bad_scheme += 1
            continue
        n = len(out)
        for key in TEXT_KEYS:
            text = link.get(key)
            if text.__class__ is str and text and (text := text.replace("\r", " ").replace("\n", " ").strip()):
                out.append((url, text, key))
        if len(out) == n:
            counts.no_text += 1
    return out


def record_pairs(
    body: bytes, fallback_uri: str | Callable[[], str], counts: WatCounts
) -> list[tuple[str, str, str, str]]:
    """(url, caption, caption_source, page_url) of one metadata record's JSON `body`; a body that does not parse is
    counted as `bad_record` and gives nothing. `fallback_uri` (or a function giving it): the page URL when the JSON
    names none (the WARC header's WARC-Target-URI)."""
    counts.records_parsed += 1
    try:
        doc = orjson.loads(body)
        envelope = doc["Envelope"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        counts.bad_record += 1
        return []
    try:
        html = envelope["Payload-Metadata"]["HTTP-Response-Metadata"]["HTML-Metadata"]
        links = html["Links"]
    except (KeyError, TypeError):
        return []
    if not isinstance(links, list):
        return []
    counts.records_with_links += 1
    header = envelope.get("WARC-Header-Metadata")
    target = header.get("WARC-Target-URI") if isinstance(header, dict) else None
    if not (isinstance(target, str) and target):
        target = fallback_uri() if callable(fallback_uri) else fallback_uri
    page_url = target
    pairs = link_pairs(links, page_base(page_url, html.get("Head")), counts)
    return [(url, caption, source, page_url) for url, caption, source in pairs]


def extract_pairs(source: str | os.PathLike[str] | BinaryIO, prefilter: bool = True) -> tuple[pa.Table, WatCounts]:
    """(pairs as a `PAIRS_SCHEMA` table, counts) of one WAT file — a path or a binary file object, gzip members
    (`.warc.wat.gz`) or uncompressed. Rows keep the file's order, links' order within a record and alt, title,
    data-image-title order within a link; no row is collapsed here (that is the extract job's barrier)."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    counts = WatCounts()
    rows: list[tuple[str, str, str, str]] = []
    stream = os.fspath(source) if isinstance(source, str | os.PathLike) else source
    # stream_detect: gzip or plain is sniffed from the first bytes; fsspec_args=False: a path is a local file
    records = ArchiveIterator(stream, record_types=WarcRecordType.metadata, parse_http=False, fsspec_args=False)
    n = 0
    try:
        for record in records:
            n += 1
            body = record.reader.read()
            length = record.content_length
            if len(body) < length or (not length and record.headers.get("Content-Length") is None):
                counts.truncated = 1  # the member ended inside this record (body or header): stop with what was read
                break
            if prefilter and _IMG_BYTES not in body:
                continue
            rows += record_pairs(body, lambda r=record: r.headers.get("WARC-Target-URI") or "", counts)
    except OSError:  # FastWARC's error for a corrupt gzip member or a broken WARC header: the file ends here, counted
        counts.truncated = 1
    counts.records = n
    counts.pairs = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.table([pa.array(c, pa.string()) for c in columns], schema=PAIRS_SCHEMA), counts


CANDIDATES_SCHEMA = pa.schema([*PAIRS_SCHEMA, ("pages", pa.int64())])


def collapse_pairs(pairs: pa.Table) -> pa.Table:
    """Exact (url, caption) duplicates of `pairs` (PAIRS_SCHEMA) as one row each, with `pages`: the number of
    distinct page URLs the pair was found on. The row keeps the smallest (page_url, caption_source) of its group,
    so the result does not depend on row order. Rows come out sorted by (url, caption); CANDIDATES_SCHEMA."""
    if pairs.num_rows == 0:
        return CANDIDATES_SCHEMA.empty_table()
    keys = ["url", "caption", "page_url", "caption_source"]
    ordered = pairs.select(PAIRS_SCHEMA.names).sort_by([(k, "ascending") for k in keys])
    grouped = ordered.group_by(["url", "caption"], use_threads=False).aggregate(
        [("caption_source", "first"), ("page_url", "first"), ("page_url", "count_distinct")]
    )
    table = pa.table(
        {
            "url": grouped["url"],
            "caption": grouped["caption"],
            "caption_source": grouped["caption_source_first"],
            "page_url": grouped["page_url_first"],
            "pages": grouped["page_url_count_distinct"].cast(pa.int64()),
        },
        schema=CANDIDATES_SCHEMA,
    )
    return table.sort_by([("url", "ascending"), ("caption", "ascending")])


def looks_like_warc(head: bytes) -> bool:
    """True when the first bytes of a file (a few KiB) are a WARC record, plain or in a gzip member: what a check of
    the inputs reads before a job starts, so that a file of another kind is reported by name, not counted."""
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
        except zlib.error:
            return False
    return head.lstrip(b"\r\n").startswith(b"WARC/")


def image_text_pairs(source: str | os.PathLike[str] | BinaryIO) -> pa.Table:
    """The pairs of one WAT file: columns url, caption, caption_source (alt, title or data-image-title), page_url
    (strings). See `extract_pairs` for the counts."""
    return extract_pairs(source)[0]
