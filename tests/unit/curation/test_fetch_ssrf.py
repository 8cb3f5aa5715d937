"""SSRF guard of the fetcher: refused names, addresses and schemes never lead to a connection attempt.

Every test uses a stub resolver (no real DNS) and a connect hook that records the attempt and fails: for refused
targets the record must stay empty; for allowed public addresses it must show exactly the resolved address
(proving the connection is pinned to what was checked). No socket is ever opened.
"""

from __future__ import annotations

import socket

import pytest

from curation.fetch import Fetcher, FetchStatus, fetch_many, fetch_url
from curation.fetch_config import FetchConfig


class Recorder:
    """connect hook: records every attempt and refuses it, so nothing leaves this process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, address: tuple[str, int], timeout: float) -> socket.socket:
        self.calls.append(address)
        raise ConnectionRefusedError("test: connections are never made")


def stub_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"test: unknown host {host}")
        return table[host]

    return resolve


FORBIDDEN = {
    "loopback4.test": ("127.0.0.1", "loopback"),
    "loopback4b.test": ("127.255.0.9", "loopback"),
    "loopback6.test": ("::1", "loopback"),
    "mapped.test": ("::ffff:127.0.0.1", "ipv4_mapped:loopback"),
    "mapped-private.test": ("::ffff:10.1.2.3", "ipv4_mapped:private"),
    "nat64.test": ("64:ff9b::7f00:1", "nat64:loopback"),
    "nat64-meta.test": ("64:ff9b::a9fe:a9fe", "nat64:link_local"),
    "nat64-local.test": ("64:ff9b:1::1", "nat64_local"),
    "sixtofour.test": ("2002:c0a8:0101::1", "6to4:private"),
    "teredo.test": ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
    "compat.test": ("::127.0.0.1", "ipv4_compatible"),
    "zero.test": ("0.0.0.0", "this_network"),
    "unspec6.test": ("::", "unspecified"),
    "metadata.test": ("169.254.169.254", "link_local"),
    "ten.test": ("10.0.0.1", "private"),
    "one72.test": ("172.16.5.4", "private"),
    "one72top.test": ("172.31.255.255", "private"),
    "one92.test": ("192.168.1.1", "private"),
    "cgnat.test": ("100.64.0.1", "cgnat"),
    "cgnat-top.test": ("100.127.255.254", "cgnat"),
    "linklocal6.test": ("fe80::1", "link_local"),
    "ula.test": ("fc00::1", "unique_local"),
    "ula-aws.test": ("fd00:ec2::254", "unique_local"),
    "mcast4.test": ("224.0.0.1", "multicast"),
    "mcast4b.test": ("239.255.255.250", "multicast"),
    "mcast6.test": ("ff02::1", "multicast"),
    "bench.test": ("198.18.0.1", "benchmarking"),
    "doc.test": ("192.0.2.10", "documentation"),
    "doc6.test": ("2001:db8::1", "documentation"),
    "reserved.test": ("240.0.0.1", "reserved"),
    "broadcast.test": ("255.255.255.255", "reserved"),
}


@pytest.mark.parametrize(
    ("host", "allow"),
    [(h, []) for h in sorted(FORBIDDEN)]
    # With the test allowlist on, everything but the allowlisted IPv4 loopback itself must still be refused.
    + [(h, ["127.0.0.0/8"]) for h in sorted(FORBIDDEN) if not FORBIDDEN[h][0].startswith("127.")],
)
def test_names_resolving_to_forbidden_ranges_are_refused_without_connecting(host, allow):
    address, reason = FORBIDDEN[host]
    rec = Recorder()
    table = {h: [a] for h, (a, _) in FORBIDDEN.items()}
    r = fetch_url(f"http://{host}/a.jpg", FetchConfig(allow_cidrs=allow), resolver=stub_resolver(table), connect=rec)
    assert r.status == FetchStatus.forbidden_address, r
    assert r.detail.endswith(f"-> {address}: {reason}")
    assert rec.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://[::1]/x.png",
        "http://0.0.0.0:8080/x.png",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[::ffff:7f00:1]/x.png",
        "http://[fe80::1%25eth0]/x.png",
        "https://10.1.2.3/x.png",
    ],
)
def test_ip_literal_urls_are_checked_without_dns(url):
    rec, calls = Recorder(), []
    r = fetch_url(url, FetchConfig(), resolver=stub_resolver({}, calls), connect=rec)
    assert r.status == FetchStatus.forbidden_address, r
    assert rec.calls == [] and calls == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.test/a.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://x.test/",
        "javascript:alert(1)",
        "//example.test/a.jpg",
        "a.jpg",
    ],
)
def test_non_http_schemes_refused(url):
    rec, calls = Recorder(), []
    r = fetch_url(url, FetchConfig(), resolver=stub_resolver({}, calls), connect=rec)
    assert r.status == FetchStatus.bad_scheme
    assert rec.calls == [] and calls == []


def test_https_only_config_refuses_http():
    r = fetch_url("http://example.test/", FetchConfig(allowed_schemes=["https"]), resolver=stub_resolver({}))
    assert r.status == FetchStatus.bad_scheme


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("http://user:pw@example.test/a.jpg", FetchStatus.bad_url),
        ("http://example.test@127.0.0.1/a.jpg", FetchStatus.bad_url),  # the classic parser-confusion trick
        ("http://[::1/a.jpg", FetchStatus.bad_url),
        ("http://example.test:99999/a.jpg", FetchStatus.bad_url),
        ("http:///a.jpg", FetchStatus.bad_url),
        ("http://metadata.google.internal/computeMetadata/v1/", FetchStatus.forbidden_address),
        ("http://" + "a" * 5000 + ".test/", FetchStatus.bad_url),
    ],
)
def test_malformed_and_blocked_urls(url, status):
    rec = Recorder()
    r = fetch_url(url, FetchConfig(), resolver=stub_resolver({"example.test": ["93.184.216.34"]}), connect=rec)
    assert r.status == status, r
    assert rec.calls == []


def test_one_forbidden_record_refuses_the_whole_name():
    rec = Recorder()
    table = {"mixed.test": ["93.184.216.34", "10.0.0.7"]}
    r = fetch_url("http://mixed.test/a.jpg", FetchConfig(), resolver=stub_resolver(table), connect=rec)
    assert r.status == FetchStatus.forbidden_address and "10.0.0.7: private" in r.detail
    assert rec.calls == []


def test_public_address_is_connected_exactly_as_resolved_once():
    """DNS rebinding: a second lookup would say 127.0.0.1, but there is no second lookup."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    rec = Recorder()
    r = fetch_url("http://rebind.test:8080/a.jpg", FetchConfig(retries=0), resolver=rebinding, connect=rec)
    assert r.status == FetchStatus.connection_error  # the recorder refused it
    assert calls == ["rebind.test"]
    assert rec.calls == [("93.184.216.34", 8080)]


def test_every_checked_address_is_tried_in_order():
    rec = Recorder()
    table = {"multi.test": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]}
    r = fetch_url("https://multi.test/a.jpg", FetchConfig(retries=0), resolver=stub_resolver(table), connect=rec)
    assert r.status == FetchStatus.connection_error
    assert rec.calls == [("93.184.216.34", 443), ("2606:2800:220:1:248:1893:25c8:1946", 443)]


def test_connection_errors_retried_with_deterministic_backoff():
    rec, waits = Recorder(), []
    cfg = FetchConfig(retries=2, backoff_base_s=0.5, backoff_max_s=8)
    fetcher = Fetcher(cfg, resolver=stub_resolver({"pub.test": ["93.184.216.34"]}), connect=rec, sleep=waits.append)
    r = fetcher.fetch("http://pub.test/a.jpg")
    assert (r.status, r.attempts, len(rec.calls)) == (FetchStatus.connection_error, 3, 3)
    assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0  # base · 2^(n-1) · [0.5, 1]
    again: list[float] = []
    Fetcher(
        cfg, resolver=stub_resolver({"pub.test": ["93.184.216.34"]}), connect=Recorder(), sleep=again.append
    ).fetch("http://pub.test/a.jpg")
    assert again == waits


def test_dns_failure_is_a_status():
    r = fetch_url("http://nx.test/a.jpg", FetchConfig(), resolver=stub_resolver({}), connect=Recorder())
    assert r.status == FetchStatus.dns_error and "nx.test" in r.detail


def test_allowed_ports_and_denylist():
    table = {"pub.test": ["93.184.216.34"]}
    rec = Recorder()
    r = fetch_url(
        "http://pub.test:6379/", FetchConfig(allowed_ports=[80, 443]), resolver=stub_resolver(table), connect=rec
    )
    assert r.status == FetchStatus.forbidden_port
    cfg = FetchConfig(allow_cidrs=["93.184.216.0/24"], deny_cidrs=["93.184.216.34/32"])
    r = fetch_url("http://pub.test/", cfg, resolver=stub_resolver(table), connect=rec)
    assert r.status == FetchStatus.forbidden_address and "denylisted" in r.detail
    assert rec.calls == []


def test_bad_cidr_in_config_names_the_value():
    with pytest.raises(ValueError, match="not a CIDR network: '10.0.0.0/33'"):
        FetchConfig(allow_cidrs=["10.0.0.0/33"])


def test_missing_urls_are_bad_url():
    results = fetch_many([None, "", "  "], FetchConfig(), threads=2, resolver=stub_resolver({}), connect=Recorder())
    assert [r.status for r in results] == [FetchStatus.bad_url] * 3


def test_batch_never_raises_even_if_the_resolver_is_buggy():
    def broken(host: str, port: int):
        raise RuntimeError("resolver bug")

    results = fetch_many(
        ["http://a.test/1", "file:///x"], FetchConfig(), threads=2, resolver=broken, connect=Recorder()
    )
    assert [r.status for r in results] == [FetchStatus.unexpected_error, FetchStatus.bad_scheme]
