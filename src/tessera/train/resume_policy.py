"""What a resume may change: the parallel layout freely; the stage's training recipe only when allowed.

A run state remembers its stage's config. Continuing the same stage with another global batch, sequence
length, mixture, learning-rate schedule or length would silently train something else than the config
describes, so it is refused naming the key, unless the stage lists the key in `resume_changes`
(`train.stages[].resume_changes: [batch_size]`). Allowed changes are logged and go into the history.
The model shape and tokenizer are never allowed to change (`tessera.train.checkpoint.check_compatible`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tessera.errors import CheckpointError

__all__ = ["RESUMABLE_KEYS", "changed_keys", "check_resume_changes"]

RESUMABLE_KEYS = ("batch_size", "seq_len", "mixture", "lr", "steps", "tokens")
"""StageConfig keys a resume compares (and that `resume_changes` may name)."""


def _normalised(key: str, value: Any) -> Any:
    if key == "mixture" and isinstance(value, dict):  # weights are normalised by the loader
        total = sum(value.values()) or 1.0
        return {k: round(v / total, 12) for k, v in sorted(value.items()) if v > 0}
    return value


def changed_keys(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (saved, current) for the compared keys that differ (a state without a stage config
    compares nothing: it predates the check)."""
    if not saved:
        return {}
    return {k: (saved.get(k), current.get(k)) for k in RESUMABLE_KEYS
            if _normalised(k, saved.get(k)) != _normalised(k, current.get(k))}


def check_resume_changes(directory: Path, stage: str, saved: dict[str, Any], current: dict[str, Any],
                         allowed: list[str]) -> dict[str, tuple[Any, Any]]:
    """The allowed changes; CheckpointError naming the first key changed without permission."""
    changes = changed_keys(saved, current)
    refused = [k for k in changes if k not in allowed]
    if refused:
        detail = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
        raise CheckpointError(
            f"{directory}: resuming stage {stage} with another {', '.join(refused)} ({detail}). Restore "
            f"train.stages[{stage}].{refused[0]}, or allow the change with "
            f"train.stages[{stage}].resume_changes: [{', '.join(refused)}]"
        )
    return changes
