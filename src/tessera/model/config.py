"""Model shapes: the MoE layer's config, the whole model's config, named presets, parameter and FLOP
counts, and the `model:` config section (a preset plus overrides).

Presets are data: `PRESETS[name]` is a complete `ModelConfig`. The run's model is
`build_model_config(cfg.model, vocab_size)`: the preset, the section's overrides, and the tokenizer's
vocabulary size. Counts are analytic (no model is built), so `tessera model info` works for a 7B preset
on a laptop; tests check them against a built model's `numel()`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from tessera.errors import ConfigError

__all__ = [
    "MoEConfig",
    "ModelConfig",
    "ModelSection",
    "PRESETS",
    "build_model_config",
    "num_params",
    "num_active_params",
    "num_embedding_params",
    "forward_flops_per_token",
    "train_flops_per_token",
    "print_info",
]


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
    """Auxiliary-loss-free balancing: a per-expert bias, updated from observed load, used only for
    selection."""
    bias_update_rate: float = 0.001
    """Step size of the bias update (sign of load error times rate)."""

    def check(self, where: str) -> None:
        if self.num_experts < 1:
            raise ConfigError(f"{where}.num_experts: {self.num_experts} must be at least 1")
        if not 1 <= self.top_k <= self.num_experts:
            raise ConfigError(
                f"{where}.top_k: {self.top_k} must be between 1 and num_experts ({self.num_experts})"
            )
        if self.expert_hidden < 1:
            raise ConfigError(f"{where}.expert_hidden: {self.expert_hidden} must be positive")
        if self.num_shared_experts < 0:
            raise ConfigError(f"{where}.num_shared_experts: {self.num_shared_experts} must be 0 or more")
        if (self.num_shared_experts > 0) != (self.shared_hidden > 0):
            raise ConfigError(
                f"{where}.shared_hidden: {self.shared_hidden} with num_shared_experts "
                f"{self.num_shared_experts}; "
                "set both to positive values (a shared expert) or both to 0 (none)"
            )
        for name in ("aux_loss_weight", "z_loss_weight", "bias_update_rate"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: {getattr(self, name)} must be 0 or more")


@dataclass
class ModelConfig:
    """A decoder-only MoE transformer (Qwen3-MoE layout: pre-norm blocks, GQA with QK-norm, SwiGLU)."""

    vocab_size: int
    """Token embeddings and output logits; set from the tokenizer by `build_model_config`."""
    d_model: int
    """Width of the residual stream."""
    num_layers: int
    """Transformer blocks."""
    num_heads: int
    """Query heads."""
    num_kv_heads: int
    """Key/value heads (grouped-query attention); divides num_heads."""
    head_dim: int
    """Width of one attention head (even, for rotary embeddings); need not be d_model / num_heads."""
    max_seq_len: int
    """Longest sequence trained on (the trainer's sequence length; `max_position_embeddings` on export)."""
    moe: MoEConfig = field(default_factory=MoEConfig)
    """The MoE feed-forward of every layer after the first `num_dense_layers`."""
    num_dense_layers: int = 0
    """Leading layers with a dense SwiGLU instead of MoE (exported as Qwen `mlp_only_layers`)."""
    dense_hidden: int = 0
    """Hidden size of the dense layers' SwiGLU (needed when num_dense_layers > 0)."""
    rope_theta: float = 10000.0
    """Rotary embedding base (Qwen/Llama half-rotation convention)."""
    norm_eps: float = 1e-6
    """Epsilon of every RMSNorm."""
    qk_norm: bool = True
    """RMSNorm over each head's queries and keys before RoPE (Qwen3/OLMoE): steadier logits at high LR."""
    tie_embeddings: bool = False
    """Use the token embedding matrix as the output projection (Qwen `tie_word_embeddings`)."""
    init_std: float = 0.02
    """Std of the normal init of every weight matrix; output projections get init_std / sqrt(2 num_layers)."""

    def check(self, where: str) -> None:
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                     "max_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: {getattr(self, name)} must be positive")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"{where}.num_kv_heads: {self.num_kv_heads} must divide num_heads ({self.num_heads})"
            )
        if self.head_dim % 2:
            raise ConfigError(
                f"{where}.head_dim: {self.head_dim} must be even (rotary embeddings rotate pairs)"
            )
        if not 0 <= self.num_dense_layers <= self.num_layers:
            raise ConfigError(
                f"{where}.num_dense_layers: {self.num_dense_layers} must be between 0 and num_layers "
                f"({self.num_layers})"
            )
        if self.num_dense_layers > 0 and self.dense_hidden < 1:
            raise ConfigError(
                f"{where}.dense_hidden: {self.dense_hidden}; set the dense SwiGLU's hidden size when "
                f"num_dense_layers is {self.num_dense_layers}"
            )
        if self.rope_theta <= 0 or self.norm_eps <= 0 or self.init_std <= 0:
            raise ConfigError(f"{where}: rope_theta, norm_eps and init_std must be positive")
        self.moe.check(f"{where}.moe")

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers

    def is_moe_layer(self, index: int) -> bool:
        return index >= self.num_dense_layers


# The presets. Counts (printed by `tessera model info`) are in docs/model.md.
PRESETS: dict[str, ModelConfig] = {
    # Tests: builds and runs a step in milliseconds; one dense layer so both FFN kinds are covered.
    "debug": ModelConfig(
        vocab_size=256, d_model=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, max_seq_len=64,
        moe=MoEConfig(num_experts=4, top_k=2, expert_hidden=32),
        num_dense_layers=1, dense_hidden=96,
    ),
    # The laptop demo: ~4 M parameters, trains on 2 CPU cores in minutes (vocab from the demo tokenizer).
    "demo": ModelConfig(
        vocab_size=8192, d_model=128, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32, max_seq_len=256,
        moe=MoEConfig(num_experts=8, top_k=2, expert_hidden=256),
        tie_embeddings=True,
    ),
    # The mission's size, after OLMoE-1B-7B: 64 fine-grained experts, 8 active; ~7 B total, ~1.3 B active.
    # Unlike OLMoE the top-8 weights are renormalised: it exports to Qwen3-MoE (per-head QK-norm; OLMoE's
    # norm spans the whole projection), which llama.cpp runs only renormalised (docs/model.md).
    "olmoe-1b-7b": ModelConfig(
        vocab_size=100_352, d_model=2048, num_layers=16, num_heads=16, num_kv_heads=16, head_dim=128,
        max_seq_len=4096, rope_theta=500_000.0,
        moe=MoEConfig(num_experts=64, top_k=8, expert_hidden=1024, renormalize=True),
    ),
    # Same active compute with one always-on shared expert (DeepSeek/Qwen2-MoE style): 7 routed + 1
    # shared of the same size. No QK-norm, so that it exports to Qwen2-MoE (which has none).
    "olmoe-1b-7b-shared": ModelConfig(
        vocab_size=100_352, d_model=2048, num_layers=16, num_heads=16, num_kv_heads=16, head_dim=128,
        max_seq_len=4096, rope_theta=500_000.0, qk_norm=False,
        moe=MoEConfig(num_experts=64, top_k=7, expert_hidden=1024, num_shared_experts=1, shared_hidden=1024,
                      renormalize=False),
    ),
}


@dataclass
class ModelSection:
    """The `model:` config section: a preset and the fields to change from it."""

    preset: str = "demo"
    """Name of a preset in `tessera.model.config.PRESETS` (debug, demo, olmoe-1b-7b, olmoe-1b-7b-shared)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of ModelConfig to change from the preset (nested `moe:` fields as a mapping)."""

    def check(self, where: str) -> None:
        # Validate the overrides now (with the preset's vocabulary), not when the first model is built.
        preset = PRESETS.get(self.preset)
        build_model_config(self, preset.vocab_size if preset else 1, where=where)


def _check_override_keys(cls: type, overrides: dict, where: str) -> None:
    allowed = {f.name: f for f in fields(cls)}
    for key, value in overrides.items():
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key; allowed keys: {', '.join(allowed)}")
        if key == "moe":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.moe: expected a mapping of MoE fields, got {value!r}")
            _check_override_keys(MoEConfig, value, f"{where}.moe")


def build_model_config(section: ModelSection, vocab_size: int, where: str = "model") -> ModelConfig:
    """The run's ModelConfig: the preset, then `section.overrides`, with the tokenizer's `vocab_size`."""
    from tessera.config import from_dict, to_dict  # tessera.config imports this module for ModelSection

    if section.preset not in PRESETS:
        raise ConfigError(
            f"{where}.preset: {section.preset!r} is not a preset; presets: {', '.join(PRESETS)}"
        )
    overrides_where = f"{where}.overrides"
    _check_override_keys(ModelConfig, section.overrides, overrides_where)
    if "vocab_size" in section.overrides:
        raise ConfigError(
            f"{overrides_where}.vocab_size: the vocabulary size comes from the tokenizer; set "
            "tokenizer.vocab_size instead"
        )
    data = to_dict(PRESETS[section.preset])
    for key, value in copy.deepcopy(section.overrides).items():
        if key == "moe":
            data["moe"].update(value)
        else:
            data[key] = value
    data["vocab_size"] = vocab_size
    return from_dict(ModelConfig, data, overrides_where)


# ---- parameter and FLOP counts --------------------------------------------------------------------


def _attention_params(cfg: ModelConfig) -> int:
    q_out, kv_out = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    projections = cfg.d_model * q_out + 2 * cfg.d_model * kv_out + q_out * cfg.d_model
    return projections + (2 * cfg.head_dim if cfg.qk_norm else 0)


def _shared_expert_params(moe: MoEConfig, d_model: int) -> int:
    # One SwiGLU of `shared_hidden` plus its sigmoid gate (a d_model -> 1 projection, Qwen2-MoE).
    return 3 * d_model * moe.shared_hidden + d_model if moe.num_shared_experts else 0


def _ffn_params(cfg: ModelConfig, active: bool) -> int:
    """Feed-forward parameters of all layers; `active`: only the top_k routed experts of each MoE layer."""
    moe = cfg.moe
    routed = (moe.top_k if active else moe.num_experts) * 3 * cfg.d_model * moe.expert_hidden
    per_moe_layer = moe.num_experts * cfg.d_model + routed + _shared_expert_params(moe, cfg.d_model)
    return cfg.num_dense_layers * 3 * cfg.d_model * cfg.dense_hidden + cfg.num_moe_layers * per_moe_layer


def num_embedding_params(cfg: ModelConfig) -> int:
    """Token embedding plus (untied) output projection."""
    return cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)


def _count(cfg: ModelConfig, active: bool) -> int:
    norms = cfg.num_layers * 2 * cfg.d_model + cfg.d_model
    layers = cfg.num_layers * _attention_params(cfg) + _ffn_params(cfg, active)
    return num_embedding_params(cfg) + layers + norms


def num_params(cfg: ModelConfig) -> int:
    """All trainable parameters (equal to `sum(p.numel() for p in Transformer(cfg).parameters())`)."""
    return _count(cfg, active=False)


def num_active_params(cfg: ModelConfig) -> int:
    """Parameters one token uses: all but the routed experts it is not sent to (embeddings included)."""
    return _count(cfg, active=True)


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Matmul FLOPs of one token's forward pass at sequence length `seq_len`.

    2 FLOPs per multiply-accumulate of every weight matrix a token passes through (attention
    projections, router, top_k routed experts, shared expert and its gate, dense SwiGLUs, output
    projection; not the embedding lookup or norms), plus attention scores and weighted values:
    2 * 2 * seq_len * num_heads * head_dim per layer, counted over the full sequence (the PaLM/Megatron
    MFU convention: the causal mask's skipped half is not subtracted).
    """
    matmul_params = (
        cfg.num_layers * (_attention_params(cfg) - (2 * cfg.head_dim if cfg.qk_norm else 0))
        + _ffn_params(cfg, active=True)
        + cfg.vocab_size * cfg.d_model
    )
    attention = cfg.num_layers * 4 * seq_len * cfg.num_heads * cfg.head_dim
    return float(2 * matmul_params + attention)


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per trained token: 3x the forward (backward = grads of inputs + weights)."""
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def print_info(preset: str, cfg: Any | None = None) -> None:
    """Print total/active parameters and training FLOPs per token of every preset (and the run's model).

    `preset` is marked in the table; `cfg` (a RunConfig or None) adds a row for the run's model: its
    preset with its overrides, at the preset's vocabulary size (the tokenizer may not exist yet).
    """
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not a preset; presets: {', '.join(PRESETS)}")
    rows = [(name + (" *" if name == preset else ""), model) for name, model in PRESETS.items()]
    if cfg is not None and cfg.model.overrides:
        section = cfg.model
        rows.append((f"{section.preset} + overrides (run)",
                     build_model_config(section, PRESETS[section.preset].vocab_size)))
    header = ("| model | layers | d_model | experts (top-k, shared) | vocab | total params | active params "
              "| active non-embedding | train FLOPs/token @ seq |")
    print(header)
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, model in rows:
        moe = model.moe
        experts = f"{moe.num_experts} (top-{moe.top_k}, {moe.num_shared_experts} shared)"
        print(
            f"| {name} | {model.num_layers} | {model.d_model} | {experts} | {model.vocab_size} "
            f"| {_human(num_params(model))} | {_human(num_active_params(model))} "
            f"| {_human(num_active_params(model) - num_embedding_params(model))} "
            f"| {_human(train_flops_per_token(model, model.max_seq_len))} @ {model.max_seq_len} |"
        )
    print("\nFLOPs: 3 x forward matmul FLOPs (2 per multiply-add) incl. attention over the full sequence; "
          "see docs/model.md.")
