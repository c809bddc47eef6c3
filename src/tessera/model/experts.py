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
        h_S2H = F.grouped_mm(x_SD, self.gate_up_proj.transpose(-2, -1), offs=offsets_E)
        gate_SH, up_SH = h_S2H.chunk(2, dim=-1)
        a_SH = F.silu(gate_SH) * up_SH
        return F.grouped_mm(a_SH, self.down_proj.transpose(-2, -1), offs=offsets_E)

    def _loop(self, x_SD: torch.Tensor, counts_E: torch.Tensor) -> torch.Tensor:
        # One host sync for the split sizes: acceptable on the fallback path only.
        chunks = x_SD.split(counts_E.tolist())
        outs = []
        for e, x_MD in enumerate(chunks):
            gate_MH, up_MH = F.linear(x_MD, self.gate_up_proj[e]).chunk(2, dim=-1)
            outs.append(F.linear(F.silu(gate_MH) * up_MH, self.down_proj[e]))
        return torch.cat(outs) if outs else x_SD.new_empty(x_SD.shape)
