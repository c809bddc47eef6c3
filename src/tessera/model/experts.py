"""The routed experts: E SwiGLU MLPs stored as stacked weights, run on tokens sorted by expert.

`Experts.forward(x_sorted_SD, counts_E) -> y_sorted_SD` is the one boundary expert parallelism
replaces (`tessera.parallel.expert_parallel` swaps this module for an all-to-all version holding only
its local experts). Rows of x are grouped by expert: the first counts_E[0] rows go to expert 0, the
next counts_E[1] to expert 1, and so on. The routing weights are applied outside, in the combine.

Weights use `transformers`' Qwen3-MoE / Qwen2-MoE `experts` layout, so export is a rename:
  gate_up_proj [E, 2H, D]  (rows :H are the gate projection, H: the up projection)
  down_proj    [E, D, H]

Fast path: `torch.nn.functional.grouped_mm` with int32 offsets, one grouped product for gate and up
together, one for down. Fallback: a loop over experts (float64, misaligned widths, devices without
grouped GEMM), same arithmetic; tests check that the two agree.

Shapes: S routed rows (tokens x k, sorted by expert), D d_model, H expert hidden, E experts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Experts", "grouped_mm_supported"]

_GROUPED_MM_DTYPES = {"cpu": (torch.float32, torch.bfloat16, torch.float16), "cuda": (torch.bfloat16,)}


def grouped_mm_supported(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether `F.grouped_mm` can run these operands: a supported device and dtype (CPU: fp32/bf16/fp16;
    CUDA: bf16 on sm80+), and every non-unit stride and base address a multiple of 16 bytes (the
    kernel's alignment rule: "strides should be multiple of 16 bytes")."""
    device = x.device.type
    if device not in _GROUPED_MM_DTYPES or x.dtype not in _GROUPED_MM_DTYPES[device]:
        return False
    if device == "cuda" and torch.cuda.get_device_capability(x.device) < (8, 0):
        return False
    for t in (x, *weights):
        misaligned = t.data_ptr() % 16 or any(s * t.element_size() % 16 for s in t.stride() if s != 1)
        if t.dtype != x.dtype or misaligned:
            return False
    return True


class _GroupedSwiGLU(torch.autograd.Function):
    """down(silu(gate(x)) * up(x)) per expert group with grouped_mm, forward and backward by hand.

    Why by hand: autograd on the plain expression keeps x, gate|up, silu(gate) and the product; this
    keeps x, gate, up and silu(gate), recomputes the product (one multiply) in the backward, and
    writes the gate and up gradients side by side for one grouped product each for the input and
    weight gradients. Gate and up come from two grouped products over the two halves of
    `gate_up_proj` so each is contiguous: elementwise kernels on the strided halves of one [S, 2H]
    product run 3-10x slower on CPU in bf16.
    """

    @staticmethod
    def forward(ctx, x_SD, gate_up_E2HD, down_EDH, offsets_E):  # noqa: D102
        H = down_EDH.shape[-1]
        gate_SH = F.grouped_mm(x_SD, gate_up_E2HD[:, :H].transpose(-2, -1), offs=offsets_E)
        up_SH = F.grouped_mm(x_SD, gate_up_E2HD[:, H:].transpose(-2, -1), offs=offsets_E)
        silu_SH = F.silu(gate_SH)
        ctx.save_for_backward(x_SD, gate_SH, up_SH, silu_SH, gate_up_E2HD, down_EDH, offsets_E)
        return F.grouped_mm(silu_SH * up_SH, down_EDH.transpose(-2, -1), offs=offsets_E)

    @staticmethod
    def backward(ctx, grad_SD):  # noqa: D102
        x_SD, gate_SH, up_SH, silu_SH, gate_up_E2HD, down_EDH, offsets_E = ctx.saved_tensors
        grad_SD = grad_SD.contiguous()  # grouped_mm rejects the stride-0 gradients of a broadcast sum
        a_SH = silu_SH * up_SH
        grad_down_EDH = F.grouped_mm(grad_SD.t(), a_SH, offs=offsets_E)
        grad_a_SH = F.grouped_mm(grad_SD, down_EDH, offs=offsets_E)
        grad_h_S2H = torch.cat(
            [torch.ops.aten.silu_backward(grad_a_SH * up_SH, gate_SH), grad_a_SH.mul_(silu_SH)], dim=1
        )
        grad_gate_up_E2HD = F.grouped_mm(grad_h_S2H.t(), x_SD, offs=offsets_E)
        grad_x_SD = F.grouped_mm(grad_h_S2H, gate_up_E2HD, offs=offsets_E)
        return grad_x_SD, grad_gate_up_E2HD, grad_down_EDH, None


class Experts(nn.Module):
    def __init__(self, num_experts: int, d_model: int, hidden: int) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.hidden = hidden
        self.gate_up_proj = nn.Parameter(torch.empty(num_experts, 2 * hidden, d_model))
        self.down_proj = nn.Parameter(torch.empty(num_experts, d_model, hidden))
        self.use_grouped_mm = True
        """Set False to force the per-expert loop (tests, benchmarks)."""
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, std: float = 0.02) -> None:
        nn.init.normal_(self.gate_up_proj, std=std)
        nn.init.normal_(self.down_proj, std=std)

    def forward(self, x_sorted_SD: torch.Tensor, counts_E: torch.Tensor) -> torch.Tensor:
        if self.use_grouped_mm and grouped_mm_supported(x_sorted_SD, self.gate_up_proj, self.down_proj):
            return self._grouped(x_sorted_SD, counts_E)
        return self._loop(x_sorted_SD, counts_E)

    def _grouped(self, x_SD: torch.Tensor, counts_E: torch.Tensor) -> torch.Tensor:
        offsets_E = torch.cumsum(counts_E, dim=0, dtype=torch.int32)
        return _GroupedSwiGLU.apply(x_SD, self.gate_up_proj, self.down_proj, offsets_E)

    def _loop(self, x_SD: torch.Tensor, counts_E: torch.Tensor) -> torch.Tensor:
        # One host sync for the split sizes: acceptable on the fallback path only.
        chunks = x_SD.split(counts_E.tolist())
        # unbind, not [e]: indexing would make each expert's backward allocate a whole-tensor gradient.
        gate_up = self.gate_up_proj.unbind(0)
        down = self.down_proj.unbind(0)
        outs = []
        for e, x_MD in enumerate(chunks):
            gate_MH, up_MH = F.linear(x_MD, gate_up[e]).chunk(2, dim=-1)
            outs.append(F.linear(F.silu(gate_MH) * up_MH, down[e]))
        return torch.cat(outs) if outs else x_SD.new_empty(x_SD.shape)
