"""Router: exactly top-k distinct experts per token, Qwen-identical softmax routing, sigmoid scores,
and auxiliary-loss-free bias balancing."""

from __future__ import annotations

import torch
from transformers.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeTopKRouter

from tessera.model.config import MoEConfig
from tessera.model.router import Router


def _router(device, **overrides) -> Router:
    torch.manual_seed(0)
    cfg = MoEConfig(**{"num_experts": 8, "top_k": 3, "expert_hidden": 16, **overrides})
    return Router(32, cfg).to(device)


def test_each_token_gets_top_k_distinct_experts_and_the_load_counts_them(device):
    router = _router(device)
    route = router(torch.randn(50, 32, device=device))
    assert route.experts_NK.shape == (50, 3)
    assert all(len(set(row)) == 3 for row in route.experts_NK.tolist())
    expected_E = torch.bincount(route.experts_NK.flatten(), minlength=8)
    assert torch.equal(route.tokens_per_expert_E, expected_E)
    assert int(route.tokens_per_expert_E.sum()) == 150


def test_softmax_routing_is_the_top_k_of_the_softmax(device):
    router = _router(device, renormalize=False)
    x_ND = torch.randn(20, 32, device=device)
    route = router(x_ND)
    probs_NE = torch.softmax((x_ND @ router.weight.T).float(), dim=-1)
    top_NK, index_NK = probs_NE.topk(3, dim=-1)
    assert torch.equal(route.experts_NK, index_NK)
    assert torch.allclose(route.weights_NK, top_NK)
    assert torch.allclose(route.probs_NE, probs_NE)


def test_softmax_routing_equals_transformers_qwen3_moe_router(device):
    router = _router(device, renormalize=True)
    hf_cfg = Qwen3MoeConfig(hidden_size=32, num_experts=8, num_experts_per_tok=3, norm_topk_prob=True)
    hf_router = Qwen3MoeTopKRouter(hf_cfg).to(device)
    hf_router.load_state_dict(router.state_dict())
    x_ND = torch.randn(20, 32, device=device)
    _, hf_weights_NK, hf_experts_NK = hf_router(x_ND)
    route = router(x_ND)
    assert torch.equal(route.experts_NK, hf_experts_NK)
    assert torch.allclose(route.weights_NK, hf_weights_NK)
    assert torch.allclose(route.weights_NK.sum(-1), torch.ones(20, device=device))


def test_sigmoid_router_scores_experts_independently(device):
    router = _router(device, router="sigmoid", renormalize=False)
    x_ND = torch.randn(20, 32, device=device)
    route = router(x_ND)
    scores_NE = torch.sigmoid(x_ND @ router.weight.T)
    top_NK, index_NK = scores_NE.topk(3, dim=-1)
    assert torch.equal(route.experts_NK, index_NK)
    assert torch.allclose(route.weights_NK, top_NK)
    assert torch.allclose(route.probs_NE.sum(-1), torch.ones(20, device=device))
    renormalized = _router(device, router="sigmoid", renormalize=True)
    renormalized.load_state_dict(router.state_dict())
    assert torch.allclose(renormalized(x_ND).weights_NK, top_NK / top_NK.sum(-1, keepdim=True))


def test_bias_changes_selection_but_not_the_weights(device):
    router = _router(device, bias_balancing=True, renormalize=False)
    x_ND = torch.randn(40, 32, device=device)
    with torch.no_grad():
        router.expert_bias_E[5] = 10.0  # forces expert 5 into every token's top-k
    route = router(x_ND)
    assert bool((route.experts_NK == 5).any(-1).all())
    probs_NE = torch.softmax(x_ND @ router.weight.T, dim=-1)
    assert torch.allclose(route.weights_NK, probs_NE.gather(1, route.experts_NK))


def test_update_bias_moves_the_load_toward_balance(device):
    router = _router(device, bias_balancing=True, bias_update_rate=0.005, top_k=2)
    with torch.no_grad():
        router.weight.mul_(5)
        router.weight[0] += 0.1  # with inputs sharing a direction, expert 0 wins most tokens
    x_ND = torch.randn(256, 32, device=device) + 0.3

    def imbalance() -> float:
        counts_E = router(x_ND).tokens_per_expert_E.float()
        return float(counts_E.max() / counts_E.mean())

    router.eval()
    before = imbalance()
    router.train()
    for _ in range(100):
        router(x_ND)
        router.update_bias()
    assert int(router.load_E.sum()) == 0  # reset after each update
    router.eval()
    after = imbalance()
    assert before > 2.5 and after < 1.3
    assert int(router.expert_bias_E.argmin()) == 0  # the overloaded expert is pushed down the most
    assert "expert_bias_E" in router.state_dict() and "load_E" not in router.state_dict()


def test_update_bias_is_a_no_op_without_bias_balancing_and_without_load(device):
    _router(device).update_bias()
    router = _router(device, bias_balancing=True)
    router.update_bias()
    assert torch.equal(router.expert_bias_E, torch.zeros(8, device=device))
