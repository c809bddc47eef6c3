"""Model shapes: the MoE layer's config, the whole model's config, named presets, and the `model:`
config section (a preset plus overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MoEConfig", "ModelSection"]


@dataclass
class MoEConfig:
    """One Mixture-of-Experts feed-forward layer (fine-grained SwiGLU experts, dropless)."""

    num_experts: int = 8
    """Routed experts per MoE layer."""
    top_k: int = 2
    """Experts each token is sent to."""
    expert_hidden: int = 256
    """Hidden size of each routed expert's SwiGLU."""
    num_shared_experts: int = 0
    """Experts every token goes through (0 = none); their hidden size is `shared_hidden`."""
    shared_hidden: int = 0
    """Hidden size of the shared expert(s) together (Qwen2-MoE layout: one shared SwiGLU of this size)."""
    router: Literal["softmax", "sigmoid"] = "softmax"
    """Softmax over experts then top-k, or independent sigmoid scores (DeepSeek-V3 style)."""
    renormalize: bool = True
    """Renormalise the top-k weights to sum to 1 (Qwen3-MoE `norm_topk_prob`)."""
    aux_loss_weight: float = 0.01
    """Weight of the load-balancing loss (Switch/OLMoE form: E * sum_e f_e * p_e)."""
    z_loss_weight: float = 0.001
    """Weight of the router z-loss (mean squared logsumexp of router logits)."""
    bias_balancing: bool = False
    """Auxiliary-loss-free balancing: a per-expert bias, updated from observed load, used only for selection."""
    bias_update_rate: float = 0.001
    """Step size of the bias update (sign of load error times rate)."""


@dataclass
class ModelSection:
    preset: str = "demo"
    """Name of a preset in `tessera.model.config` (demo, olmoe-1b-7b, ...)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of ModelConfig to change from the preset (nested `moe:` fields as a mapping)."""
