"""The Mixture-of-Experts feed-forward: route -> dispatch -> experts -> combine (+ shared expert).

Dropless: every token reaches exactly its top-k experts, however skewed the router; there is no
capacity factor. Dispatch sorts the N*K routing slots by expert id once; that one permutation serves
the forward and the backward of both the dispatch (gather) and the combine (unpermute + weighted sum),
through two small autograd functions that store only the permutation indices (and the combine's
inputs) instead of the dense masks or scatter buffers autograd would otherwise keep.

Submodule names match `transformers`' Qwen3-MoE / Qwen2-MoE sparse block, so export is a rename:
`gate.weight`, `experts.gate_up_proj`, `experts.down_proj`, `shared_expert.{gate,up,down}_proj`,
`shared_expert_gate.weight`.

Shapes: B batch, T sequence, N = B*T tokens, D d_model, E experts, K experts per token,
S = N*K routing slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tessera.model.config import MoEConfig
from tessera.model.experts import Experts
from tessera.model.layers import SwiGLU
from tessera.model.losses import load_balance_loss, router_z_loss
from tessera.model.router import Router

__all__ = ["MoE", "MoEOutput"]


@dataclass
class MoEOutput:
    """The layer's auxiliary loss and its load statistics (detached tensors: no host sync until logged)."""

    aux_loss: torch.Tensor
    """aux_loss_weight * load-balance loss + z_loss_weight * z-loss (scalar, differentiable)."""
    load_balance_loss: torch.Tensor
    """Unweighted E * sum_e f_e P_e (1 = perfectly balanced)."""
    z_loss: torch.Tensor
    """Unweighted mean squared logsumexp of the router logits."""
    tokens_per_expert: torch.Tensor
    """Routing slots per expert in this forward [E] (int64)."""
    load_imbalance: torch.Tensor
    """max / mean of tokens_per_expert (1 = balanced; E/K = every token on the same K experts)."""
    router_entropy: torch.Tensor
    """Mean over tokens of the entropy (nats) of the router distribution."""


class _Dispatch(torch.autograd.Function):
    """x_ND -> x_sorted_SD: row j is token order_S[j] // K. Backward sums each token's K gradient rows
    with one embedding_bag (a fused gather-and-sum: no [N, K, D] intermediate, no atomics)."""

    @staticmethod
    def forward(ctx, x_ND, token_of_sorted_S, sorted_of_slot_S, top_k):  # noqa: D102
        ctx.save_for_backward(sorted_of_slot_S)
        ctx.top_k = top_k
        return x_ND.index_select(0, token_of_sorted_S)

    @staticmethod
    def backward(ctx, grad_SD):  # noqa: D102
        (sorted_of_slot_S,) = ctx.saved_tensors
        bags_NK = sorted_of_slot_S.view(-1, ctx.top_k)
        return F.embedding_bag(bags_NK, grad_SD.contiguous(), mode="sum"), None, None, None


class _Combine(torch.autograd.Function):
    """(y_sorted_SD, weights_NK) -> y_ND[n] = sum_k weights[n, k] * y_sorted[sorted position of (n, k)]:
    one weighted embedding_bag (fused gather, scale and sum), reading y_sorted in place."""

    @staticmethod
    def forward(ctx, y_sorted_SD, weights_NK, sorted_of_slot_S, token_of_sorted_S, slot_of_sorted_S):  # noqa: D102
        bags_NK = sorted_of_slot_S.view(weights_NK.shape)
        ctx.save_for_backward(y_sorted_SD, weights_NK, sorted_of_slot_S, token_of_sorted_S, slot_of_sorted_S)
        # Detached: with inputs that require grad, embedding_bag takes its training variant, which
        # also builds the bag bookkeeping for its own backward (~10x slower); ours is by hand.
        y_sorted_SD, weights_NK = y_sorted_SD.detach(), weights_NK.detach()
        return F.embedding_bag(bags_NK, y_sorted_SD, per_sample_weights=weights_NK, mode="sum")

    @staticmethod
    def backward(ctx, grad_ND):  # noqa: D102
        y_sorted_SD, weights_NK, sorted_of_slot_S, token_of_sorted_S, slot_of_sorted_S = ctx.saved_tensors
        grad_of_token_SD = grad_ND.index_select(0, token_of_sorted_S)
        weights_S = weights_NK.reshape(-1).index_select(0, slot_of_sorted_S)
        grad_sorted_SD = grad_of_token_SD * weights_S.unsqueeze(-1)
        grad_weights_S = torch.linalg.vecdot(grad_of_token_SD, y_sorted_SD)
        grad_weights_NK = grad_weights_S.index_select(0, sorted_of_slot_S).view(weights_NK.shape)
        return grad_sorted_SD, grad_weights_NK, None, None, None


class MoE(nn.Module):
    def __init__(self, d_model: int, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gate = Router(d_model, cfg)
        self.experts = Experts(cfg.num_experts, d_model, cfg.expert_hidden)
        if cfg.num_shared_experts > 0:
            self.shared_expert = SwiGLU(d_model, cfg.shared_hidden)
            self.shared_expert_gate = nn.Linear(d_model, 1, bias=False)
        else:
            self.shared_expert = None
            self.shared_expert_gate = None

    def forward(self, x_BTD: torch.Tensor) -> tuple[torch.Tensor, MoEOutput]:
        x_ND = x_BTD.reshape(-1, x_BTD.shape[-1])
        route = self.gate(x_ND)

        # Dispatch: one stable sort of the N*K slots by expert id; int32 indices halve index traffic.
        top_k = self.cfg.top_k
        slot_of_sorted_S = torch.argsort(route.experts_NK.reshape(-1), stable=True).to(torch.int32)
        sorted_of_slot_S = torch.empty_like(slot_of_sorted_S)
        sorted_of_slot_S[slot_of_sorted_S] = torch.arange(
            slot_of_sorted_S.numel(), dtype=torch.int32, device=x_ND.device
        )
        token_of_sorted_S = torch.div(slot_of_sorted_S, top_k, rounding_mode="floor")
        x_sorted_SD = _Dispatch.apply(x_ND, token_of_sorted_S, sorted_of_slot_S, top_k)

        y_sorted_SD = self.experts(x_sorted_SD, route.tokens_per_expert_E)

        weights_NK = route.weights_NK.to(y_sorted_SD.dtype)
        y_ND = _Combine.apply(y_sorted_SD, weights_NK, sorted_of_slot_S, token_of_sorted_S, slot_of_sorted_S)

        if self.shared_expert is not None:
            y_ND = y_ND + torch.sigmoid(self.shared_expert_gate(x_ND)) * self.shared_expert(x_ND)

        return y_ND.view_as(x_BTD), self._output(route)

    def _output(self, route) -> MoEOutput:
        lb_loss = load_balance_loss(route.probs_NE, route.tokens_per_expert_E, self.cfg.top_k)
        z_loss = router_z_loss(route.logits_NE)
        aux_loss = self.cfg.aux_loss_weight * lb_loss + self.cfg.z_loss_weight * z_loss
        with torch.no_grad():
            counts_E = route.tokens_per_expert_E
            imbalance = counts_E.max().float() / counts_E.float().mean().clamp_min(1e-9)
            entropy = -(route.probs_NE * route.probs_NE.clamp_min(1e-20).log()).sum(-1).mean()
        return MoEOutput(aux_loss, lb_loss.detach(), z_loss.detach(), counts_E, imbalance, entropy)
