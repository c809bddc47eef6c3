"""Energy per step from the job's meter: joules, joules per token, and tokens per kWh.

The meter's readings are cumulative joules of this rank's GPUs and, on each node's first rank, the
node's CPU and memory. Each step's deltas are summed over ranks (`sum_over_ranks`, an all-reduce in a
multi-rank job), so the per-step figures are the whole job's, divided by the whole step's tokens.
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.energy.records import KWH_J
from tessera.train.callbacks.base import Callback, StepRecord

__all__ = ["EnergyCallback"]


class EnergyCallback(Callback):
    priority = 30

    def __init__(self, meter, sum_over_ranks: Callable[[list[float]], list[float]] | None = None) -> None:
        """`sum_over_ranks`: sums a list of floats over the job's ranks (None: a one-rank job). Every
        rank must have this callback, since the sum is a collective."""
        self.meter = meter
        self.sum_over_ranks = sum_over_ranks or (lambda values: values)
        self.last = None

    def on_start(self, stage: str, step: int, num_steps: int) -> None:
        self.last = self.meter.read()

    def on_step_end(self, record: StepRecord) -> None:
        reading = self.meter.read()
        energy_j, gpu_j = self.sum_over_ranks(
            [reading.total_j - self.last.total_j, reading.gpu_j - self.last.gpu_j]
        )
        self.last = reading
        tokens = record.step_tokens
        record.metrics["energy_j"] = energy_j
        record.metrics["gpu_energy_j"] = gpu_j
        record.metrics["energy_j_per_token"] = energy_j / tokens if tokens else None
        record.metrics["tokens_per_kwh"] = tokens * KWH_J / energy_j if energy_j > 0 else None
