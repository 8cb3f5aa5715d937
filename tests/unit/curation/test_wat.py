"""curation/wat.py, rule by rule, on hand-made WAT records: base resolution, URL cleaning, schemes, texts, bad JSON,
truncated and uncompressed input, file objects."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.wat import PAIRS_SCHEMA, extract_pairs, image_text_pairs, joiner, looks_like_warc
from infra.localweb.wat import warc_record

PAGE = "http://example.com/dir/page.html"


def record(links, target=PAGE, head=None, n=1) -> bytes:
    html = {"Links": links, **({"Head": head} if head is not None else {})}
    doc = {
        "Envelope": {
            "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": target},
            "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": html}},
        }
    }
    return warc_record("metadata", json.dumps(doc).encode(), target, n, "application/json")


def wat(*records: bytes) -> bytes:
    return b"".join(gzip.compress(r, mtime=0) for r in records)


def pairs(*records: bytes, **kw) -> tuple[list[tuple], dict]:
    table, counts = extract_pairs(io.BytesIO(wat(*records)), **kw)
    assert table.schema == PAIRS_SCHEMA
    return [tuple(r.values()) for r in table.to_pylist()], counts.as_dict()


def img(url, **texts):
    return {"path": "IMG@/src", "url": url, **texts}


def test_urls_resolve_against_the_page():
    links = [
        img("a.jpg", alt="rel"),
        img("/b.jpg", alt="root"),
        img("../c.jpg", alt="up"),
        img("//cdn.example.org/d.jpg", alt="proto"),
        img("https://other.org/e.jpg", alt="abs"),
    ]
    rows, counts = pairs(record(links))
    assert [r[0] for r in rows] == [
        "http://example.com/dir/a.jpg",
        "http://example.com/b.jpg",
        "http://example.com/c.jpg",
        "http://cdn.example.org/d.jpg",
        "https://other.org/e.jpg",
    ]
    assert all(r[2] == "alt" and r[3] == PAGE for r in rows)
    assert counts["img_links"] == counts["pairs"] == 5 and counts["records_with_links"] == 1


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("/static/img/", "http://example.com/static/img/x.jpg"),  # a relative base resolves against the page
        ("https://cdn.example.net/a/", "https://cdn.example.net/a/x.jpg"),
        ("  ", "http://example.com/dir/x.jpg"),  # an empty base is no base
    ],
)
def test_base_href_is_the_base(base, expected):
    rows, _ = pairs(record([img("x.jpg", alt="t")], head={"Base": base}))
    assert rows == [(expected, "t", "alt", PAGE)]


def test_whitespace_is_removed_from_the_url_and_an_empty_one_is_bad_url():
    rows, counts = pairs(record([img("\thttp://exa mple.com/\na.jpg \r", alt="w"), img(" \t\n", alt="e"), img(None)]))
    assert rows == [("http://example.com/a.jpg", "w", "alt", PAGE)]
    assert counts["bad_url"] == 2


def test_only_http_and_https_survive():
    links = [
        img("data:image/png;base64,iVBORw0KGgo=", alt="d"),
        img("javascript:void(0)", alt="j"),
        img("mailto:a@b.c", alt="m"),
        img("ftp://h/x.jpg", alt="f"),
        img("HTTP://h/x.jpg", alt="upper"),
    ]
    rows, counts = pairs(record(links))
    assert rows == [("http://h/x.jpg", "upper", "alt", PAGE)]
    assert counts["bad_scheme"] == 4


def test_each_non_empty_text_gives_one_row():
    links = [
        img("1.jpg", alt="an alt", title="a title", **{"data-image-title": "a data title"}),
        img("2.jpg", alt="", title="  "),  # no_text
        img("3.jpg", alt=" \r\n "),  # no_text
        img("4.jpg"),  # no_text
        img("5.jpg", alt="two\nlines\r", title=7),  # a non-string text is no text
    ]
    rows, counts = pairs(record(links))
    assert [(r[0].rsplit("/", 1)[1], r[1], r[2]) for r in rows] == [
        ("1.jpg", "an alt", "alt"),
        ("1.jpg", "a title", "title"),
        ("1.jpg", "a data title", "data-image-title"),
        ("5.jpg", "two lines", "alt"),
    ]
    assert counts["no_text"] == 3 and counts["img_links"] == 5 and counts["pairs"] == 4


def test_non_image_links_are_ignored():
    links = [
        {"path": "A@/href", "url": "/next.html", "text": "next"},
        {"path": "LINK@/href", "url": "/s.css"},
        {"path": "IMG@/data-src", "url": "x.jpg", "alt": "lazy"},
        {"url": "y.jpg", "alt": "no path"},
        "not a dict",
        img("z.jpg", alt="kept"),
    ]
    rows, counts = pairs(record(links))
    assert [r[1] for r in rows] == ["kept"] and counts["img_links"] == 1


def test_bad_json_is_counted_and_skipped_not_the_file():
    bad = warc_record("metadata", b'{"Envelope": {"IMG@/src": ', PAGE, 2, "application/json")
    rows, counts = pairs(record([img("a.jpg", alt="before")]), bad, record([img("b.jpg", alt="after")], n=3))
    assert [r[1] for r in rows] == ["before", "after"]
    assert counts["bad_record"] == 1 and counts["records"] == 3


def test_the_prefilter_skips_records_without_images():
    no_img = record([{"path": "A@/href", "url": "/x", "text": "t"}], n=2)
    bad = warc_record("metadata", b"{not json", PAGE, 3, "application/json")
    on = pairs(record([img("a.jpg", alt="a")]), no_img, bad)
    off = pairs(record([img("a.jpg", alt="a")]), no_img, bad, prefilter=False)
    assert on[0] == off[0]
    assert (on[1]["records_parsed"], on[1]["records_with_links"], on[1]["bad_record"]) == (1, 1, 0)
    assert (off[1]["records_parsed"], off[1]["records_with_links"], off[1]["bad_record"]) == (3, 2, 1)


def test_only_metadata_records_with_links_are_read():
    info = warc_record("warcinfo", b"software: x\r\n", None, 1, "application/warc-fields")
    request = warc_record("request", b'{"IMG@/src": 1}', PAGE, 2, "application/http")
    no_links = warc_record("metadata", b'{"Envelope": {"IMG@/src": {}}}', PAGE, 3, "application/json")
    rows, counts = pairs(info, request, no_links, record([img("a.jpg", alt="a")], n=4))
    assert len(rows) == 1 and counts["records"] == 2 and counts["records_with_links"] == 1


def test_a_truncated_gzip_member_ends_the_file_with_what_was_read():
    data = wat(record([img("a.jpg", alt="a")]), record([img("b.jpg", alt="b")], n=2))
    last = len(gzip.compress(record([img("b.jpg", alt="b")], n=2), mtime=0))
    table, counts = extract_pairs(io.BytesIO(data[: len(data) - last // 2]))
    assert table["caption"].to_pylist() == ["a"] and counts.truncated == 1
    corrupt = data[: len(data) - last + 12] + b"\x00" * 40 + data[len(data) - last + 52 :]
    table, counts = extract_pairs(io.BytesIO(corrupt))
    assert table["caption"].to_pylist() == ["a"] and counts.truncated == 1


def test_uncompressed_input_and_paths(tmp_path):
    plain = record([img("a.jpg", alt="a")]) + record([img("b.jpg", title="b")], n=2)
    (tmp_path / "x.warc.wat").write_bytes(plain)
    (tmp_path / "x.warc.wat.gz").write_bytes(wat(record([img("a.jpg", alt="a")]), record([img("b.jpg", title="b")])))
    expected = [
        ("http://example.com/dir/a.jpg", "a", "alt", PAGE),
        ("http://example.com/dir/b.jpg", "b", "title", PAGE),
    ]
    for source in (tmp_path / "x.warc.wat", str(tmp_path / "x.warc.wat.gz"), io.BytesIO(plain)):
        assert [tuple(r.values()) for r in image_text_pairs(source).to_pylist()] == expected
    with open(tmp_path / "x.warc.wat.gz", "rb") as f:  # a real file object
        assert image_text_pairs(f).num_rows == 2


def test_empty_file_gives_an_empty_table():
    table, counts = extract_pairs(io.BytesIO(b""))
    assert table.num_rows == 0 and table.schema == PAIRS_SCHEMA and counts.records == 0


def test_looks_like_warc():
    rec = record([img("a.jpg", alt="a")])
    assert looks_like_warc(rec[:100]) and looks_like_warc(gzip.compress(rec)[:4096])
    assert not looks_like_warc(b"url,caption\n") and not looks_like_warc(gzip.compress(b"url,caption\n"))


def test_curation_wat_imports_no_ray_and_no_project_package():
    code = "import sys, curation.wat; print('ray' in sys.modules, [m for m in sys.modules if m[:8] == 'pipeline'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False []"


BASES = [
    PAGE,
    "https://example.com",
    "http://example.com/a/b/?q=1#f",
    "http://user@example.com:8080/dir/",
    "https://ex.org/a;p?q",
    "ftp://example.com/x",
    "http://exämple.com/x",
]
PREFIXES = [
    "",
    "/",
    "//",
    "///",
    "http://",
    "https://",
    "HTTP://",
    "http:",
    "../",
    "./",
    "?",
    "#",
    "data:",
    "//[",
    "javascript://",
]


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(BASES),
    st.sampled_from(PREFIXES),
    st.text(alphabet="ab/.?#;:[]@%-_=&~é\x01", max_size=14),
)
def test_joiner_is_urljoin(base, prefix, rest):
    raw = prefix + rest
    if not raw:
        return
    try:
        expected = urljoin(base, raw)
    except ValueError:
        with pytest.raises(ValueError):
            joiner(base)(raw)
        return
    assert joiner(base)(raw) == expected
