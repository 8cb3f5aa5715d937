"""The address range table: exact reasons, embedded IPv4 forms, allow/deny precedence, and why not `ipaddress`."""

from __future__ import annotations

import ipaddress

import pytest

from curation.netrange import check_address, embedded_ipv4, forbidden_reason, parse_networks


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "this_network"),
        ("0.1.2.3", "this_network"),
        ("10.255.255.255", "private"),
        ("100.64.0.0", "cgnat"),
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link_local"),
        ("172.15.255.255", None),
        ("172.16.0.0", "private"),
        ("172.32.0.0", None),
        ("192.0.0.8", "ietf_protocol"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4_relay"),
        ("192.168.0.1", "private"),
        ("198.18.0.0", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.20.0.0", None),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::127.0.0.1", "ipv4_compatible"),
        ("::ffff:127.0.0.1", "ipv4_mapped:loopback"),
        ("::ffff:169.254.169.254", "ipv4_mapped:link_local"),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::7f00:1", "nat64:loopback"),
        ("64:ff9b::a00:1", "nat64:private"),
        ("64:ff9b::808:808", None),
        ("64:ff9b:1::808:808", "nat64_local"),
        ("100::1", "discard"),
        ("2001::1", "teredo"),
        ("2001:2::1", "ietf_protocol"),
        ("2001:db8::1", "documentation"),
        ("2002:0a00:0001::1", "6to4:private"),
        ("2002:7f00:0001::1", "6to4:loopback"),
        ("2002:0808:0808::1", None),
        ("3fff::1", "documentation"),
        ("5f00::1", "srv6"),
        ("fc00::1", "unique_local"),
        ("fdff:ffff::1", "unique_local"),
        ("fe80::1", "link_local"),
        ("fec0::1", "site_local"),
        ("ff0e::1", "multicast"),
        ("4000::1", "not_global_unicast"),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:80b::200e", None),
    ],
)
def test_range_table(address, reason):
    assert forbidden_reason(address) == reason


def test_scope_id_is_ignored_for_the_decision():
    assert forbidden_reason(ipaddress.ip_address("fe80::1%eth0")) == "link_local"
    assert check_address("fe80::1%eth0", allow=parse_networks(["fe80::/10"])) is None


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "::127.0.0.1", "224.0.0.1"])
def test_ipaddress_flags_alone_would_let_these_through(address):
    """Why the table exists: on Python 3.11.7 (pre CVE-2024-4032 fix) these claim to be global."""
    ip = ipaddress.ip_address(address)
    if not ip.is_global:
        pytest.skip("this Python's ipaddress has the fixed tables")
    assert forbidden_reason(ip) is not None


def test_cgnat_is_neither_private_nor_global_in_ipaddress_but_refused():
    ip = ipaddress.ip_address("100.64.0.1")
    assert not ip.is_private
    assert forbidden_reason(ip) == "cgnat"


def test_embedded_ipv4():
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:10.0.0.1")) == (
        "ipv4_mapped",
        ipaddress.IPv4Address("10.0.0.1"),
    )
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::c0a8:101")) == ("nat64", ipaddress.IPv4Address("192.168.1.1"))
    assert embedded_ipv4(ipaddress.IPv6Address("2002:c0a8:101::")) == ("6to4", ipaddress.IPv4Address("192.168.1.1"))
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) is None


def test_allowlist_opens_only_the_literal_family_and_range():
    allow = parse_networks(["127.0.0.0/8"])
    assert check_address("127.0.0.1", allow) is None
    assert check_address("127.200.1.1", allow) is None
    assert check_address("::ffff:127.0.0.1", allow) == "ipv4_mapped:loopback"  # embedded forms stay refused
    assert check_address("64:ff9b::7f00:1", allow) == "nat64:loopback"
    assert check_address("::1", allow) == "loopback"
    assert check_address("10.0.0.1", allow) == "private"


def test_deny_beats_allow():
    allow, deny = parse_networks(["10.0.0.0/8"]), parse_networks(["10.9.0.0/16"])
    assert check_address("10.1.0.1", allow, deny) is None
    assert check_address("10.9.0.1", allow, deny) == "denylisted"
    assert check_address("8.8.8.8", (), parse_networks(["8.8.8.0/24"])) == "denylisted"


def test_parse_networks_accepts_host_bits_and_names_bad_values():
    assert parse_networks(["127.0.0.1/8"]) == (ipaddress.ip_network("127.0.0.0/8"),)
    with pytest.raises(ValueError, match="'localhost'"):
        parse_networks(["localhost"])
