"""The run's board: a tiny named actor where rank 0 publishes run state for others to read.

Two readers: the data pipeline's read tasks read the current epoch (so the per-epoch draws of online balancing
and shuffling use it), and the driver reads the latest metrics for its progress line. The driver owns the actor
(it lives as long as `run_training`), so it survives worker-group restarts. Holds no training state that a
resume depends on — checkpoints do.
"""

from __future__ import annotations

from typing import Any

import ray

NAMESPACE = "clipforge"


@ray.remote(num_cpus=0)
class Board:
    def __init__(self) -> None:
        self.epoch = 0
        self.metrics: dict[str, Any] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def get_epoch(self) -> int:
        return self.epoch

    def publish(self, metrics: dict[str, Any]) -> None:
        self.metrics = dict(metrics)

    def latest(self) -> dict[str, Any]:
        return self.metrics


def board_name(run_name: str) -> str:
    return f"board:{run_name}"


def create_board(run_name: str):
    """Create (or reuse) the board for `run_name`; call on the driver, keep the handle alive for the run."""
    return Board.options(name=board_name(run_name), namespace=NAMESPACE, get_if_exists=True).remote()


def _handle(name: str):
    return ray.get_actor(name, namespace=NAMESPACE)


def current_epoch(name: str) -> int:
    """The epoch rank 0 last published on board `name` (a full actor name from `board_name`)."""
    return int(ray.get(_handle(name).get_epoch.remote()))


def set_epoch(name: str, epoch: int) -> None:
    """Publish `epoch` and wait until the board has it (the next epoch's read tasks must see it)."""
    ray.get(_handle(name).set_epoch.remote(epoch))


def publish(name: str, metrics: dict[str, Any]) -> None:
    """Fire-and-forget: the latest metrics for the driver's progress line."""
    _handle(name).publish.remote(metrics)
