"""Running the synthetic web's server: on a thread of this process (`serve_in_thread`), in the foreground
(`serve_forever`, for `clipforge web serve`) or as a child process (`LocalWebProcess`); no request handling here.

All three bind the host and port recorded in OUT/web.json (the candidate URLs embed them), loopback only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from infra.child import ChildServer, hold_until, stop_on_signals
from infra.localweb.config import ACCESS_LOG, WebConfig, load_web
from infra.localweb.protocol import WorkerLoop, accept_forever
from infra.localweb.server import WebServer
from pipeline.core.errors import ClipforgeError

SERVE_THREADS = 2
"""Event loops (threads) that serve connections, round-robin. One is enough for the CPU; two keep the server's share
of a busy 2-core box (and its latency) like a threaded server's, at a third of the CPU per request."""


def _bind(server: WebServer) -> socket.socket:
    try:
        return server.bind()
    except OSError as e:
        raise ClipforgeError(
            f"cannot serve the synthetic web on {server.cfg.base_url}: {e.strerror or e}. Its URLs embed that port; "
            "stop whatever holds it, or generate the web again (port 0 picks a free one)"
        ) from None


class LocalWeb:
    """The server on background threads (an accepting loop plus `threads - 1` more); a context manager, e.g.
    `with serve_in_thread("web-out") as web: requests.get(web.base_url + "/healthz")`."""

    def __init__(
        self,
        cfg: WebConfig,
        *,
        prewarm: int = 0,
        threads: int = SERVE_THREADS,
        access_log: str | os.PathLike[str] | None = None,
    ):
        self.cfg, self.prewarm_n, self.threads = cfg, prewarm, max(1, threads)
        self.access_log = Path(access_log) if access_log else None
        self.server = WebServer(cfg, access_log=access_log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return self.cfg.base_url

    def start(self) -> LocalWeb:
        """Bind and serve; returns once requests are accepted (a bind failure is raised here)."""
        listener = _bind(self.server)
        ready, error = threading.Event(), []
        self._thread = threading.Thread(target=self._run, args=(listener, ready, error), name="localweb", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            self._thread.join()
            self._thread = None
            raise error[0]
        return self

    def _run(self, listener: socket.socket, ready: threading.Event, error: list) -> None:
        self._loop = asyncio.new_event_loop()
        workers = [WorkerLoop(f"localweb-{k}") for k in range(1, self.threads)]
        try:
            self._loop.run_until_complete(self._main(listener, workers, ready, error))
        finally:
            listener.close()
            self.server.close()  # open keep-alive and slow connections too
            for w in workers:
                w.stop()
            self._loop.run_until_complete(self._cancel_rest())
            self._loop.close()
            self.server.close_log()

    async def _main(self, listener: socket.socket, workers: list, ready: threading.Event, error: list) -> None:
        self._stop = asyncio.Event()
        acceptor = asyncio.get_running_loop().create_task(accept_forever(listener, self.server.connection, workers))
        try:
            await self.server.prewarm(prewarm_keys(self.cfg, self.prewarm_n))
            ready.set()
            await self._stop.wait()
        except BaseException as e:
            error.append(e)
            ready.set()
        finally:
            acceptor.cancel()

    @staticmethod
    async def _cancel_rest() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(3):  # let closing transports run their connection_lost callbacks (and close their sockets)
            await asyncio.sleep(0)

    def call(self, fn, *args) -> Any:
        """Run `fn(*args)` (a coroutine function) on the server's loop and return its result."""
        assert self._loop is not None, "LocalWeb is not started"
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result()

    def prewarm(self, n: int) -> None:
        """Render and cache the canonical images of the first `n` candidate ids."""
        self.call(self.server.prewarm, prewarm_keys(self.cfg, n))

    def reset_state(self) -> None:
        """Forget which http_429 URLs were refused once."""
        self.server.reset_state()

    def stop(self) -> None:
        """Stop serving; open connections (in-flight slow responses included) are closed. Idempotent."""
        if self._thread is not None and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
        self._thread = None

    def __enter__(self) -> LocalWeb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prewarm_keys(cfg: WebConfig, n: int) -> list[tuple[int, int]]:
    """(image_id, variant 0) for the first `n` candidate image ids."""
    return [(i, 0) for i in range(min(n, cfg.n_candidates))]


def serve_in_thread(
    out_dir: str | os.PathLike[str], *, prewarm: int = 0, threads: int = SERVE_THREADS, access_log: bool = True
) -> LocalWeb:
    """A not-yet-started `LocalWeb` for the web generated in `out_dir` (appending to OUT/access.log unless
    `access_log` is off); `with` starts and stops it."""
    cfg, _ = load_web(out_dir)
    log = Path(out_dir) / ACCESS_LOG if access_log else None
    return LocalWeb(cfg, prewarm=prewarm, threads=threads, access_log=log)


def serve_forever(
    out_dir: str | os.PathLike[str],
    *,
    prewarm: int = 0,
    threads: int = SERVE_THREADS,
    ready_file: str | os.PathLike[str] | None = None,
    on_ready=None,
    access_log: bool = True,
) -> None:
    """Serve the web in `out_dir` in the foreground until SIGINT/SIGTERM. Once serving, call `on_ready(cfg)` and
    write `{"base_url", "port", "pid"}` to `ready_file` (atomically; removed again at exit)."""
    with serve_in_thread(out_dir, prewarm=prewarm, threads=threads, access_log=access_log) as handle:
        stop = stop_on_signals()
        if on_ready is not None:
            on_ready(handle.cfg)
        hold_until(stop, ready_file, {"base_url": handle.base_url, "port": handle.cfg.port, "pid": os.getpid()})


class LocalWebProcess:
    """The server in a child process (`python -m infra.localweb serve OUT --ready-file F`, see `infra.child`): its
    own GIL, so a client in this process (a benchmark, a Ray driver) does not slow it down."""

    def __init__(
        self, out_dir: str | os.PathLike[str], *, prewarm: int = 0, timeout: float = 60, access_log: bool = True
    ):
        self.out_dir, self.prewarm, self.timeout, self.access_log = Path(out_dir), prewarm, timeout, access_log
        self._child: ChildServer | None = None
        self.base_url = ""

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The child process (None before `start`)."""
        return self._child.proc if self._child is not None else None

    def start(self) -> LocalWebProcess:
        args = ["serve", str(self.out_dir), "--prewarm", str(self.prewarm)]
        args += [] if self.access_log else ["--no-access-log"]
        self._child = ChildServer("infra.localweb", args, name="synthetic web", timeout=self.timeout)
        self.base_url = self._child.start()["base_url"]
        return self

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        if self._child is not None:
            self._child.stop()

    def __enter__(self) -> LocalWebProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
