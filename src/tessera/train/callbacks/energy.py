"""Energy per step from the job's meter: joules, joules per token, and tokens per kWh.

The meter's readings are cumulative joules of this rank's GPUs and, on each node's first rank, the
node's CPU and memory; the per-step delta is this process's share. The job's total comes from the
energy report, which sums every rank's record.
"""

from __future__ import annotations

from tessera.train.callbacks.base import Callback, StepRecord

__all__ = ["EnergyCallback"]

J_PER_KWH = 3.6e6


class EnergyCallback(Callback):
    priority = 30

    def __init__(self, meter, tokens_fraction: float) -> None:
        """`tokens_fraction`: this rank's share of each step's tokens (1 / ranks)."""
        self.meter = meter
        self.tokens_fraction = tokens_fraction
        self.last = None

    def on_start(self, stage: str, step: int, num_steps: int) -> None:
        self.last = self.meter.read()

    def on_step_end(self, record: StepRecord) -> None:
        reading = self.meter.read()
        energy_j = reading.total_j - self.last.total_j
        gpu_j = reading.gpu_j - self.last.gpu_j
        self.last = reading
        tokens = record.step_tokens * self.tokens_fraction
        record.metrics["energy_j"] = energy_j
        record.metrics["gpu_energy_j"] = gpu_j
        record.metrics["energy_j_per_token"] = energy_j / tokens if tokens else None
        record.metrics["tokens_per_kwh"] = tokens * J_PER_KWH / energy_j if energy_j > 0 else None
