"""`download.fetch.resolve` (curl's --resolve for the fetcher): configured names answer without DNS, their address
still passes the range checks, and malformed entries are config errors naming the entry."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from curation.fetch import Fetcher, FetchStatus
from curation.fetch_config import FetchConfig
from curation.fetch_http import pinned_resolver


def _dns(calls: list[str]):
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, f"test: unknown host {host}")

    return resolve


def test_exact_name_beats_suffix_and_others_fall_through():
    calls: list[str] = []
    resolve = pinned_resolver(
        {"*.web.test": "127.0.0.1", "a.b.web.test": "127.0.0.2", "*.b.web.test": "127.0.0.3"}, _dns(calls)
    )
    assert resolve("site-001.web.test", 80) == ["127.0.0.1"]
    assert resolve("SITE-002.Web.Test.", 80) == ["127.0.0.1"]
    assert resolve("a.b.web.test", 80) == ["127.0.0.2"]
    assert resolve("c.b.web.test", 80) == ["127.0.0.3"]  # the longest suffix wins
    assert calls == []
    with pytest.raises(socket.gaierror):
        resolve("web.test", 80)  # "*.web.test" names sub-domains only
    with pytest.raises(socket.gaierror):
        resolve("example.com", 80)
    assert calls == ["web.test", "example.com"]


class _NoConnect:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, address, timeout):
        self.calls.append(address)
        raise ConnectionRefusedError("test: no connection")


def test_a_resolved_address_still_passes_the_range_checks():
    connect = _NoConnect()
    cfg = FetchConfig(resolve={"*.web.test": "127.0.0.1"}, retries=0, robots_txt=False)
    r = Fetcher(cfg, resolver=_dns([]), connect=connect).fetch("http://site-001.web.test:8080/a.jpg")
    assert r.status == FetchStatus.forbidden_address and "127.0.0.1: loopback" in r.detail
    assert connect.calls == []
    allowed = cfg.model_copy(update={"allow_cidrs": ["127.0.0.0/8"]})
    r = Fetcher(allowed, resolver=_dns([]), connect=connect).fetch("http://site-001.web.test:8080/a.jpg")
    assert r.status == FetchStatus.connection_error
    assert connect.calls == [("127.0.0.1", 8080)]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"*.web.test": "localhost"}, "'localhost' is not an IP address"),
        ({"*.web.test": "127.0.0.1:80"}, "is not an IP address"),
        ({"web test": "127.0.0.1"}, "'web test': not a hostname"),
        ({"*": "127.0.0.1"}, "'*': not a hostname"),
        ({"a.*.test": "127.0.0.1"}, "not a hostname"),
        ({"": "127.0.0.1"}, "not a hostname"),
    ],
)
def test_malformed_entries_are_config_errors(entry, says):
    with pytest.raises(ValidationError) as e:
        FetchConfig(resolve=entry)
    assert "resolve" in str(e.value) and says in str(e.value)
