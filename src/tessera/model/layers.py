"""Small building blocks of the transformer: RMSNorm, rotary embeddings, the dense SwiGLU.

Each matches its `transformers` Qwen3-MoE counterpart operation for operation (same parameter names,
same float32 internals), so that exported weights give the same logits.

Shapes: B batch, T sequence, D d_model, H heads, K head_dim, F SwiGLU hidden.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RMSNorm", "RotaryEmbedding", "apply_rotary", "SwiGLU"]


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 and cast back before the weight (as Qwen/Llama do)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_fp32 = x.float()
        normed = x_fp32 * torch.rsqrt(x_fp32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class RotaryEmbedding(nn.Module):
    """cos/sin tables of rotary position embeddings (half-rotation convention: pairs (i, i + K/2)).

    The tables are computed on the fly from `inv_freq` (a non-persistent buffer) in float32, so they
    follow the model to any device and dtype and never appear in a checkpoint.
    """

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        inv_freq_K2 = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq_K2", inv_freq_K2, persistent=False)

    def forward(self, seq_len: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        positions_T = torch.arange(seq_len, device=self.inv_freq_K2.device, dtype=torch.float32)
        freqs_TK2 = positions_T[:, None] * self.inv_freq_K2.float()[None, :]
        angles_TK = torch.cat((freqs_TK2, freqs_TK2), dim=-1)
        return angles_TK.cos().to(dtype), angles_TK.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x_BHTK: torch.Tensor, cos_TK: torch.Tensor, sin_TK: torch.Tensor) -> torch.Tensor:
    return x_BHTK * cos_TK + _rotate_half(x_BHTK) * sin_TK


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): the dense feed-forward (and a shared expert's)."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x_BTD)) * self.up_proj(x_BTD))
