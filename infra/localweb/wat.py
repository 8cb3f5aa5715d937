"""WAT files of the synthetic web: pages that link its images, as Common Crawl writes them; no network, no parsing.

    OUT/wat/web-00000.warc.wat.gz ...   one gzip member per WARC record (warcinfo, request, metadata records)
    OUT/wat/answers.parquet              the (url, caption, caption_source, page_url) pairs an extractor must find

Each page's metadata record lists `IMG@/src` links to the web's `ok` images in every form a page writes them:
absolute, root-relative, page-relative, protocol-relative, relative to a `<base href>` (itself relative or
absolute), with tabs/newlines/spaces inside the URL; texts in `alt`, `title` and `data-image-title`, empty and
whitespace-only alts, alts with line breaks, the same image on several pages with the same or another alt. Besides
them: `data:` and `javascript:` sources, an empty source, non-image links (`A@/href`, `LINK@/href`), a request-metadata
record per page (no links), a warcinfo record and a plain WARC `request` record per file. The first file holds one
record whose JSON is cut short (it names `IMG@/src`, so a prefilter does not hide it); the last file is cut in the
middle of its last gzip member. The answers hold the pairs of every other page record, per record (not collapsed).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

WAT_DIR = "wat"
WAT_ANSWERS = "answers.parquet"
PAIRS_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("caption", pa.string()),
        ("caption_source", pa.string()),  # alt, title or data-image-title
        ("page_url", pa.string()),
        ("file", pa.string()),  # the WAT file's name under wat/
    ]
)
BROKEN_JSON = b'{"Envelope": {"Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {"Links": [{"path": '
BROKEN_JSON += b'"IMG@/src", "url": "/img/x.jpg", "alt": "a record cut short'
DATE = "2026-01-01T00:00:00Z"


def wat_name(i: int) -> str:
    return f"web-{i:05d}.warc.wat.gz"


def warc_record(warc_type: str, body: bytes, target_uri: str | None, record_no: int, content_type: str) -> bytes:
    """One WARC/1.0 record (headers, block, the two CRLFs that end it), uncompressed."""
    headers = [
        "WARC/1.0",
        f"WARC-Type: {warc_type}",
        f"WARC-Date: {DATE}",
        f"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-{record_no:012d}>",
        *([f"WARC-Target-URI: {target_uri}"] if target_uri else []),
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body + b"\r\n\r\n"


def _envelope(page_url: str, warc_type: str, payload: dict[str, Any]) -> bytes:
    doc = {
        "Container": {"Filename": "synthetic.warc.gz", "Compressed": True},
        "Envelope": {
            "Format": "WARC",
            "WARC-Header-Metadata": {"WARC-Type": warc_type, "WARC-Target-URI": page_url, "WARC-Date": DATE},
            "Payload-Metadata": payload,
        },
    }
    return json.dumps(doc, ensure_ascii=False).encode()


def _link_url(url: str, base: str, page_base: str | None, style: int) -> str:
    """The image `url` (`{base}/img/...`) as the page writes it, in one of 5 styles."""
    if not url.startswith(base + "/"):  # another (virtual) host's image: only the forms that keep its host
        style %= 3
    path = url[len(base) :]  # /img/...
    if style == 0:
        return url
    if style == 1:  # protocol-relative
        return url.split(":", 1)[1]
    if style == 2:  # with whitespace a browser strips
        return f"\t{url[:12]}\n{url[12:]} "
    if page_base is not None:  # relative to <base href=".../img/">
        return path[len("/img/") :]
    return path if style == 3 else ".." + path  # root-relative; page-relative from /pages/N.html


def _texts(caption: str, page: int, style: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(the link's text attributes, the expected (caption, source) pairs) for one of 7 text styles."""
    clean = caption.replace("\r", " ").replace("\n", " ").strip()
    if style == 0:
        attrs = {"alt": caption}
    elif style == 1:
        attrs = {"alt": caption, "title": f"{caption} (photo)"}
    elif style == 2:
        attrs = {"alt": "", "title": caption}
    elif style == 3:
        attrs = {"alt": "  \n ", "data-image-title": caption}
    elif style == 4:
        attrs = {"alt": caption.replace(" ", "\r\n", 1) + "\n"}
    elif style == 5:
        attrs = {}  # no text at all
    else:
        attrs = {"alt": f"page {page}: {caption}"}
    pairs = []
    for key in ("alt", "title", "data-image-title"):
        text = attrs.get(key, "").replace("\r", " ").replace("\n", " ").strip()
        if text:
            pairs.append((text, key))
    assert style == 5 or pairs, clean
    return attrs, pairs


def _page(
    page: int, base: str, images: list[tuple[str, str]], with_base: bool = True
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """(HTML-Metadata of page `page`, its expected (url, caption, caption_source) pairs)."""
    page_base = {3: "/img/", 7: f"{base}/img/"}.get(page % 8) if with_base else None
    links: list[dict[str, str]] = [{"path": "A@/href", "url": f"/pages/{page + 1}.html", "text": "next page"}]
    links.append({"path": "LINK@/href", "url": "/style.css", "rel": "stylesheet"})
    expected = []
    for j in range(3 + page % 3):
        n = page * 3 + j
        url, caption = images[n % len(images)]
        attrs, pairs = _texts(caption, page, n % 7)
        links.append({"path": "IMG@/src", "url": _link_url(url, base, page_base, n % 5), **attrs})
        expected += [(url, text, source) for text, source in pairs]
    odd = page % 5
    if odd == 0:
        links.append({"path": "IMG@/src", "url": "data:image/png;base64,iVBORw0KGgo=", "alt": "an inline pixel"})
    elif odd == 1:
        links.append({"path": "IMG@/src", "url": "javascript:void(0)", "alt": "a script", "title": "x"})
    elif odd == 2:
        links.append({"path": "IMG@/src", "url": " \t\n", "alt": "nowhere"})
    head: dict[str, Any] = {"Title": f"page {page}"}
    if page_base is not None:
        head["Base"] = page_base
    return {"Head": head, "Links": links}, expected


def write_wat(base: str, images: list[tuple[str, str]], out: Path, n_pages: int, n_files: int) -> dict[str, int]:
    """Write `n_pages` pages linking `images` [(url, caption)] over `n_files` WAT files into out/wat/ plus the
    answers; return the counts for web.json. Deterministic: same arguments, same bytes."""
    wat = out / WAT_DIR
    wat.mkdir(parents=True, exist_ok=True)
    for old in wat.glob("web-*.warc.wat.gz"):
        old.unlink()
    per_file = -(-n_pages // n_files)
    rows: list[tuple[str, str, str, str, str]] = []
    record_no = 0
    for f in range(n_files):
        members, pending = [], []
        info = b"software: clipforge localweb\r\nformat: WARC File Format 1.0\r\n"
        members.append(warc_record("warcinfo", info, None, record_no := record_no + 1, "application/warc-fields"))
        request = f"GET /pages/{f}.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        members.append(warc_record("request", request, f"{base}/", record_no := record_no + 1, "application/http"))
        for page in range(f * per_file, min((f + 1) * per_file, n_pages)):
            page_url = f"{base}/pages/{page}.html"
            req = _envelope(page_url, "request", {"HTTP-Request-Metadata": {"Request-Message": {"Method": "GET"}}})
            members.append(warc_record("metadata", req, page_url, record_no := record_no + 1, "application/json"))
            html, expected = _page(page, base, images)
            meta = _envelope(page_url, "response", {"HTTP-Response-Metadata": {"HTML-Metadata": html}})
            members.append(warc_record("metadata", meta, page_url, record_no := record_no + 1, "application/json"))
            pending.append([(u, c, s, page_url, wat_name(f)) for u, c, s in expected])
            if f == 0 and page == 0:
                bad = warc_record("metadata", BROKEN_JSON, page_url, record_no := record_no + 1, "application/json")
                members.append(bad)
        truncated = f == n_files - 1 and n_files > 1 and pending
        if truncated:
            pending.pop()  # the last record's member is cut in half: its pairs are lost
        rows += [row for page_rows in pending for row in page_rows]
        blobs = [gzip.compress(m, compresslevel=6, mtime=0) for m in members]
        if truncated:
            blobs[-1] = blobs[-1][: len(blobs[-1]) // 2]
        _atomic_write(wat / wat_name(f), b"".join(blobs))
    table = pa.table([list(col) for col in zip(*rows, strict=True)], schema=PAIRS_SCHEMA)
    tmp = wat / (WAT_ANSWERS + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, wat / WAT_ANSWERS)
    truncated = int(n_files > 1 and n_pages > (n_files - 1) * per_file)
    return {"files": n_files, "pages": n_pages, "pairs": table.num_rows, "bad_record": 1, "truncated": truncated}


# What a Common Crawl response record carries besides links (a few KiB of it): HTTP headers, metas, scripts.
_HTTP = {
    "Response-Message": {"Version": "HTTP/1.1", "Status": "200", "Reason": "OK"},
    "Headers-Length": "512",
    "Entity-Length": "48213",
    "Headers": {
        "Date": "Thu, 01 Jan 2026 00:00:00 GMT",
        "Content-Type": "text/html; charset=UTF-8",
        "Server": "nginx",
        "Cache-Control": "max-age=600",
        "Vary": "Accept-Encoding",
        "X-Frame-Options": "SAMEORIGIN",
        "Strict-Transport-Security": "max-age=31536000",
        "Set-Cookie": "session=0123456789abcdef0123456789abcdef; Path=/; HttpOnly",
    },
}
_HEAD = {
    "Metas": [
        {"name": "viewport", "content": "width=device-width, initial-scale=1"},
        {"name": "description", "content": "Shapes, colours and handwritten digits, photographed and drawn. " * 2},
        {"property": "og:type", "content": "website"},
        {"name": "robots", "content": "index, follow"},
        {"name": "generator", "content": "WordPress 6.4"},
    ],
    "Link": [{"path": "LINK@/href", "url": f"/assets/style-{i}.css", "rel": "stylesheet"} for i in range(4)],
    "Scripts": [{"path": "SCRIPT@/src", "url": f"/assets/app-{i}.js", "type": "text/javascript"} for i in range(4)],
}


def write_bulk_wat(
    path: Path, base: str, images: list[tuple[str, str]], pages: range, with_base: bool = True, text_pages: int = 3
) -> int:
    """A fault-free WAT file of `pages` for benchmarks: per page a request-metadata record, a response-metadata record
    with its image links, and `text_pages` - 1 records of pages without images (as most Common Crawl records are);
    every response carries 60 anchor links. No `<base>` without `with_base` (MetaCLIP's reference ignores it).
    Returns the metadata records written."""
    blobs, record_no = [], 0
    for page in pages:
        page_url = f"{base}/pages/{page}.html"
        anchors = [{"path": "A@/href", "url": f"/pages/{page}/{k}.html", "text": f"read more {k}"} for k in range(60)]
        req = _envelope(page_url, "request", {"HTTP-Request-Metadata": {"Request-Message": {"Method": "GET"}}})
        html, _ = _page(page, base, images, with_base)
        html["Links"] += anchors
        html["Head"].update(_HEAD)
        members = [req, _envelope(page_url, "response", {"HTTP-Response-Metadata": {**_HTTP, "HTML-Metadata": html}})]
        for k in range(text_pages - 1):
            text = {"Head": {"Title": f"page {page} text {k}", **_HEAD}, "Links": anchors}
            payload = {"HTTP-Response-Metadata": {**_HTTP, "HTML-Metadata": text}}
            members.append(_envelope(f"{page_url}?t={k}", "response", payload))
        for body in members:
            record_no += 1
            record = warc_record("metadata", body, page_url, record_no, "application/json")
            blobs.append(gzip.compress(record, compresslevel=6, mtime=0))
    _atomic_write(path, b"".join(blobs))
    return record_no


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


CRAWL_DIR = "crawl"
CRAWL_ANSWERS = "answers.parquet"
IMAGES_PER_PAGE = 8
_CRAWL_TEXT = ("alt", "alt", "alt", "alt", "alt", "title", "data-image-title")
_CRAWL_ODD = (
    {"path": "IMG@/src", "url": "data:image/png;base64,iVBORw0KGgo=", "alt": "an inline pixel"},  # bad_scheme
    {"path": "IMG@/src", "url": "javascript:void(0)", "alt": "a script"},  # bad_scheme
    {"path": "IMG@/src", "url": " \t\n", "alt": "nowhere"},  # bad_url
    {"path": "IMG@/src", "url": "/img/spacer.gif", "alt": " "},  # no_text
)


def crawl_name(i: int) -> str:
    return f"crawl-{i:05d}.warc.wat.gz"


def _crawl_link(url: str, caption: str, base: str, page_base: str | None, row: int) -> tuple[dict[str, str], str]:
    """(the IMG@/src link of candidate `row`, its caption_source): the URL in one of write_wat's 5 forms, the caption
    as alt, title (under an empty alt) or data-image-title (under a whitespace alt)."""
    source = _CRAWL_TEXT[row % len(_CRAWL_TEXT)]
    attrs = {"alt": caption} if source == "alt" else {"alt": "" if source == "title" else " \n", source: caption}
    return {"path": "IMG@/src", "url": _link_url(url, base, page_base, row % 5), **attrs}, source


def write_crawl_wat(base: str, rows: list[tuple[str, str]], out: Path, n_files: int) -> dict[str, int]:
    """The web's whole candidate list as a crawl: out/crawl/crawl-0000N.warc.wat.gz, pages of IMAGES_PER_PAGE images
    in candidate order (so a URL the web repeats with another caption is, as a rule, on another page with another
    alt), each candidate linked once in write_wat's URL forms (every 25th again on the next page, same alt: an exact
    duplicate), plus per page one link extraction drops. No fault: every candidate is found. out/crawl/answers.parquet
    holds the expected pairs (PAIRS_SCHEMA, per record, not collapsed). Returns the counts for web.json."""
    crawl = out / CRAWL_DIR
    crawl.mkdir(parents=True, exist_ok=True)
    for old in crawl.glob("crawl-*.warc.wat.gz"):
        old.unlink()
    n_pages = -(-len(rows) // IMAGES_PER_PAGE)
    n_files = max(1, min(n_files, n_pages))
    per_file = -(-n_pages // n_files)
    answers: list[tuple[str, str, str, str, str]] = []
    record_no = 0
    for f in range(n_files):
        blobs = []
        for page in range(f * per_file, min((f + 1) * per_file, n_pages)):
            page_url = f"{base}/crawl/{page}.html"
            page_base = {1: f"{base}/img/", 3: "/img/"}.get(page % 4)
            links: list[dict[str, str]] = [{"path": "A@/href", "url": f"/crawl/{page + 1}.html", "text": "next"}]
            first = page * IMAGES_PER_PAGE
            again = [r for r in range(first - IMAGES_PER_PAGE, first) if r >= 0 and r % 25 == 0]
            for r in [*range(first, min(first + IMAGES_PER_PAGE, len(rows))), *again]:
                url, caption = rows[r]
                link, source = _crawl_link(url, caption, base, page_base, r)
                links.append(link)
                text = caption.replace("\r", " ").replace("\n", " ").strip()
                if text:
                    answers.append((url, text, source, page_url, crawl_name(f)))
            links.append(_CRAWL_ODD[page % len(_CRAWL_ODD)])
            head: dict[str, Any] = {"Title": f"crawl page {page}", **({"Base": page_base} if page_base else {})}
            body = _envelope(
                page_url, "response", {"HTTP-Response-Metadata": {"HTML-Metadata": {"Head": head, "Links": links}}}
            )
            record = warc_record("metadata", body, page_url, record_no := record_no + 1, "application/json")
            blobs.append(gzip.compress(record, compresslevel=1, mtime=0))
        _atomic_write(crawl / crawl_name(f), b"".join(blobs))
    columns = [list(col) for col in zip(*answers, strict=True)] or [[] for _ in PAIRS_SCHEMA]
    table = pa.table(columns, schema=PAIRS_SCHEMA)
    tmp = crawl / (CRAWL_ANSWERS + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, crawl / CRAWL_ANSWERS)
    return {"files": n_files, "pages": n_pages, "pairs": table.num_rows}
