"""Top-k router: scores every expert for every token, picks k of them, and reports the load.

Same arithmetic as `transformers`' Qwen3-MoE router (`gate`): logits = x @ weight.T in the model's
dtype, softmax in float32, top-k, optional renormalisation; so an exported model routes identically.
The sigmoid variant (DeepSeek-V3) scores experts independently.

Auxiliary-loss-free balancing (DeepSeek-V3): `expert_bias_E` is added to the scores for *selection
only*; the combine weights stay the unbiased scores. `update_bias()` nudges it by `rate * sign(mean
load - load)` from the load accumulated in `load_E` since the last update.

Shapes: N tokens, D d_model, E experts, K experts per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tessera.model.config import MoEConfig

__all__ = ["Router", "Routing"]


@dataclass
class Routing:
    """What the router decided for N tokens."""

    logits_NE: torch.Tensor
    """Raw router logits (model dtype): the z-loss input."""
    probs_NE: torch.Tensor
    """Float32 (or float64) per-token distribution over experts (softmax, or normalised sigmoid scores): the
    load-balancing loss and entropy input."""
    weights_NK: torch.Tensor
    """Float32 (or float64) combine weights of the chosen experts."""
    experts_NK: torch.Tensor
    """Chosen expert ids (int64), k distinct ones per token."""
    tokens_per_expert_E: torch.Tensor
    """Routing slots per expert in this forward (int64, no gradient)."""


class Router(nn.Module):
    """`weight` [E, D] maps one-to-one to Qwen-MoE's `mlp.gate.weight`."""

    def __init__(self, d_model: int, cfg: MoEConfig) -> None:
        super().__init__()
        self.num_experts = cfg.num_experts
        self.top_k = cfg.top_k
        self.score_func = cfg.router
        self.renormalize = cfg.renormalize
        self.bias_balancing = cfg.bias_balancing
        self.bias_update_rate = cfg.bias_update_rate
        self.weight = nn.Parameter(torch.empty(cfg.num_experts, d_model))
        if cfg.bias_balancing:
            # Part of the model (it changes which experts a token reaches), so it is saved with it.
            self.register_buffer("expert_bias_E", torch.zeros(cfg.num_experts, dtype=torch.float32))
            # Routing slots per expert since the last `update_bias()`; training state, not saved.
            self.register_buffer("load_E", torch.zeros(cfg.num_experts), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, std: float = 0.02) -> None:
        nn.init.normal_(self.weight, std=std)

    def forward(self, x_ND: torch.Tensor) -> Routing:
        logits_NE = F.linear(x_ND, self.weight)
        # Scores in float32 at least (bf16 logits would blur near-ties); float64 stays float64.
        score_dtype = torch.promote_types(logits_NE.dtype, torch.float32)
        if self.score_func == "softmax":
            scores_NE = torch.softmax(logits_NE, dim=-1, dtype=score_dtype)
            probs_NE = scores_NE
        else:
            scores_NE = torch.sigmoid(logits_NE.to(score_dtype))
            probs_NE = scores_NE / scores_NE.sum(dim=-1, keepdim=True)
        with torch.no_grad():
            selection_NE = scores_NE + self.expert_bias_E if self.bias_balancing else scores_NE
            experts_NK = torch.topk(selection_NE, self.top_k, dim=-1).indices
        weights_NK = scores_NE.gather(1, experts_NK)
        if self.renormalize:
            weights_NK = weights_NK / weights_NK.sum(dim=-1, keepdim=True)
        with torch.no_grad():
            # scatter_add rather than bincount: bincount syncs with the host on CUDA to size its output.
            tokens_per_expert_E = torch.zeros(self.num_experts, dtype=torch.int64, device=x_ND.device)
            flat_S = experts_NK.reshape(-1)
            tokens_per_expert_E.scatter_add_(0, flat_S, torch.ones_like(flat_S))
            if self.bias_balancing and self.training:
                self.load_E += tokens_per_expert_E
        return Routing(logits_NE, probs_NE, weights_NK, experts_NK, tokens_per_expert_E)

    @torch.no_grad()
    def update_bias(self) -> None:
        """One step of auxiliary-loss-free balancing from the load accumulated since the last call:
        raise the bias of under-loaded experts, lower it for over-loaded ones, then reset the count.

        Across data-parallel ranks, all-reduce (sum) `load_E` before calling this, so every rank
        takes the same step; the trainer owns that collective. Only the sign of each expert's load
        error is used, so a count scaled uniformly (more micro-batches, activation checkpointing
        re-running the forward) gives the same step.
        """
        if not self.bias_balancing:
            return
        error_E = self.load_E.mean() - self.load_E
        stepped_E = self.expert_bias_E + self.bias_update_rate * torch.sign(error_E)
        # Only differences between biases change the selection; centring keeps them bounded.
        stepped_E -= stepped_E.mean()
        # Without load the bias stays (centring again would round it); `where`, not `if`: no host sync.
        self.expert_bias_E.copy_(torch.where(self.load_E.sum() > 0, stepped_E, self.expert_bias_E))
        self.load_E.zero_()
