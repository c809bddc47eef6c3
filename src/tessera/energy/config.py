"""The `energy:` section."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EnergyConfig"]


@dataclass
class EnergyConfig:
    sample_interval_s: float = 1.0
    """GPU power sampling period of the background thread."""
