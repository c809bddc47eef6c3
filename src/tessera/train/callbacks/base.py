"""The callback protocol: the loop calls hooks in priority order and knows nothing of what they do.

`on_step_end(record)` gets the step's `StepRecord`; callbacks with a lower `priority` run first, so
measuring callbacks (throughput, energy, MoE statistics) fill in `record.metrics` before the loggers
(JSONL, TensorBoard, progress line) write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Callback", "StepRecord"]


@dataclass
class StepRecord:
    """One optimizer step as the loop saw it; callbacks add named numbers to `metrics`."""

    stage: str
    step: int
    """Steps done in the stage after this one (1-based: the first step's record has step 1)."""
    num_steps: int
    """Steps in the stage."""
    tokens_seen: int
    """Tokens seen since the first stage began, after this step."""
    step_tokens: int
    """Tokens of this step over all ranks."""
    step_time_s: float
    metrics: dict[str, Any] = field(default_factory=dict)
    """loss, lr, grad_norm, skipped, ... (the loop's), then the callbacks' (tokens_per_s, mfu, energy_j)."""
    moe_stats: list[Any] = field(default_factory=list)
    """The last micro-batch's MoE layer outputs (tessera.model.moe.MoEOutput), for statistics."""

    def as_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "step": self.step, "tokens_seen": self.tokens_seen,
                "step_time_s": self.step_time_s, **self.metrics}


class Callback:
    priority: int = 100
    """Lower runs first: measurements (< 100) before loggers (>= 100)."""

    def on_start(self, stage: str, step: int, num_steps: int) -> None:
        """Training of `stage` begins (or resumes) at `step`."""

    def on_step_end(self, record: StepRecord) -> None:
        """An optimizer step (or a skipped one) finished."""

    def on_end(self) -> None:
        """The segment ended (normally, on a signal, or on an error); flush and close."""
