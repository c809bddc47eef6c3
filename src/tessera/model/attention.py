"""Causal self-attention: grouped-query attention with optional QK-norm and rotary embeddings, through
`torch.nn.functional.scaled_dot_product_attention` (flash/memory-efficient kernels where available).

Shapes: B batch, T sequence, D d_model, H query heads, G key/value heads, K head_dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tessera.model.config import ModelConfig
from tessera.model.layers import RMSNorm, apply_rotary

__all__ = ["Attention"]


class Attention(nn.Module):
    """Qwen3-MoE attention: q/k/v/o projections without bias, per-head RMSNorm of q and k before RoPE."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.num_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.d_model, bias=False)
        # QK-norm normalises each head's vector (weights of size K, shared by heads), as Qwen3 does.
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None

    def forward(self, x_BTD: torch.Tensor, cos_TK: torch.Tensor, sin_TK: torch.Tensor) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        q_BTHK = self.q_proj(x_BTD).view(B, T, self.num_heads, self.head_dim)
        k_BTGK = self.k_proj(x_BTD).view(B, T, self.num_kv_heads, self.head_dim)
        v_BTGK = self.v_proj(x_BTD).view(B, T, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q_BTHK, k_BTGK = self.q_norm(q_BTHK), self.k_norm(k_BTGK)
        q_BHTK = apply_rotary(q_BTHK.transpose(1, 2), cos_TK, sin_TK)
        k_BGTK = apply_rotary(k_BTGK.transpose(1, 2), cos_TK, sin_TK)
        v_BGTK = v_BTGK.transpose(1, 2)
        y_BHTK = F.scaled_dot_product_attention(
            q_BHTK, k_BGTK, v_BGTK, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads
        )
        return self.o_proj(y_BHTK.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim))
