"""OLMoE-1B-7B (Muennighoff et al. 2024): 16 layers, d_model 2048, 16 heads, 64 experts top-8 of
hidden 1024, vocabulary 50,304, untied embeddings; published 6.9B total and 1.3B active parameters,
trained on 5.1T tokens."""

from __future__ import annotations

import dataclasses

import pytest

from tessera.model.config import PRESETS, num_active_params, num_params
from tessera.plan.flops import flops_per_token

OLMOE = dataclasses.replace(PRESETS["olmoe-1b-7b"], vocab_size=50_304)
TOKENS = 5.1e12


def test_parameter_counts_match_the_published_ones():
    assert round(num_params(OLMOE) / 1e9, 1) == 6.9
    assert round(num_active_params(OLMOE) / 1e9, 1) == 1.3
    # What agreement needs: OLMoE's untied output projection; tied, the active count would read 1.2B.
    tied = dataclasses.replace(OLMOE, tie_embeddings=True)
    assert round(num_active_params(tied) / 1e9, 1) == 1.2


def test_training_flops_are_6_n_active_d_with_attention_apart():
    flops = flops_per_token(OLMOE, 4096)
    six_nd = 6 * 1.3e9 * TOKENS  # the published active count
    assert flops.dense * TOKENS == pytest.approx(six_nd, rel=0.02)
    # Attention over OLMoE's 4096-token sequences: 3 x 4 x 4096 x 16 heads x 128 x 16 layers per token.
    assert flops.attention == 3 * 4 * 4096 * 16 * 128 * 16
    assert flops.reported == flops.dense + flops.attention
    # The MFU basis differs from 6N by the embedding lookup (no matmul) and the norm weights only.
    norms = OLMOE.num_layers * (2 * OLMOE.d_model + 2 * OLMOE.head_dim) + OLMOE.d_model
    assert flops.hardware == pytest.approx(
        flops.dense + flops.attention - 6 * (OLMOE.vocab_size * OLMOE.d_model + norms)
    )
