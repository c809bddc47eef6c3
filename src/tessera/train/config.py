"""The `train:` section: engine settings shared by all stages, and the ordered stages."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainConfig", "StageConfig"]


@dataclass
class StageConfig:
    name: str
    """Stage name (stable, anneal, ...); a Snakemake rule chain per stage."""
    steps: int
    """Optimizer steps in this stage."""
    mixture: dict[str, float] = field(default_factory=dict)
    """Sampling weight per language (normalised); languages must have data sources."""


@dataclass
class TrainConfig:
    stages: list[StageConfig] = field(default_factory=list)
    """Stages in order; each starts from the previous one's final state."""
    checkpoint_every: int = 50
    """Publish a consolidated checkpoint (and end the training job's segment) every N steps."""
    local_processes: int = 1
    """Ranks torchrun starts when the workflow runs without SLURM (gloo on CPU)."""
