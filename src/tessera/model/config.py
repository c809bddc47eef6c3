"""The `model:` section: a named preset with optional overrides -> ModelConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelSection"]


@dataclass
class ModelSection:
    preset: str = "demo"
    """Name of a preset in `tessera.model.config` (demo, olmoe-7b, ...)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of ModelConfig to change from the preset."""
