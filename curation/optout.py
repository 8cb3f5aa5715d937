"""A do-not-train registry (opt-out list): domains, URL prefixes and URL globs whose images are never requested.

One format, one entry a line (UTF-8; `#` starts a comment; blank lines are skipped):

    example.com                      a domain: that host and every subdomain, any scheme, port and path
    https://example.org/private/     a URL prefix: scheme, host (and port, if given) equal, the path starting so
    *://*.example.net/*.png          a glob (`*`, `?`, `[...]`): matched against the whole URL (`fnmatchcase`)

Hosts are compared lower-cased and IDNA-encoded (`bücher.example` ≡ `xn--bcher-kva.example`); a prefix's or a glob's
host part is lower-cased too, its path kept as written. A line that is none of these (a space inside, a scheme other
than http/https, no host) is a `ValueError` naming the source and the line: a registry that silently drops entries
would request what someone opted out of.

`match(url)` answers the entry (and its line) that covers `url`, or None. Domains are a set looked up suffix by
suffix (O(labels)), prefixes are grouped by host, globs are tried in order: a registry of millions of domains costs
a few microseconds per URL. Pure: no I/O (the pipeline reads the file), no project imports.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_GLOB = re.compile(r"[*?\[]")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Entry:
    """One registry line: its text and where it came from."""

    text: str
    line: int
    source: str

    def __str__(self) -> str:
        return f"{self.text!r} ({self.source} line {self.line})"


def _host(name: str) -> str | None:
    """`name` lower-cased and IDNA-encoded if it is a valid DNS name, else None."""
    try:
        host = name.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = host.split(".")
    return host if host and all(_LABEL.match(label) for label in labels) else None


def _url_host(url: str) -> str | None:
    try:
        name = urlsplit(url).hostname
    except ValueError:
        return None
    return _host(name) if name else None


@dataclass
class OptOutRegistry:
    """Parsed entries; build with `parse` (or `OptOutRegistry()` for an empty registry that matches nothing)."""

    domains: dict[str, Entry] = field(default_factory=dict)
    prefixes: dict[str, list[tuple[str, Entry]]] = field(default_factory=dict)
    globs: list[tuple[re.Pattern[str], Entry]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.domains) + sum(map(len, self.prefixes.values())) + len(self.globs)

    @classmethod
    def parse(cls, text: str, source: str = "registry") -> OptOutRegistry:
        reg = cls()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            entry = Entry(line, number, source)
            if any(c.isspace() for c in line):
                raise ValueError(f"{source} line {number}: {line!r} holds a space; one entry a line")
            if _GLOB.search(line):
                reg.globs.append((re.compile(fnmatch.translate(_lower_host(line))), entry))
            elif "://" in line:
                parts = urlsplit(line)
                host = _url_host(line)
                if parts.scheme.lower() not in ("http", "https") or host is None:
                    raise ValueError(f"{source} line {number}: {line!r} is not an http(s) URL prefix with a host")
                reg.prefixes.setdefault(host, []).append((_lower_host(line), entry))
            else:
                host = _host(line)
                if host is None:
                    raise ValueError(
                        f"{source} line {number}: {line!r} is not a domain, an http(s) URL prefix or a glob"
                    )
                reg.domains.setdefault(host, entry)
        return reg

    def match(self, url: str) -> Entry | None:
        """The entry that covers `url` (domains, then prefixes, then globs), or None."""
        host = _url_host(url)
        if host is not None:
            labels = host.split(".")
            for i in range(len(labels)):
                hit = self.domains.get(".".join(labels[i:]))
                if hit is not None:
                    return hit
            if self.prefixes.get(host):
                lowered = _lower_host(url)
                for prefix, entry in self.prefixes[host]:
                    if lowered.startswith(prefix):
                        return entry
        if self.globs:
            lowered = _lower_host(url)
            for pattern, entry in self.globs:
                if pattern.match(lowered):
                    return entry
        return None


def _lower_host(url: str) -> str:
    """`url` with its scheme and authority lower-cased (the path is case-sensitive and kept)."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{head.lower()}://{authority.lower()}{slash}{path}"
