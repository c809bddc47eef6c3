from __future__ import annotations

import pytest

from tessera.errors import ConfigError
from tessera.model.config import (
    PRESETS,
    ModelConfig,
    ModelSection,
    MoEConfig,
    build_model_config,
    forward_flops_per_token,
    num_active_params,
    num_params,
    print_info,
    train_flops_per_token,
)


def test_every_preset_is_valid():
    for name, cfg in PRESETS.items():
        cfg.check(f"PRESETS[{name}]")


def test_build_applies_overrides_and_vocab():
    section = ModelSection(preset="demo", overrides={"num_layers": 2, "moe": {"top_k": 1}})
    cfg = build_model_config(section, vocab_size=1000)
    assert (cfg.num_layers, cfg.moe.top_k, cfg.vocab_size) == (2, 1, 1000)
    assert cfg.moe.num_experts == PRESETS["demo"].moe.num_experts  # untouched nested fields kept
    assert PRESETS["demo"].num_layers == 4 and PRESETS["demo"].moe.top_k == 2  # presets not mutated


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_layer": 2}, "model.overrides.num_layer: unknown key; allowed keys: vocab_size, d_model"),
        ({"moe": {"topk": 2}}, "model.overrides.moe.topk: unknown key; allowed keys: num_experts"),
        ({"vocab_size": 10}, "model.overrides.vocab_size: the vocabulary size comes from the tokenizer"),
        ({"d_model": "wide"}, "model.overrides.d_model: expected an integer"),
        ({"moe": {"top_k": 9}}, "model.overrides.moe.top_k: 9 must be between 1 and num_experts (8)"),
        ({"num_kv_heads": 3}, "model.overrides.num_kv_heads: 3 must divide num_heads (4)"),
        ({"moe": {"router": "tanh"}}, "allowed values: softmax, sigmoid"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model_config(ModelSection(preset="demo", overrides=overrides), vocab_size=1000)


def test_section_check_rejects_unknown_preset_and_bad_overrides():
    with pytest.raises(ConfigError, match="model.preset: 'huge' is not a preset; presets: debug, demo"):
        ModelSection(preset="huge").check("model")
    with pytest.raises(ConfigError, match="model.overrides.layers: unknown key"):
        ModelSection(preset="demo", overrides={"layers": 3}).check("model")


def test_counts_by_hand_for_a_small_config():
    cfg = ModelConfig(
        vocab_size=10, d_model=4, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=2, max_seq_len=8,
        moe=MoEConfig(num_experts=3, top_k=2, expert_hidden=5), num_dense_layers=1, dense_hidden=6,
    )
    attention = 4 * 4 + 2 * 4 * 2 + 4 * 4 + 2 * 2  # q, k+v, o, qk-norm
    norms = 2 * 2 * 4 + 4
    dense = 3 * 4 * 6
    router = 3 * 4
    assert num_params(cfg) == 2 * 10 * 4 + 2 * attention + dense + router + 3 * 3 * 4 * 5 + norms
    assert num_active_params(cfg) == 2 * 10 * 4 + 2 * attention + dense + router + 2 * 3 * 4 * 5 + norms
    matmul = 2 * (attention - 4) + dense + router + 2 * 3 * 4 * 5 + 10 * 4  # no embedding lookup, no norms
    assert forward_flops_per_token(cfg, seq_len=8) == 2 * matmul + 2 * 4 * 8 * 2 * 2
    assert train_flops_per_token(cfg, seq_len=8) == 3 * forward_flops_per_token(cfg, seq_len=8)


def test_cluster_preset_is_olmoe_sized():
    cfg = PRESETS["olmoe-1b-7b"]
    assert 6.5e9 < num_params(cfg) < 7.5e9
    assert 1.0e9 < num_active_params(cfg) < 1.6e9
    shared = PRESETS["olmoe-1b-7b-shared"]
    assert num_active_params(shared) == pytest.approx(num_active_params(cfg), rel=0.01)


def test_print_info_lists_presets(capsys):
    print_info("demo")
    out = capsys.readouterr().out
    for name in PRESETS:
        assert f"| {name}" in out
    assert "| demo * |" in out
    with pytest.raises(ConfigError, match="--preset 'nope' is not a preset"):
        print_info("nope")


@pytest.mark.parametrize("shared", [False, True])
def test_forward_flops_match_torch_flop_counter(shared):
    """The formula against torch's own count of a built model's matmuls (math attention kernel, expert
    loop: the kernels the counter knows). The formula leaves out the combine's weighted sum of each token's
    k expert outputs (2*k*D per token per MoE layer); the layer does it with embedding_bag, which the
    counter does not count either, so the two agree exactly."""
    import dataclasses

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from tessera.model.transformer import Transformer

    cfg = PRESETS["debug"]
    if shared:
        moe = MoEConfig(num_experts=4, top_k=2, expert_hidden=32, num_shared_experts=1, shared_hidden=48)
        cfg = dataclasses.replace(cfg, qk_norm=False, tie_embeddings=True, moe=moe)
    model = Transformer(cfg)
    for moe_layer in model.moe_layers():
        moe_layer.experts.use_grouped_mm = False
    batch, seq_len = 2, 32
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(torch.randint(0, cfg.vocab_size, (batch, seq_len)))
    tokens = batch * seq_len
    assert counter.get_total_flops() == forward_flops_per_token(cfg, seq_len) * tokens
