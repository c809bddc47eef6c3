"""Training history: which layout trained which steps of which stage, for the release documents.

Each published checkpoint's `tessera.json` and each run state's `meta.json` carry `"history"`: one span
per (stage, layout) run, earlier stages included. A resume on the same layout extends the last span; a
new layout (or an allowed config change) opens a new one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LayoutSpan", "extend_history"]


@dataclass
class LayoutSpan:
    stage: str
    site: str
    gpu_type: str | None
    num_nodes: int
    world_size: int
    expert_parallel_size: int
    zero_stage: int
    first_step: int
    """First step (1-based) this layout trained."""
    last_step: int
    resume_changes: list[str] = field(default_factory=list)
    """Config keys allowed to change (train.stages[].resume_changes) when this span began."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LayoutSpan:
        return cls(**{**raw, "resume_changes": list(raw.get("resume_changes", []))})

    def same_layout(self, other: LayoutSpan) -> bool:
        keys = ("stage", "site", "gpu_type", "num_nodes", "world_size", "expert_parallel_size", "zero_stage")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def extend_history(history: list[LayoutSpan], current: LayoutSpan, step: int) -> list[LayoutSpan]:
    """The history after `current`'s layout trained step `step` (1-based)."""
    last = history[-1] if history else None
    if last is not None and last.same_layout(current) and last.last_step == step - 1 \
            and current.resume_changes in ([], last.resume_changes):
        return [*history[:-1], LayoutSpan.from_dict({**last.to_dict(), "last_step": step})]
    return [*history, LayoutSpan.from_dict({**current.to_dict(), "first_step": step, "last_step": step})]
