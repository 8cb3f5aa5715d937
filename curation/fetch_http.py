"""Wire layer of the safe fetcher: pinned-IP HTTP(S) connections under a total deadline, and response-header rules.

Must not decide which addresses are allowed (that is `netrange`) nor retry (that is `fetch`). What it guarantees:
- a connection goes to exactly the IP address it is given (validated by the caller), while the `Host` header and
  TLS SNI/certificate check use the URL's hostname — so DNS is resolved once and cannot be re-bound between the
  check and the connect;
- every blocking socket operation (connect, TLS handshake, send, each recv of headers and body) gets a timeout of
  at most the time left until one wall-clock deadline, so a slow-drip server cannot hold a download longer than
  the deadline (plus one scheduling tick), unlike a per-read socket timeout (img2dataset issue #437).
"""

from __future__ import annotations

import email.utils
import http.client
import io
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

Resolver = Callable[[str, int], Sequence[str]]
"""(hostname, port) → IP address strings. Injected in tests so no real DNS is queried."""
Connect = Callable[[tuple[str, int], float], socket.socket]
"""((ip, port), timeout_s) → connected TCP socket. Injected in tests to prove no connection is attempted."""


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the OS resolver (getaddrinfo); unique addresses in the order returned."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def pinned_resolver(table: dict[str, str], fallback: Resolver) -> Resolver:
    """A resolver that answers from `table` (`FetchConfig.resolve`: an exact hostname, or `*.suffix` for every name
    under suffix, → one IP address; the exact name wins, then the longest suffix) and asks `fallback` for any other
    name — like curl's `--resolve` or a hosts file. The address is still checked by the caller (allow/deny ranges)."""
    exact = {k.lower(): v for k, v in table.items() if not k.startswith("*.")}
    suffixes = sorted(((k[1:].lower(), v) for k, v in table.items() if k.startswith("*.")), key=lambda kv: -len(kv[0]))

    def resolve(host: str, port: int) -> Sequence[str]:
        name = host.lower().rstrip(".")
        if name in exact:
            return [exact[name]]
        for suffix, address in suffixes:  # ".web.test": a sub-domain only, not "web.test" itself
            if name.endswith(suffix):
                return [address]
        return fallback(host, port)

    return resolve


def system_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    """Open a TCP connection to an IP literal (getaddrinfo on a literal does no DNS)."""
    return socket.create_connection(address, timeout=timeout)


@dataclass(frozen=True)
class Deadline:
    """A wall-clock deadline on the monotonic clock."""

    seconds: float
    end: float = field(default=0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "end", time.monotonic() + self.seconds)

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> float:
        """Seconds left; raises TimeoutError when none are."""
        left = self.remaining()
        if left <= 0:
            raise TimeoutError(f"total deadline of {self.seconds:g} s exceeded")
        return left


class _DeadlineReader(io.RawIOBase):
    """Raw stream over a socket: each recv waits at most the time left on the deadline."""

    def __init__(self, owner: DeadlineSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        sock = self._owner.raw
        sock.settimeout(self._owner.deadline.check())
        return sock.recv_into(buf)

    def close(self) -> None:
        if not self.closed:
            self._owner.release()
        super().close()


class DeadlineSocket:
    """The socket http.client sees: `sendall`, `makefile("rb")` and `close`, all bounded by one deadline.

    http.client reads the status line and headers with readline() on `makefile()`, which may call recv many
    times; routing every recv through `_DeadlineReader` is what bounds a slow-drip header too. Like
    `socket.makefile`, an open reader keeps the socket alive after `close()` (http.client closes the connection
    as soon as it sees `Connection: close`, before the body is read); `abort()` closes it regardless.
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.raw, self.deadline = sock, deadline
        self._readers, self._closed = 0, False

    def sendall(self, data: bytes) -> None:
        self.raw.settimeout(self.deadline.check())
        self.raw.sendall(data)

    def makefile(self, mode: str = "rb", *args, **kwargs) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"DeadlineSocket only supports makefile('rb'), got {mode!r}")
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def release(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self.raw.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self.raw.close()

    def abort(self) -> None:
        self._closed = True
        self.raw.close()


class PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a pre-validated IP address; `host` (the URL's hostname) is used only for the Host header."""

    def __init__(
        self, host: str, port: int, *, address: str, deadline: Deadline, connect: Connect, connect_timeout: float
    ) -> None:
        super().__init__(host, port)
        self._address, self._deadline = address, deadline
        self._connect_fn, self._connect_timeout = connect, connect_timeout
        self._dsock: DeadlineSocket | None = None

    def connect(self) -> None:
        raw = self._connect_fn((self._address, self.port), min(self._connect_timeout, self._deadline.check()))
        try:
            self.sock = self._dsock = DeadlineSocket(self._wrap(raw), self._deadline)
        except BaseException:
            raw.close()
            raise

    def abort(self) -> None:
        """Close the connection and its socket now, even if a response reader is still open."""
        self.close()
        if self._dsock is not None:
            self._dsock.abort()

    def _wrap(self, raw: socket.socket) -> socket.socket:
        return raw


class PinnedHTTPSConnection(PinnedHTTPConnection):
    """HTTPS to a pre-validated IP address; SNI and certificate hostname verification use the URL's hostname."""

    default_port = 443  # so the Host header omits ":443"

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext, **kwargs) -> None:
        super().__init__(host, port, **kwargs)
        self._context = context

    def _wrap(self, raw: socket.socket) -> socket.socket:
        # The handshake is a few round trips, each bounded by this timeout (the deadline is re-checked after).
        raw.settimeout(min(self._connect_timeout, self._deadline.check()))
        return self._context.wrap_socket(raw, server_hostname=self.host)


def robots_opt_out(values: Iterable[str], ua_tokens: Iterable[str], directives: Iterable[str]) -> str | None:
    """The X-Robots-Tag directive that forbids our use (e.g. "noai", "img2dataset: noimageai"), or None.

    Follows img2dataset's `is_disallowed`: each header value is "directives" or "token: directives"; a scoped
    value applies only when its token is one of ours. "none" means "noindex, nofollow" (Google's definition).
    """
    tokens = {t.strip().lower() for t in ua_tokens}
    wanted = {d.strip().lower() for d in directives}
    for value in values:
        scope, sep, rest = value.partition(":")
        scoped = bool(sep) and "," not in scope and scope.strip() != ""
        if scoped and scope.strip().lower() not in tokens:
            continue
        for directive in (rest if scoped else value).split(","):
            d = directive.strip().lower()
            if d in wanted or (d == "none" and "noindex" in wanted):
                return f"{scope.strip().lower()}: {d}" if scoped else d
    return None


def content_type_allowed(
    value: str | None, allowed: Iterable[str], denied: Iterable[str], allow_missing: bool
) -> bool:
    """Whether a Content-Type passes: not matching any `denied` glob, matching an `allowed` one (e.g. "image/*")."""
    mime = (value or "").split(";", 1)[0].strip().lower()
    if not mime:
        return allow_missing
    if any(fnmatchcase(mime, p.lower()) for p in denied):
        return False
    return any(fnmatchcase(mime, p.lower()) for p in allowed)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), None when absent or unparseable."""
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_content_length(value: str | None) -> int | None:
    """Content-Length as a non-negative int, None when absent or malformed."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())
