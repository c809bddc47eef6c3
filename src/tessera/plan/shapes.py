"""Candidate shapes for a cluster allocation: OLMoE-1B-7B (Muennighoff et al. 2024) and shapes of the
same family (64 fine-grained experts, top-8, expert hidden = d_model / 2, head_dim 128), smaller and
larger, as `model:` sections, so that the chosen one goes into the plan's config overlay as is.
Names give active and total parameters at a 64k vocabulary."""

from __future__ import annotations

from tessera.model.config import ModelSection

__all__ = ["CANDIDATES", "family"]


def family(d_model: int, num_layers: int) -> ModelSection:
    """An OLMoE-family shape of this width and depth."""
    heads = d_model // 128
    return ModelSection(
        "olmoe-1b-7b",
        {
            "d_model": d_model,
            "num_layers": num_layers,
            "num_heads": heads,
            "num_kv_heads": heads,
            "moe": {"expert_hidden": d_model // 2},
        },
    )


CANDIDATES: dict[str, ModelSection] = {
    "moe-0.7b-3b": family(1536, 12),
    "olmoe-1b-7b": ModelSection("olmoe-1b-7b"),
    "moe-4b-23b": family(3072, 24),
    "moe-9b-54b": family(4096, 32),
}
