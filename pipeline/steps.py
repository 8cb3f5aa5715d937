"""The build as a list of named steps: what `build` runs, what `--dry-run` prints and the funnel's order, all from
one list. No step logic here (that is in build.py and build_images.py), only the shape every step shares.

A `Step` names itself (its key in the manifest's `seconds_by_step`), says what it does for a config (the plan's lines)
and lists the reject stages it may write, in order; `reject_order` of a build's steps is the funnel's stage order.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.build_config import BuildConfig
from pipeline.rundir import RunDir

Say = Callable[[str], None]
HEARTBEAT_S = 10.0


class Clock:
    """Seconds per named step, for the manifest and the benchmark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: str):
        t0 = time.monotonic()
        yield
        self.seconds[step] = round(self.seconds.get(step, 0.0) + time.monotonic() - t0, 2)


@dataclass
class BuildState:
    """What one build carries from step to step: the config, the run directory, the console and named values a
    step hands on (the matched dataset, t, counts, the manifest's outputs)."""

    cfg: BuildConfig
    run: RunDir
    say: Say
    clock: Clock = field(default_factory=Clock)
    values: dict[str, Any] = field(default_factory=dict)
    heartbeat: Heartbeat | None = None
    """The running step's heartbeat (set by `run_steps`)."""
    heartbeat_s: float = HEARTBEAT_S


@dataclass(frozen=True)
class Step:
    """One step of a build. `run` mutates the state; `plan` gives its `--dry-run` lines for a config."""

    name: str
    run: Callable[[BuildState], None]
    plan: Callable[[BuildConfig], list[str]]
    rejects: tuple[str, ...] = ()


def reject_order(steps: Iterable[Step]) -> tuple[str, ...]:
    """The reject stages of `steps`, in the order the steps run (first mention wins): the funnel's stage order."""
    out: list[str] = []
    for step in steps:
        out += [s for s in step.rejects if s not in out]
    return tuple(out)


Progress = Callable[[], tuple[int, int, str]]
"""What a step has done so far: (done, total, unit), read from what it has committed (download parts, shards)."""


class Heartbeat:
    """While a step runs, a line every `interval` seconds (#18 item 6), on a TTY or not: the step's name, its time so
    far and — once the step calls `track` — done/total, rate and ETA from what it has committed."""

    def __init__(self, say: Say, name: str, interval: float = HEARTBEAT_S) -> None:
        self.say, self.name, self.interval = say, name, interval
        self.progress: Progress | None = None
        self._stop = threading.Event()
        self._t0 = self._tracked_at = time.monotonic()
        self._done0 = 0
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{name}", daemon=True)

    def track(self, progress: Progress) -> None:
        """Report `progress()` in each line from now on (rate and ETA count from this call)."""
        self._tracked_at, self.progress = time.monotonic(), progress
        self._done0 = progress()[0]

    def line(self) -> str:
        now = time.monotonic()
        text = f"{self.name}: running for {_duration(now - self._t0)}"
        if self.progress is None:
            return text
        done, total, unit = self.progress()
        text += f"; {done}/{total} {unit}"
        rate = (done - self._done0) / max(now - self._tracked_at, 1e-9)
        if total and done < total and rate > 0:
            text += f" ({done / total:.0%}), {rate * 60:.1f} {unit}/min, ETA {_duration((total - done) / rate)}"
        return text

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.say(self.line())
            except Exception:  # noqa: BLE001 — a failed progress read must never take the build down
                pass

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def run_steps(state: BuildState, steps: Iterable[Step]) -> None:
    """Run each step under the clock and a heartbeat, in order: the manifest's `seconds_by_step` keys are the steps'
    names. A step reports its progress through `state.heartbeat.track`."""
    for step in steps:
        with state.clock(step.name), Heartbeat(state.say, step.name, state.heartbeat_s) as state.heartbeat:
            step.run(state)
