"""Which IP addresses a downloader of user-supplied URLs may connect to; must not resolve names or open sockets.

The decision is ours, from an explicit range table, not Python's `ipaddress` flags: on the project's Python
(3.11.7, before the CVE-2024-4032 fix) `ipaddress` calls 64:ff9b::7f00:1 (NAT64 of 127.0.0.1), ::127.0.0.1 and
224.0.0.1 "global", and 100.64.0.0/10 is neither private nor global. Addresses that embed an IPv4 address
(IPv4-mapped, NAT64, 6to4) are judged by the embedded address too; Teredo and IPv4-compatible forms are refused
outright. IPv6 must also lie in global unicast 2000::/3. `ipaddress.is_global` is then applied as an extra
deny-only belt. A config allowlist of CIDRs is the only way to reach a refused range (tests and the demo allow
127.0.0.0/8); it matches the address as resolved, never an embedded form.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (network, reason). Immutable module constants: the table is data, not state.
FORBIDDEN_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "this_network"),  # includes 0.0.0.0, which Linux treats as the local host
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "cgnat"),  # RFC 6598 shared address space (carrier NAT, also cloud-internal)
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link_local"),  # includes 169.254.169.254, the cloud instance-metadata service
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "ietf_protocol"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4_relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes 255.255.255.255 broadcast
    )
)
FORBIDDEN_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "ipv4_compatible"),  # deprecated ::a.b.c.d; some stacks route it to the IPv4 address
        ("64:ff9b:1::/48", "nat64_local"),  # local-use NAT64 prefix: may translate to anything
        ("100::/64", "discard"),
        ("2001::/32", "teredo"),  # tunnels to an (obfuscated) IPv4 client: refuse rather than decode
        ("2001::/23", "ietf_protocol"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "srv6"),
        ("fc00::/7", "unique_local"),  # includes fd00:ec2::254, the AWS IPv6 metadata service
        ("fe80::/10", "link_local"),
        ("fec0::/10", "site_local"),
        ("ff00::/8", "multicast"),
    )
)
MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def parse_networks(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings (host bits allowed, e.g. "127.0.0.1/8"); a bad entry raises ValueError naming it."""
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError as e:
            raise ValueError(f"not a CIDR network: {c!r} ({e})") from None
    return tuple(out)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address forwards to, with the mechanism: IPv4-mapped, NAT64 (64:ff9b::/96), 6to4."""
    if ip in MAPPED:
        return "ipv4_mapped", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in NAT64:
        return "nat64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIX_TO_FOUR:
        return "6to4", ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _table_reason(ip: IPAddress) -> str | None:
    table = FORBIDDEN_V4 if ip.version == 4 else FORBIDDEN_V6
    for net, reason in table:
        if ip in net:
            return reason
    return None


def forbidden_reason(ip: IPAddress | str) -> str | None:
    """Why connecting to `ip` is refused (e.g. "loopback", "nat64:private"), or None when it is public."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if ip.version == 6 and ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    if ip.version == 6:
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            inner = forbidden_reason(embedded[1])
            return f"{embedded[0]}:{inner}" if inner else None
    reason = _table_reason(ip)
    if reason:
        return reason
    if ip.version == 6 and ip not in GLOBAL_UNICAST:
        return "not_global_unicast"
    if not ip.is_global:  # deny-only belt; never used to allow anything
        return "not_global"
    return None


def check_address(ip: IPAddress | str, allow: Sequence[IPNetwork] = (), deny: Sequence[IPNetwork] = ()) -> str | None:
    """None when a connection to `ip` is permitted, else the reason. `deny` beats `allow`, which beats the table."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    bare = ipaddress.ip_address(ip.compressed.split("%", 1)[0]) if ip.version == 6 else ip
    if any(bare in net for net in deny if net.version == bare.version):
        return "denylisted"
    if any(bare in net for net in allow if net.version == bare.version):
        return None
    return forbidden_reason(bare)
