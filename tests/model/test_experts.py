"""Routed experts: the grouped_mm path and the per-expert loop agree (outputs and gradients), both
equal a per-row SwiGLU, and the fast path is used exactly where grouped_mm can run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tessera.model.experts import Experts, grouped_mm_supported


def _row_reference(experts: Experts, x_SD: torch.Tensor, counts_E: torch.Tensor) -> torch.Tensor:
    ids_S = torch.repeat_interleave(torch.arange(experts.num_experts, device=x_SD.device), counts_E)
    rows = []
    for x_D, e in zip(x_SD, ids_S.tolist(), strict=True):
        gate_H, up_H = (experts.gate_up_proj[e] @ x_D).chunk(2)
        rows.append(experts.down_proj[e] @ (F.silu(gate_H) * up_H))
    return torch.stack(rows)


def _run(experts: Experts, x_SD, counts_E, grad_SD, grouped: bool):
    experts.use_grouped_mm = grouped
    experts.zero_grad()
    x_SD = x_SD.detach().clone().requires_grad_(True)
    y_SD = experts(x_SD, counts_E)
    y_SD.backward(grad_SD)
    return y_SD.detach(), x_SD.grad, experts.gate_up_proj.grad.clone(), experts.down_proj.grad.clone()


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_grouped_mm_and_loop_agree_with_empty_and_uneven_experts(device, dtype, tol):
    torch.manual_seed(0)
    experts = Experts(num_experts=6, d_model=32, hidden=16).to(device, dtype)
    counts_E = torch.tensor([5, 0, 17, 1, 0, 9], device=device)
    x_SD = torch.randn(32, 32, device=device, dtype=dtype)
    grad_SD = torch.randn(32, 32, device=device, dtype=dtype)
    assert grouped_mm_supported(x_SD, experts.gate_up_proj, experts.down_proj) == (
        device.type == "cpu" or dtype == torch.bfloat16
    )
    grouped = _run(experts, x_SD, counts_E, grad_SD, grouped=True)
    loop = _run(experts, x_SD, counts_E, grad_SD, grouped=False)
    for a, b in zip(grouped, loop, strict=True):
        scale = b.abs().max().clamp_min(1e-6)
        assert ((a - b).abs().max() / scale).item() < tol
    # Empty experts get no gradient.
    assert grouped[2][[1, 4]].abs().max().item() == 0 and grouped[3][[1, 4]].abs().max().item() == 0


def test_loop_equals_a_per_row_swiglu_in_float64(device):
    torch.manual_seed(0)
    experts = Experts(num_experts=4, d_model=6, hidden=5).to(device, torch.float64)
    counts_E = torch.tensor([3, 0, 4, 2], device=device)
    x_SD = torch.randn(9, 6, device=device, dtype=torch.float64)
    assert not grouped_mm_supported(x_SD, experts.gate_up_proj, experts.down_proj)
    assert torch.allclose(experts(x_SD, counts_E), _row_reference(experts, x_SD, counts_E))


def test_grouped_mm_support_rules(device):
    weights = [torch.zeros(4, 32, 16, device=device)]
    assert not grouped_mm_supported(torch.zeros(8, 16, dtype=torch.float64, device=device),
                                    torch.zeros(4, 32, 16, dtype=torch.float64, device=device))
    # 6 fp32 values = 24 bytes per row: not a multiple of 16.
    assert not grouped_mm_supported(torch.zeros(8, 6, device=device), torch.zeros(4, 32, 6, device=device))
    # Starting one fp32 element into a buffer loses the 16-byte base alignment.
    assert not grouped_mm_supported(torch.zeros(8 * 16 + 1, device=device)[1:].view(8, 16), *weights)
    if device.type == "cpu":
        assert grouped_mm_supported(torch.zeros(8, 16), *weights)
        assert grouped_mm_supported(torch.zeros(8, 16, dtype=torch.bfloat16), weights[0].bfloat16())


def test_no_rows(device):
    experts = Experts(num_experts=3, d_model=16, hidden=8).to(device)
    x_SD = torch.zeros(0, 16, device=device, requires_grad=True)
    for grouped in (True, False):
        experts.use_grouped_mm = grouped
        y_SD = experts(x_SD, torch.zeros(3, dtype=torch.int64, device=device))
        assert y_SD.shape == (0, 16)
