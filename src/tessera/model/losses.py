"""Router losses: the load-balancing auxiliary loss and the router z-loss.

Both are pure functions of the router's outputs, so the reference tests compute them by hand and the
MoE layer weights them from its config.

Shapes: N tokens, E experts, K experts per token.
"""

from __future__ import annotations

import torch

__all__ = ["load_balance_loss", "router_z_loss"]


def load_balance_loss(probs_NE: torch.Tensor, tokens_per_expert_E: torch.Tensor, top_k: int) -> torch.Tensor:
    """Switch/OLMoE load-balancing loss `E * sum_e f_e * P_e`.

    f_e is the fraction of the N*K routing slots that went to expert e (not differentiable: it comes
    from top-k), P_e the mean router probability of e over the tokens (differentiable: it pushes
    probability away from overloaded experts). Equals 1 when routing is perfectly uniform and E when
    every token goes to the same expert with probability 1.
    """
    num_tokens, num_experts = probs_NE.shape
    if num_tokens == 0:
        return probs_NE.new_zeros(())
    fraction_E = tokens_per_expert_E.to(probs_NE.dtype) / (num_tokens * top_k)
    mean_prob_E = probs_NE.mean(dim=0)
    return num_experts * torch.dot(fraction_E, mean_prob_E)


def router_z_loss(logits_NE: torch.Tensor) -> torch.Tensor:
    """ST-MoE z-loss: mean over tokens of logsumexp(logits)^2; keeps router logits small so the softmax
    stays well conditioned in low precision."""
    if logits_NE.shape[0] == 0:
        return logits_NE.new_zeros((), dtype=torch.float32)
    logits_NE = logits_NE.to(torch.promote_types(logits_NE.dtype, torch.float32))
    return torch.logsumexp(logits_NE, dim=-1).square().mean()
