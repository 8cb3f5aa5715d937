"""The do-not-train registry: its one format (domains, URL prefixes, globs), malformed lines named by line, and the
fetcher refusing a listed URL before DNS or any connection."""

from __future__ import annotations

import pytest

from curation.fetch import Fetcher, FetchStatus
from curation.fetch_config import FetchConfig
from curation.optout import OptOutRegistry

TEXT = """\
# do not train
example.com
Bücher.example          # IDNA: xn--bcher-kva.example
https://Photos.Example.org/private/   # a prefix
*://*.cdn.test/*/nofollow-*.png
"""


@pytest.fixture(scope="module")
def reg():
    return OptOutRegistry.parse(TEXT, source="optout.txt")


@pytest.mark.parametrize(
    ("url", "line"),
    [
        ("http://example.com/a.jpg", 2),
        ("https://img.EXAMPLE.com:8443/x/y.png?s=1", 2),  # a subdomain, another port, any path
        ("http://xn--bcher-kva.example/cover.jpg", 3),
        ("http://bücher.example/cover.jpg", 3),
        ("https://photos.example.org/private/2024/a.jpg", 4),
        ("https://PHOTOS.example.org/private/", 4),
        ("http://a.cdn.test/u/nofollow-1.png", 5),
    ],
)
def test_listed(reg, url, line):
    hit = reg.match(url)
    assert hit is not None and hit.line == line and hit.source == "optout.txt"


@pytest.mark.parametrize(
    "url",
    [
        "http://notexample.com/a.jpg",  # a suffix of the name, not a subdomain
        "http://example.com.evil.test/a.jpg",
        "https://photos.example.org/Private/a.jpg",  # paths are case-sensitive
        "http://photos.example.org/private/a.jpg",  # another scheme than the prefix's
        "https://photos.example.org/public/a.jpg",
        "http://a.cdn.test/u/follow-1.png",
        "not a url",
    ],
)
def test_not_listed(reg, url):
    assert reg.match(url) is None


def test_len_and_empty():
    assert len(OptOutRegistry.parse(TEXT)) == 4 and len(OptOutRegistry.parse("# nothing\n\n")) == 0
    assert OptOutRegistry().match("http://example.com/") is None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("example.com extra", "holds a space"),
        ("ftp://example.com/x", "not an http(s) URL prefix"),
        ("https:///nohost", "not an http(s) URL prefix"),
        ("exa_mple.com", "not a domain"),
        ("-bad.example", "not a domain"),
    ],
)
def test_malformed_lines_are_named(line, why):
    with pytest.raises(ValueError) as e:
        OptOutRegistry.parse(f"example.com\n# c\n{line}\n", source="s3://b/optout.txt")
    assert str(e.value).startswith("s3://b/optout.txt line 3: ") and why in str(e.value)


def test_the_fetcher_refuses_a_listed_url_before_dns_and_connecting():
    resolved, connected = [], []

    def resolver(host, port):
        resolved.append(host)
        return ["93.184.216.34"]

    def connect(address, timeout):
        connected.append(address)
        raise ConnectionRefusedError("test: never connects")

    f = Fetcher(FetchConfig(retries=0), resolver=resolver, connect=connect, opt_out=OptOutRegistry.parse(TEXT))
    r = f.fetch("https://cdn.example.com/a.jpg")
    assert r.status == FetchStatus.opt_out_registry and "'example.com' (registry line 2)" in r.detail
    assert resolved == [] and connected == []
    assert f.fetch("https://other.test/a.jpg").status == FetchStatus.connection_error  # not listed: it tries
    assert resolved == ["other.test"] and connected == [("93.184.216.34", 443)]
