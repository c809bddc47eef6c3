"""ClippedAdamW (ZeRO stage 0 in fp32) against torch's clip_grad_norm_ + AdamW, and its skip on a
non-finite gradient norm. The expert-parallel sum is covered by the two-rank training test."""

from __future__ import annotations

import pytest
import torch

from tessera.parallel.clipped_adamw import ClippedAdamW


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


def _backward(model: torch.nn.Module, scale: float = 1.0) -> None:
    torch.manual_seed(1)
    (model(torch.randn(32, 8)).square().sum() * scale).backward()


def _groups(model: torch.nn.Module) -> list[dict]:
    return [{"params": list(model.parameters()), "name": "decay", "weight_decay": 0.1}]


@pytest.mark.parametrize("scale", [100.0, 1e-3])  # norms above max_norm (clipped), below (not clipped)
def test_clips_and_steps_like_torch(scale):
    ours, theirs = _model(), _model()
    clipped = ClippedAdamW(_groups(ours), max_norm=0.5, lr=1e-2, foreach=True)
    plain = torch.optim.AdamW(_groups(theirs), lr=1e-2, foreach=True)
    for _ in range(3):
        _backward(ours, scale)
        _backward(theirs, scale)
        expected = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
        clipped.step()
        plain.step()
        assert not clipped.overflow and clipped._global_grad_norm == expected.item()
        assert (expected.item() > 0.5) == (scale > 1)
        clipped.zero_grad(), plain.zero_grad()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_non_finite_norm_skips_the_update():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = ClippedAdamW(_groups(model), max_norm=1.0, lr=1e-2)
    _backward(model)
    next(model.parameters()).grad[0, 0] = float("nan")
    optimizer.step()
    assert optimizer.overflow and optimizer._global_grad_norm != optimizer._global_grad_norm  # NaN
    assert not optimizer.state  # AdamW never ran: no moments, no step count
    for a, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(a, b)
