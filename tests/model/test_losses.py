"""Load-balancing loss and z-loss against hand-computed values."""

from __future__ import annotations

import math

import torch

from tessera.model.losses import load_balance_loss, router_z_loss


def test_load_balance_loss_equals_hand_computed_value():
    # 2 tokens, 3 experts, top-2: slots went to experts 0, 1 (token 0) and 0, 2 (token 1).
    probs_NE = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]], dtype=torch.float64)
    counts_E = torch.tensor([2, 1, 1])
    # f = [2/4, 1/4, 1/4]; P = [0.55, 0.2, 0.25]; 3 * (0.275 + 0.05 + 0.0625) = 1.1625
    assert math.isclose(load_balance_loss(probs_NE, counts_E, top_k=2).item(), 1.1625, rel_tol=1e-12)


def test_load_balance_loss_is_one_when_uniform_and_num_experts_when_collapsed():
    num_experts = 4
    uniform = torch.full((8, num_experts), 1 / num_experts, dtype=torch.float64)
    assert math.isclose(load_balance_loss(uniform, torch.tensor([2, 2, 2, 2]), 1).item(), 1.0)
    collapsed = torch.zeros(8, num_experts, dtype=torch.float64)
    collapsed[:, 0] = 1
    assert math.isclose(load_balance_loss(collapsed, torch.tensor([8, 0, 0, 0]), 1).item(), num_experts)


def test_load_balance_loss_gradient_pushes_probability_off_the_loaded_expert():
    probs_NE = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    load_balance_loss(probs_NE, torch.tensor([1, 0, 0]), 1).backward()
    # d/dP_e = E * f_e / N: only the expert that received the slot is penalised.
    assert torch.allclose(probs_NE.grad, torch.tensor([[3.0, 0.0, 0.0]], dtype=torch.float64))


def test_z_loss_equals_squared_logsumexp():
    logits_NE = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    expected = (math.log(4) ** 2 + math.log(sum(math.exp(v) for v in (1, 2, 3, 4))) ** 2) / 2
    assert math.isclose(router_z_loss(logits_NE).item(), expected, rel_tol=1e-6)


def test_losses_of_no_tokens_are_zero():
    assert load_balance_loss(torch.zeros(0, 4), torch.zeros(4, dtype=torch.int64), 2).item() == 0
    assert router_z_loss(torch.zeros(0, 4)).item() == 0
