"""A local server in a child process and the ready-file handshake it reports through; no server logic here.

Parent side, `ChildServer`: run `python -m MODULE ARGS... --ready-file F`, wait until the child writes F (JSON naming
its port), stop it with SIGTERM (SIGKILL after 10 s). Child side: `stop_on_signals()` before starting to serve, then
`hold_until(stop, F, info)` once serving — it writes F atomically, blocks until SIGINT/SIGTERM and removes F again.
`infra.localweb` and `infra.locals3` both use it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from pipeline.core.errors import ClipforgeError
from pipeline.core.storage import write_bytes

KILL_AFTER_S = 10
"""Seconds a child has to exit after SIGTERM before it is killed."""


class ChildServer:
    """`python -m {module} {args} --ready-file F` as a child process; `start()` returns the JSON the child wrote to F.

    `name` names the server in errors ("local S3 process exited with 2: ..."). The child's stderr goes to a temp
    file (a pipe could fill and block a chatty child) and is quoted when it exits before it is ready.
    """

    def __init__(self, module: str, args: list[str], *, name: str, timeout: float):
        self.module, self.args, self.name, self.timeout = module, list(args), name, timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> dict[str, Any]:
        """Start the child and wait for its ready file: a `ClipforgeError` if it exits first (with its stderr) or
        is not ready within `timeout` seconds (it is stopped then)."""
        with tempfile.TemporaryDirectory(prefix=f"{self.module.rpartition('.')[2]}-") as tmp:
            ready = Path(tmp) / "ready.json"
            cmd = [sys.executable, "-m", self.module, *self.args, "--ready-file", str(ready)]
            self._log = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log)
            deadline = time.monotonic() + self.timeout
            while not ready.exists():
                if self.proc.poll() is not None:
                    self._log.seek(0)
                    err = self._log.read().decode(errors="replace").strip()
                    raise ClipforgeError(f"{self.name} process exited with {self.proc.returncode}: {err}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise ClipforgeError(f"{self.name} process not ready after {self.timeout:.0f} s")
                time.sleep(0.05)
            return json.loads(ready.read_text())

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after `KILL_AFTER_S`). Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def write_ready_file(path: str | os.PathLike[str], info: dict[str, Any]) -> None:
    """Atomically write `info` as JSON to `path`: whoever polls for it never reads a partial file."""
    write_bytes(os.fspath(path), json.dumps(info).encode())


def stop_on_signals() -> threading.Event:
    """An event that SIGINT and SIGTERM set from now on (instead of raising or killing); main thread only."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def hold_until(stop: threading.Event, ready_file: str | os.PathLike[str] | None, info: dict[str, Any]) -> None:
    """Write `info` to `ready_file` (if given), block until `stop` is set, then remove `ready_file` again."""
    if ready_file is not None:
        write_ready_file(ready_file, info)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if ready_file is not None:
            Path(ready_file).unlink(missing_ok=True)
