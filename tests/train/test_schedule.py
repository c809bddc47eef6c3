"""Learning-rate segments: warmup reaches the peak, the plateau holds it, decays end exactly at `final`."""

from __future__ import annotations

import math

import pytest

from tessera.train.config import LRSegment
from tessera.train.schedule import decay_factor, lr_at


def test_warmup_then_constant():
    seg = LRSegment(peak=1e-3, warmup_steps=4)
    lrs = [lr_at(seg, s, 10) for s in range(10)]
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lrs[0] > 0  # no step trains at rate 0
    assert all(lr == 1e-3 for lr in lrs[3:])


@pytest.mark.parametrize("shape", ["linear", "cosine", "sqrt"])
def test_decay_over_the_whole_stage_ends_at_zero(shape):
    seg = LRSegment(peak=2e-3, decay=shape)
    lrs = [lr_at(seg, s, 20) for s in range(20)]
    assert lrs[0] == pytest.approx(2e-3)
    assert lrs[-1] == 0.0
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_decay_only_in_the_last_steps_and_to_a_floor():
    seg = LRSegment(peak=1.0, warmup_steps=2, decay="linear", decay_steps=5, final=0.1)
    lrs = [lr_at(seg, s, 12) for s in range(12)]
    assert lrs[:2] == pytest.approx([0.5, 1.0])
    assert lrs[2:7] == [1.0] * 5  # plateau until the decay's first step
    assert lrs[7:] == pytest.approx([1.0, 0.775, 0.55, 0.325, 0.1])


def test_single_decay_step_is_final():
    assert lr_at(LRSegment(peak=1.0, decay="cosine", decay_steps=1), 4, 5) == 0.0


def test_wsd_across_stages_is_continuous():
    """stable holds the peak to its last step; anneal starts at the same peak."""
    stable, anneal = LRSegment(peak=3e-3, warmup_steps=5), LRSegment(peak=3e-3, decay="linear")
    assert lr_at(stable, 79, 80) == lr_at(anneal, 0, 60) == 3e-3


def test_decay_shapes():
    assert decay_factor("linear", 0.5) == 0.5
    assert decay_factor("cosine", 0.5) == pytest.approx(0.5)
    assert decay_factor("sqrt", 0.25) == pytest.approx(0.5)
    assert decay_factor("none", 0.9) == 1.0
    assert decay_factor("cosine", 1.5) == pytest.approx(0.0)  # clamped
    assert math.isclose(decay_factor("cosine", 0.0), 1.0)


def test_step_outside_the_stage_is_a_bug():
    with pytest.raises(ValueError):
        lr_at(LRSegment(), 10, 10)
