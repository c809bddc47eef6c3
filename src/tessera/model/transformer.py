"""The decoder-only MoE transformer: embedding -> blocks (attention, then dense or MoE SwiGLU) -> norm
-> output projection. Plain nn.Module: no parallelism, no device placement.

Parameter names mirror `transformers`' Qwen3-MoE (`embed_tokens`, `layers.N.self_attn.q_proj`, ...,
`norm`, `lm_head`), so `tessera.model.hf` maps them one to one.

Initialisation: every weight matrix (embedding, projections, router, experts) ~ N(0, init_std); the
projections that write into the residual stream (attention `o_proj`, every SwiGLU `down_proj`) use
init_std / sqrt(2 * num_layers), so the residual stream's variance does not grow with depth (GPT-2,
OLMo); RMSNorm weights are 1.

Shapes: B batch, T sequence, D d_model, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from tessera.model.attention import Attention
from tessera.model.config import ModelConfig
from tessera.model.layers import RMSNorm, RotaryEmbedding, SwiGLU
from tessera.model.moe import MoE

__all__ = ["Transformer", "Block", "ModelOutput"]


@dataclass
class ModelOutput:
    logits_BTV: torch.Tensor
    """Next-token logits (the output projection's dtype)."""
    aux_loss: torch.Tensor
    """Mean over MoE layers of each layer's weighted load-balance + z-loss (0 without MoE layers);
    the trainer adds it to the cross-entropy."""
    moe_stats: list[Any] = field(default_factory=list)
    """One MoE layer output record per MoE layer, in layer order (tokens per expert, imbalance, entropy)."""


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + ffn(norm(x)); the FFN is dense or MoE."""

    def __init__(self, cfg: ModelConfig, index: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.is_moe = cfg.is_moe_layer(index)
        self.mlp: nn.Module = (
            MoE(cfg.d_model, cfg.moe) if self.is_moe else SwiGLU(cfg.d_model, cfg.dense_hidden)
        )

    def forward(self, x_BTD: torch.Tensor, cos_TK: torch.Tensor, sin_TK: torch.Tensor):
        x_BTD = x_BTD + self.self_attn(self.input_layernorm(x_BTD), cos_TK, sin_TK)
        h_BTD = self.post_attention_layernorm(x_BTD)
        if self.is_moe:
            ffn_BTD, moe_out = self.mlp(h_BTD)
            return x_BTD + ffn_BTD, moe_out
        return x_BTD + self.mlp(h_BTD), None


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.activation_checkpointing = False
        self.reset_parameters()

    def enable_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them
        (plain torch.utils.checkpoint, non-reentrant): about a third more compute for much less memory."""
        self.activation_checkpointing = enabled

    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        residual_std = std / math.sqrt(2 * self.cfg.num_layers)
        for name, param in self.named_parameters():
            if param.ndim < 2:  # norm weights (and any bias) keep their module's own init
                if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                    param.fill_(1.0)
                continue
            writes_residual = "o_proj" in name or "down" in name
            nn.init.normal_(param, mean=0.0, std=residual_std if writes_residual else std)

    def moe_layers(self) -> list[MoE]:
        return [block.mlp for block in self.layers if block.is_moe]

    def output_weight(self) -> torch.Tensor:
        return self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def forward(self, input_ids_BT: torch.Tensor) -> ModelOutput:
        x_BTD = self.embed_tokens(input_ids_BT)
        cos_TK, sin_TK = self.rotary(input_ids_BT.shape[1], x_BTD.dtype)
        aux_losses, moe_stats = [], []
        for block in self.layers:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                x_BTD, moe_out = torch.utils.checkpoint.checkpoint(
                    block, x_BTD, cos_TK, sin_TK, use_reentrant=False
                )
            else:
                x_BTD, moe_out = block(x_BTD, cos_TK, sin_TK)
            if moe_out is not None:
                aux_losses.append(moe_out.aux_loss)
                moe_stats.append(moe_out)
        logits_BTV = nn.functional.linear(self.norm(x_BTD), self.output_weight())
        aux_loss = torch.stack(aux_losses).mean() if aux_losses else logits_BTV.new_zeros(())
        return ModelOutput(logits_BTV=logits_BTV, aux_loss=aux_loss, moe_stats=moe_stats)
