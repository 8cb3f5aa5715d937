"""The build as a list of named steps: what `build` runs, what `--dry-run` prints and the funnel's order, all from
one list. No step logic here (that is in build.py and build_images.py), only the shape every step shares.

A `Step` names itself (its key in the manifest's `seconds_by_step`), says what it does for a config (the plan's lines)
and lists the reject stages it may write, in order; `reject_order` of a build's steps is the funnel's stage order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.build_config import BuildConfig
from pipeline.rundir import RunDir

Say = Callable[[str], None]


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


def run_steps(state: BuildState, steps: Iterable[Step]) -> None:
    """Run each step under the clock, in order: the manifest's `seconds_by_step` keys are the steps' names."""
    for step in steps:
        with state.clock(step.name):
            step.run(state)
