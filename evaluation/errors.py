"""Evaluation's user-facing error: bad checkpoints, unknown benchmarks, malformed datasets. No logic here."""

from __future__ import annotations

from pipeline.core.errors import ClipforgeError


class EvaluationError(ClipforgeError):
    """Evaluation input the user can fix (a path, a benchmark name, a dataset layout); the CLI exits 2."""
