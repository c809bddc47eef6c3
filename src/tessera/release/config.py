"""The `release:` section."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReleaseConfig"]


@dataclass
class ReleaseConfig:
    model_name: str = "tessera-demo"
    """Name of the released model (Hub repository name)."""
    license: str = "apache-2.0"
    """Licence of the released weights (Hub licence id)."""
