"""The synthetic web's request handling: routes candidate/eval URLs to images and acts out every fault; it binds
loopback only (unless the config allows otherwise) and never makes an outgoing connection.

URLs are stateless — `/img/{fault}/{image_id}/{variant}/{row}.{ext}` and `/eval/{image_id}.jpg` carry everything
needed — so the server holds no per-row table and scales to any corpus. Images are rendered on demand in a small
thread pool and kept in an LRU of encoded bytes (`prewarm` fills it ahead); a cached image is answered without a
task or an await. The only per-URL state is the set of `http_429` URLs already refused once (`reset_state`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from infra.localweb.concepts import is_eval_id
from infra.localweb.config import WebConfig
from infra.localweb.faults import FORBIDDEN_TARGETS, HTML_PAGE, LOOP_LENGTH, REDIRECT_HOPS, Fault, bomb_png
from infra.localweb.hosts import MOVED_BODY, MOVED_PATH, Robots, host_names, robots_body, robots_of_hosts
from infra.localweb.protocol import Action, HttpConnection, Reply, response_head
from infra.localweb.render import VARIANTS, image_bytes, tiny_bytes

_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
_TEXT = (("Content-Type", "text/plain; charset=utf-8"),)


class ImageCache:
    """LRU of encoded image bytes, bounded in bytes; safe to share between the serving loops' threads."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.size = max_bytes, 0
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        with self._lock:
            if key in self._items or len(data) > self.max_bytes:
                return
            self._items[key] = data
            self.size += len(data)
            while self.size > self.max_bytes:
                self.size -= len(self._items.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._items)


def _not_found(what: str) -> Reply:
    return Reply(404, _TEXT, f"not found: {what}\n".encode())


class WebServer:
    """Routes and state of one server: `handle(path)` answers, `bind()` gives the listening socket, `connection` is
    the protocol factory (handle.py runs them on one or more event loops)."""

    def __init__(self, cfg: WebConfig, render_threads: int = 2, access_log: str | os.PathLike[str] | None = None):
        self.cfg = cfg
        names = host_names(cfg.virtual_hosts)
        self._robots = dict(zip(names, robots_of_hosts(cfg.virtual_hosts), strict=True))
        # O_APPEND: each line is one write(2) at the file's end, whole, whichever serving thread writes it
        self._log_fd = os.open(access_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if access_log else None
        self.cache = ImageCache(cfg.cache_mb << 20)
        self.refused_429: set[str] = set()
        self.connections: set[HttpConnection] = set()
        self._lock = threading.Lock()  # the serving loops' threads share refused_429
        self._pool = ThreadPoolExecutor(render_threads, thread_name_prefix="localweb-render")
        self._faults = {str(f): f for f in Fault}

    def bind(self) -> socket.socket:
        """A non-blocking listening socket on cfg's host and port (SO_REUSEADDR, as servers do)."""
        sock = socket.create_server((self.cfg.host, self.cfg.port), backlog=1024)
        sock.setblocking(False)
        return sock

    def connection(self) -> HttpConnection:
        """Protocol factory: one `HttpConnection` answering with `handle`."""
        return HttpConnection(self.handle, self.connections, self._log if self._log_fd is not None else None)

    def _log(self, host: str, path: str, start: float, end: float) -> None:
        """One access.log line: {"host", "path", "start", "end"} (monotonic seconds; host without its port)."""
        name = host.rsplit(":", 1)[0].lower() if not host.endswith("]") else host.lower()
        line = json.dumps({"host": name, "path": path, "start": round(start, 6), "end": round(end, 6)}) + "\n"
        if self._log_fd is not None:
            os.write(self._log_fd, line.encode())

    def close(self) -> None:
        """Drop every open connection (in-flight slow responses included) and stop the render pool."""
        for conn in list(self.connections):
            conn.close_threadsafe()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close_log(self) -> None:
        """Close access.log (after the serving loops have stopped)."""
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def reset_state(self) -> None:
        """Forget which `http_429` URLs were refused once (the next request for each is refused again)."""
        with self._lock:
            self.refused_429.clear()

    def _first_429(self, path: str) -> bool:
        with self._lock:
            first = path not in self.refused_429
            self.refused_429.add(path)
            return first

    async def image(self, key: tuple) -> bytes:
        """Encoded bytes for a cache key — (image_id, variant), ("tiny", image_id) or ("bomb",) — rendered in the
        pool (never on the event loop) when not cached."""
        data = self.cache.get(key)
        if data is None:
            if key[0] == "bomb":
                job = (bomb_png,)
            elif key[0] == "tiny":
                job = (tiny_bytes, self.cfg, key[1])
            else:
                job = (image_bytes, self.cfg, key[0], key[1])
            data = await asyncio.get_running_loop().run_in_executor(self._pool, *job)
            self.cache.put(key, data)
        return data

    async def prewarm(self, keys: list[tuple[int, int]]) -> None:
        """Render and cache the given (image_id, variant) pairs, a few at a time so every render thread is busy."""
        for start in range(0, len(keys), 32):
            await asyncio.gather(*(self.image(k) for k in keys[start : start + 32]))

    def handle(self, path: str, host: str = "") -> Reply | Action:
        """Route one GET (`host`: the Host header, which picks the virtual host): a `Reply` when it can answer at
        once, else an `Action` (render, slow, reset, ...)."""
        origin = f"http://{host}" if host else self.cfg.base_url  # redirects stay on the host asked
        if path in ("/robots.txt", MOVED_PATH):
            return self._robots_txt(path, host)
        parts = path.split("/")
        if len(parts) == 6 and parts[1] == "img" and parts[2] in self._faults:
            return self._slowed(self._candidate(self._faults[parts[2]], parts, path, origin))
        if len(parts) == 6 and parts[1] in ("hop", "loop") and parts[2].isdigit():
            return self._slowed(self._redirect_step(parts, origin))
        if len(parts) == 3 and parts[1] == "eval" and parts[2].endswith(".jpg") and parts[2][:-4].isdigit():
            image_id = int(parts[2][:-4])
            return self._image(image_id, 0) if is_eval_id(image_id, self.cfg) else _not_found(path)
        if path == "/healthz":
            return Reply(200, _TEXT, b"ok\n")
        return _not_found(path)

    def _ids(self, parts: list[str]) -> tuple[int, int] | None:
        """(image_id, variant) from .../{image_id}/{variant}/{name}, or None when they name no image."""
        if not (parts[3].isdigit() and parts[4].isdigit()):
            return None
        image_id, variant = int(parts[3]), int(parts[4])
        if not (image_id < self.cfg.n_candidates or is_eval_id(image_id, self.cfg)) or variant >= len(VARIANTS):
            return None
        return image_id, variant

    def _slowed(self, result: Reply | Action) -> Reply | Action:
        """`result` after `latency_s` of server time (as is when 0)."""
        if not self.cfg.latency_s:
            return result

        async def later(conn: HttpConnection) -> Reply | None:
            await asyncio.sleep(self.cfg.latency_s)
            return result if isinstance(result, Reply) else await result(conn)

        return later

    def _robots_txt(self, path: str, host: str) -> Reply | Action:
        """The virtual host's robots.txt variant (hosts.py); 404 on base_url's host and unknown hosts."""
        variant = self._robots.get(host.rsplit(":", 1)[0].lower())
        if variant is None:
            return _not_found(path)
        if path == MOVED_PATH:
            return Reply(200, _TEXT, MOVED_BODY) if variant is Robots.REDIRECT else _not_found(path)
        if variant is Robots.HTTP_404:
            return Reply(404, _TEXT, b"not found\n")
        if variant is Robots.HTTP_500:
            return Reply(500, _TEXT, b"internal server error\n")
        if variant is Robots.REDIRECT:
            return Reply(301, (("Location", MOVED_PATH), *_TEXT), b"moved\n")
        if variant is Robots.SLOW:
            return lambda conn: self._trickle(conn, robots_body(Robots.PLAIN, 0), _TEXT)
        return Reply(200, _TEXT, robots_body(variant, self.cfg.crawl_delay_s))

    def _candidate(self, fault: Fault, parts: list[str], path: str, origin: str) -> Reply | Action:
        ids = self._ids(parts)
        if ids is None:
            return _not_found(path)
        image_id, variant = ids
        tail = f"{image_id}/{variant}/{parts[5]}"
        if fault is Fault.HTTP_429 and self._first_429(path):
            return Reply(429, (("Retry-After", "1"), *_TEXT), b"slow down\n")
        if fault in (Fault.OK, Fault.HTTP_429):
            return self._image(image_id, variant)
        if fault is Fault.NOAI:
            return self._image(image_id, variant, (("X-Robots-Tag", "noai"),))
        if fault is Fault.REDIRECT:
            return self._found(f"{origin}/hop/{REDIRECT_HOPS - 1}/{tail}")
        if fault is Fault.REDIRECT_LOOP:
            return self._found(f"{origin}/loop/1/{tail}")
        if fault is Fault.REDIRECT_FORBIDDEN:  # only a header: a safe fetcher must refuse to follow it
            return self._found(FORBIDDEN_TARGETS[image_id % len(FORBIDDEN_TARGETS)])
        return self._fault(fault, image_id, variant)

    def _fault(self, fault: Fault, image_id: int, variant: int) -> Reply | Action:
        if fault is Fault.HTTP_404:
            return Reply(404, _TEXT, b"not found\n")
        if fault is Fault.HTTP_500:
            return Reply(500, _TEXT, b"internal server error\n")
        if fault is Fault.HTML:
            return Reply(200, (("Content-Type", "text/html; charset=utf-8"),), HTML_PAGE)
        if fault is Fault.BOMB:
            return self._cached(("bomb",), "image/png")
        if fault is Fault.TINY:
            return self._cached(("tiny", image_id), "image/png")
        if fault is Fault.SLOW:
            return lambda conn: self._slow(conn, image_id, variant)
        if fault is Fault.TRUNCATED:
            return lambda conn: self._truncated(conn, image_id, variant)
        return self._reset

    def _redirect_step(self, parts: list[str], origin: str) -> Reply:
        """/hop/{left}/...: one step of a `redirect` chain (the last points at the image); /loop/{step}/...: one
        step of a LOOP_LENGTH-URL cycle that returns to its /img/redirect_loop/ entry."""
        ids = self._ids(parts)
        if ids is None:
            return _not_found("/".join(parts))
        tail, n = f"{ids[0]}/{ids[1]}/{parts[5]}", int(parts[2])
        if parts[1] == "hop":
            target = f"/hop/{n - 1}/" if n > 1 else "/img/ok/"
        else:
            target = f"/loop/{n + 1}/" if n + 1 < LOOP_LENGTH else f"/img/{Fault.REDIRECT_LOOP}/"
        return self._found(f"{origin}{target}{tail}")

    @staticmethod
    def _found(location: str) -> Reply:
        return Reply(302, (("Location", location), *_TEXT), b"moved\n")

    def _image(self, image_id: int, variant: int, extra: tuple = ()) -> Reply | Action:
        return self._cached((image_id, variant), _TYPES[VARIANTS[variant].ext], extra)

    def _cached(self, key: tuple, content_type: str, extra: tuple = ()) -> Reply | Action:
        """The fast path: a cached body is answered at once; a miss becomes an Action that renders it first."""
        headers = (("Content-Type", content_type), *extra)
        body = self.cache.get(key)
        if body is not None:
            return Reply(200, headers, body)

        async def render(conn: HttpConnection) -> Reply:
            return Reply(200, headers, await self.image(key))

        return render

    async def _slow(self, conn: HttpConnection, image_id: int, variant: int) -> None:
        """Headers with the full Content-Length at once, then one byte per slow_interval for slow_seconds, then the
        rest: a per-read timeout never fires, only a total deadline ends it."""
        body = await self.image((image_id, variant))
        await self._trickle(conn, body, (("Content-Type", _TYPES[VARIANTS[variant].ext]),))

    async def _trickle(self, conn: HttpConnection, body: bytes, headers: tuple) -> None:
        """200 with the full Content-Length, then `body` one byte per slow_interval for slow_seconds, then the rest."""
        conn.transport.write(response_head(Reply(200, headers), len(body), keep_alive=False))
        loop = asyncio.get_running_loop()
        deadline, sent = loop.time() + self.cfg.slow_seconds, 0
        while sent < len(body) - 1 and loop.time() < deadline and not conn.closing():
            conn.transport.write(body[sent : sent + 1])
            sent += 1
            await asyncio.sleep(self.cfg.slow_interval)
        if not conn.closing():
            conn.transport.write(body[sent:])
        conn.close()

    async def _truncated(self, conn: HttpConnection, image_id: int, variant: int) -> None:
        """Announce the full Content-Length, send half the image, then close (FIN after the bytes)."""
        body = await self.image((image_id, variant))
        content_type = (("Content-Type", _TYPES[VARIANTS[variant].ext]),)
        conn.transport.write(response_head(Reply(200, content_type), len(body), keep_alive=False))
        conn.transport.write(body[: len(body) // 2])
        conn.close()

    @staticmethod
    async def _reset(conn: HttpConnection) -> None:
        """Abort with a TCP RST (SO_LINGER on, timeout 0) before sending any byte."""
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.transport.abort()
