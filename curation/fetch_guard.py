"""What the safe fetcher refuses before connecting or before reading a body; must not open sockets.

`validate_url` turns a URL into a `Target` (scheme, ASCII hostname, port, request path and the resolved,
checked addresses) or a `Refusal`: bad URL or scheme, credentials in the URL, a blocked name or port, a DNS
failure, or any resolved address in a refused range (`netrange.check_address`). `header_refusal` applies the
opt-out, content-type, content-encoding and declared-size rules to response headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from urllib.parse import quote, urlsplit

from curation.fetch_config import FetchConfig, FetchStatus
from curation.fetch_http import Resolver, content_type_allowed, parse_content_length, robots_opt_out
from curation.netrange import IPNetwork, check_address

MAX_URL_LENGTH = 4096
_PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"  # keep URL syntax, percent-encode spaces and non-ASCII as browsers do


@dataclass(frozen=True)
class Target:
    """A URL that passed every check: connect only to `addresses`, send `host` as Host/SNI."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """Why a URL or response is refused."""

    status: FetchStatus
    detail: str = ""
    address: str = ""


def validate_url(
    url: str, cfg: FetchConfig, allow: Sequence[IPNetwork], deny: Sequence[IPNetwork], resolver: Resolver
) -> Target | Refusal:
    """Parse and check a URL, resolve its host once and check every address — before any connection."""
    if len(url) > MAX_URL_LENGTH:
        return Refusal(FetchStatus.bad_url, f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        return Refusal(FetchStatus.bad_url, str(e))
    scheme = parts.scheme.lower()
    if scheme not in cfg.allowed_schemes:
        return Refusal(FetchStatus.bad_scheme, f"scheme {scheme or '(none)'!r} not in {cfg.allowed_schemes}")
    if parts.username is not None or parts.password is not None:
        return Refusal(FetchStatus.bad_url, "credentials in URL")
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii").rstrip(".")
    except UnicodeError as e:
        return Refusal(FetchStatus.bad_url, f"bad hostname: {e}")
    if not host:
        return Refusal(FetchStatus.bad_url, "no host")
    port = port or (443 if scheme == "https" else 80)
    if cfg.allowed_ports is not None and port not in cfg.allowed_ports:
        return Refusal(FetchStatus.forbidden_port, f"port {port} not in {cfg.allowed_ports}")
    if host in cfg.blocked_hostnames:
        return Refusal(FetchStatus.forbidden_address, f"hostname {host!r} is blocked")
    addresses = resolve_host(host, port, resolver)
    if isinstance(addresses, Refusal):
        return addresses
    for a in addresses:
        reason = check_address(a, allow, deny)
        if reason:  # one bad record refuses the host: a mixed answer is a rebinding trick
            return Refusal(FetchStatus.forbidden_address, f"{host} -> {a}: {reason}", address=a)
    path = quote(parts.path or "/", safe=_PATH_SAFE) + (
        f"?{quote(parts.query, safe=_PATH_SAFE)}" if parts.query else ""
    )
    return Target(scheme, host, port, path, tuple(addresses))


def resolve_host(host: str, port: int, resolver: Resolver) -> list[str] | Refusal:
    """IP literal as is, else the resolver's answer; failures are dns_error."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        addresses = [str(a) for a in resolver(host, port)]
    except (OSError, UnicodeError) as e:
        return Refusal(FetchStatus.dns_error, f"{type(e).__name__}: {e}")
    if not addresses:
        return Refusal(FetchStatus.dns_error, f"no addresses for {host}")
    for a in addresses:
        try:
            ipaddress.ip_address(a.split("%", 1)[0])
        except ValueError:
            return Refusal(FetchStatus.dns_error, f"resolver returned a non-address {a!r}")
    return addresses


def header_refusal(headers: Message, cfg: FetchConfig) -> Refusal | None:
    """Opt-out, content type, content encoding and declared size — all decided before reading the body."""
    if cfg.honor_robots_tag:
        hit = robots_opt_out(headers.get_all("X-Robots-Tag") or [], cfg.robots_ua_tokens, cfg.disallowed_directives)
        if hit:
            return Refusal(FetchStatus.opt_out, f"X-Robots-Tag {hit}")
    ctype = headers.get("Content-Type")
    if not content_type_allowed(
        ctype, cfg.allowed_content_types, cfg.denied_content_types, cfg.allow_missing_content_type
    ):
        return Refusal(FetchStatus.bad_content_type, f"Content-Type {ctype!r}")
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        return Refusal(FetchStatus.bad_content_type, f"Content-Encoding {encoding!r}")
    declared = parse_content_length(headers.get("Content-Length"))
    if declared is not None and declared > cfg.max_bytes:
        return Refusal(FetchStatus.too_large, f"Content-Length {declared} > max_bytes {cfg.max_bytes}")
    return None
