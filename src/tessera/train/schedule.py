"""Learning-rate schedules as pure functions of the step: resuming needs nothing but the step number.

Warmup-stable-decay (WSD) spans stages: the `stable` stage warms up then holds the peak, the `anneal`
stage decays to zero. Each stage's segment is `LRSegment`; `lr_at(segment, step, num_steps)` gives the
rate of the optimizer step `step` (0-based within the stage).
"""

from __future__ import annotations

import math

from tessera.train.config import LRSegment

__all__ = ["lr_at", "decay_factor"]


def decay_factor(shape: str, progress: float) -> float:
    """Fraction of the way from `final` (0) back to `peak` (1) at `progress` in [0, 1] through the decay."""
    progress = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return 1.0 - progress
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if shape == "sqrt":  # the 1 - sqrt cooldown of Hägele et al. (2024), strong for WSD
        return 1.0 - math.sqrt(progress)
    if shape == "none":
        return 1.0
    raise ValueError(f"unknown decay shape {shape!r}")


def lr_at(segment: LRSegment, step: int, num_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of a stage with `num_steps` steps.

    Warmup reaches `peak` at its last step (step warmup_steps - 1), so no step trains at rate 0; a decay
    reaches `final` at the stage's last step (num_steps - 1), so an anneal stage ends at exactly 0.
    """
    if not 0 <= step < num_steps:
        raise ValueError(f"step {step} outside the stage's [0, {num_steps})")
    if step < segment.warmup_steps:
        return segment.peak * (step + 1) / segment.warmup_steps
    if segment.decay == "none":
        return segment.peak
    decay_steps = segment.decay_steps or (num_steps - segment.warmup_steps)
    decay_start = num_steps - decay_steps
    if step < decay_start:
        return segment.peak
    # decay_steps == 1 means the single last step is already at `final`.
    progress = 1.0 if decay_steps == 1 else (step - decay_start) / (decay_steps - 1)
    return segment.final + (segment.peak - segment.final) * decay_factor(segment.decay, progress)
