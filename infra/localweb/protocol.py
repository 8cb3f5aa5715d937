"""A minimal HTTP/1.1 server protocol (GET and HEAD, keep-alive, in-order pipelining) for the synthetic web; it knows
nothing of images or faults and never makes an outgoing connection.

Why not aiohttp: measured on the project's 2-core box, aiohttp spent 170–200 µs of CPU per cached-image GET (no less
than the stdlib's ThreadingHTTPServer) and fell below 1,500 images/s in a benchmark round under the box's usual load;
with this protocol the whole server spends 70–100 µs, so the synthetic web is never the bottleneck of a download
benchmark. It does only what a static server on loopback needs: request bodies are read and ignored, chunked
requests are refused, nothing else.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

MAX_HEAD = 16384
"""Largest request head (request line + headers) accepted; beyond it the answer is 431 and the connection closes."""

IDLE_TIMEOUT = 120.0
"""Seconds a keep-alive connection may sit idle before the server closes it."""

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


class Reply(NamedTuple):
    """A complete response: status, extra headers (Content-Length is added), body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


Action = Callable[["HttpConnection"], Awaitable["Reply | None"]]
"""What a handler returns when it cannot answer at once: a coroutine function that gets the connection, may write
to it itself (slow, truncated, reset) and returns a `Reply` to send, or None when it has answered (or closed)."""

Handler = Callable[[str, str], "Reply | Action"]
"""(path, Host header) → what to answer."""
Log = Callable[[str, str, float, float], None]
"""(host, path, start, end): called once per answered request, times on the monotonic clock."""


def response_head(reply: Reply, body_length: int, keep_alive: bool) -> bytes:
    """Status line and headers of `reply`, ending with the blank line."""
    lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in reply.headers]
    lines.append(f"Content-Length: {body_length}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HttpConnection(asyncio.Protocol):
    """One client connection. Requests are answered strictly in order: while an `Action` runs, later (pipelined)
    requests wait in the buffer."""

    def __init__(self, handler: Handler, connections: set[HttpConnection], log: Log | None = None):
        self.handler, self.connections, self.log = handler, connections, log
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.buf = b""
        self.busy = False
        self.task: asyncio.Task | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        self.connections.add(self)
        self._touch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self.task is not None:
            self.task.cancel()
        if self._idle is not None:
            self._idle.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._touch()
        self._serve()

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self.close)

    def close(self) -> None:
        """Close the connection (from its own loop's thread; see `close_threadsafe`)."""
        if self.transport is not None:
            self.transport.close()

    def close_threadsafe(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.close)

    def _serve(self) -> None:
        """Answer every complete request in the buffer, stopping at the first that needs an `Action`."""
        while not self.busy and not self.closing():
            request = self._parse()
            if request is None:
                return
            method, path, host, keep_alive = request
            if method not in ("GET", "HEAD"):
                self.send(Reply(405, (("Allow", "GET, HEAD"),), b"GET or HEAD only\n"), method, False)
                return
            start = time.monotonic()
            result = self.handler(path, host)
            if isinstance(result, Reply):
                end = time.monotonic()  # before the send: the client cannot be done (and asking again) any earlier
                self.send(result, method, keep_alive)
                self._logged(host, path, start, end)
            else:
                self.busy = True
                task = self._run(result, method, keep_alive, (host, path, start))
                self.task = asyncio.get_running_loop().create_task(task)

    def _logged(self, host: str, path: str, start: float, end: float | None = None) -> None:
        """Log one request. `end` is taken just before the response's last bytes are handed to the transport: with
        several serving loops, a loop preempted between its send and this log line would otherwise record an end
        after the client had already read the reply and sent its next request to another loop."""
        if self.log is not None:
            self.log(host, path, start, time.monotonic() if end is None else end)

    async def _run(self, action: Action, method: str, keep_alive: bool, request: tuple[str, str, float]) -> None:
        end = None
        try:
            reply = await action(self)
            end = time.monotonic()
            if reply is not None and not self.closing():
                self.send(reply, method, keep_alive)
        except ConnectionError:
            self.close()
        finally:
            self.busy, self.task = False, None
            self._logged(*request, end)  # also when cancelled: the client gave up (a deadline) or the server stops
        self._serve()

    def send(self, reply: Reply, method: str, keep_alive: bool) -> None:
        """Write `reply` (no body for HEAD); close afterwards unless the connection is kept alive."""
        head = response_head(reply, len(reply.body), keep_alive)
        self.transport.write(head if method == "HEAD" else head + reply.body)
        if not keep_alive:
            self.transport.close()

    def _parse(self) -> tuple[str, str, str, bool] | None:
        """(method, path without query, Host header, keep_alive) of the next complete request, or None (incomplete or
        failed)."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._fail(431)
            return None
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                return self._fail(400)
            headers[name.strip().lower()] = value.strip()
        if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1].startswith("/"):
            return self._fail(400)
        if "transfer-encoding" in headers:
            return self._fail(501)
        length = headers.get("content-length", "0")
        if not length.isdigit():
            return self._fail(400)
        if len(self.buf) < end + 4 + int(length):
            return None  # the (ignored) request body has not fully arrived yet
        self.buf = self.buf[end + 4 + int(length) :]
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if parts[2] == "HTTP/1.1" else "keep-alive" in connection
        return parts[0], parts[1].split("?", 1)[0], headers.get("host", ""), keep_alive

    def _fail(self, status: int) -> None:
        self.send(Reply(status, (("Content-Type", "text/plain"),), f"{REASONS[status]}\n".encode()), "GET", False)
        self.buf = b""


class WorkerLoop:
    """An event loop running forever on its own thread, for connections handed over by `accept_forever`."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Cancel what still runs on the loop (slow trickles), stop it, join its thread, close it."""

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


async def accept_forever(
    listener: socket.socket, factory: Callable[[], asyncio.Protocol], workers: list[WorkerLoop]
) -> None:
    """Accept connections on the running loop and hand them out round-robin to it and `workers`. Each connection
    lives on one loop; with one thread per loop, a box shared with busy jobs schedules the server like a threaded
    one, and one busy connection never delays the others' parsing."""
    here = asyncio.get_running_loop()
    targets = [None, *workers]
    for k in itertools.count():
        conn, _ = await here.sock_accept(listener)
        target = targets[k % len(targets)]
        if target is None:
            await here.connect_accepted_socket(factory, conn)
        else:
            asyncio.run_coroutine_threadsafe(target.loop.connect_accepted_socket(factory, conn), target.loop)
