"""Open weights: a tessera checkpoint to and from a `transformers` folder that loads with no custom code.

Architecture chosen by the model's options:
  no shared expert            -> Qwen3-MoE (`Qwen3MoeForCausalLM`, QK-norm required: Qwen3 always has it)
  one shared expert (gated)   -> Qwen2-MoE (`Qwen2MoeForCausalLM`, no QK-norm: Qwen2-MoE has none)

tessera's parameter names are Qwen's without the `model.` prefix, so the mapping is a rename, except
that the routed experts are written in the per-expert layout every released Qwen-MoE checkpoint uses
(`mlp.experts.<e>.{gate,up,down}_proj.weight`): transformers 5 fuses them into its stacked
`gate_up_proj`/`down_proj` on load, and older transformers, vLLM and converters read them as they are.
Import reads either layout. The math agrees operation for operation: RMSNorm in float32 with the same
eps, RoPE in the half-rotation convention with the same base, softmax router in float32 then top-k
with `norm_topk_prob` = `moe.renormalize`, shared expert scaled by sigmoid(shared_expert_gate(x)),
dense first layers as `mlp_only_layers` of width `intermediate_size`.

Every folder is read with `trust_remote_code=False`, and one whose config.json or tokenizer_config.json
names custom code (`auto_map`) is refused before transformers sees it (`refuse_custom_code`): importing or
evaluating a model never runs code that came with it.

Refused at export (ConfigError naming the option to change), because no architecture represents them:
a sigmoid router, QK-norm together with a shared expert, no QK-norm without one, and a non-zero
auxiliary-loss-free selection bias (it changes which experts a token reaches; Qwen routers have none).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from tessera.config import from_dict
from tessera.errors import CheckpointError, ConfigError
from tessera.io import atomic_dir, write_json
from tessera.model.checkpoint import (
    WEIGHTS_FILE,
    copy_tokenizer_files,
    model_from_state,
    read_checkpoint_meta,
    read_safetensors,
    save_checkpoint,
)
from tessera.model.config import ModelConfig

__all__ = [
    "export_hf", "import_hf", "hf_config", "to_hf_state_dict", "from_hf_state_dict", "refuse_custom_code",
]

_ARCHITECTURES = {"qwen3_moe": "Qwen3MoeForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM"}
_EXPERTS_STACKED = re.compile(r"^(layers\.\d+\.mlp\.experts)\.(gate_up_proj|down_proj)$")
_EXPERT_SPLIT = re.compile(r"^(layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


# ---- config ------------------------------------------------------------------------------------------

_CODE_KEYS = ("auto_map",)
"""Keys with which a folder asks transformers to import Python files that came with it."""


def refuse_custom_code(folder: Path) -> None:
    """A CheckpointError when `folder`'s config.json or tokenizer_config.json names custom code: tessera's
    models are plain Qwen-MoE, and code in a downloaded folder must never run on a cluster's login node."""
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: not readable JSON ({err}); re-export the folder") from None
        keys = [key for key in _CODE_KEYS if isinstance(data, dict) and key in data]
        if keys:
            raise CheckpointError(
                f"{path}: {', '.join(keys)} asks to run Python code shipped in {folder}, which tessera never "
                "does (trust_remote_code=False); use a folder of a built-in transformers architecture "
                "(Qwen3-MoE or Qwen2-MoE) without custom code"
            )


def _check_exportable(cfg: ModelConfig, where: str) -> str:
    """The transformers model_type for `cfg`, or a ConfigError naming the option to change."""
    if cfg.moe.router != "softmax":
        raise ConfigError(
            f"{where}: model.moe.router is {cfg.moe.router!r}, but Qwen3-MoE and Qwen2-MoE route with a "
            "softmax; train with model.overrides.moe.router: softmax to release transformers weights"
        )
    if cfg.moe.num_shared_experts:
        if cfg.qk_norm:
            raise ConfigError(
                f"{where}: a shared expert exports to Qwen2-MoE, which has no QK-norm; train with "
                "model.overrides.qk_norm: false (or moe.num_shared_experts: 0 for Qwen3-MoE)"
            )
        return "qwen2_moe"
    if not cfg.qk_norm:
        raise ConfigError(
            f"{where}: without a shared expert the export is Qwen3-MoE, which always applies QK-norm; "
            "train with model.overrides.qk_norm: true (or add a shared expert for Qwen2-MoE)"
        )
    return "qwen3_moe"


def _special_token_ids(folder: Path) -> dict[str, int | None]:
    ids: dict[str, int | None] = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    if not (folder / "tokenizer.json").is_file():
        return ids
    from transformers import AutoTokenizer

    refuse_custom_code(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    for key in ids:
        ids[key] = getattr(tokenizer, key, None)
    return ids


def hf_config(cfg: ModelConfig, dtype: torch.dtype, token_ids: dict[str, int | None]) -> dict[str, Any]:
    """The config.json mapping of `cfg` (after `_check_exportable`)."""
    model_type = _check_exportable(cfg, "export")
    moe = cfg.moe
    config: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[model_type]],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        # Only the dense (mlp_only) layers use it; without them, the active routed width for reference.
        "intermediate_size": cfg.dense_hidden if cfg.num_dense_layers else moe.top_k * moe.expert_hidden,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "initializer_range": cfg.init_std,
        "rms_norm_eps": cfg.norm_eps,
        "use_cache": True,
        "tie_word_embeddings": cfg.tie_embeddings,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rope_theta": cfg.rope_theta,  # transformers 4.x reads this key
        "use_sliding_window": False,
        "sliding_window": None,
        "attention_dropout": 0.0,
        "decoder_sparse_step": 1,
        "mlp_only_layers": list(range(cfg.num_dense_layers)),
        "moe_intermediate_size": moe.expert_hidden,
        "num_experts": moe.num_experts,
        "num_experts_per_tok": moe.top_k,
        "norm_topk_prob": moe.renormalize,
        "output_router_logits": False,
        "router_aux_loss_coef": moe.aux_loss_weight,
        "dtype": str(dtype).removeprefix("torch."),
        **token_ids,
    }
    if model_type == "qwen3_moe":
        config["attention_bias"] = False
    else:
        config["qkv_bias"] = False
        config["shared_expert_intermediate_size"] = moe.shared_hidden
        config["max_window_layers"] = cfg.num_layers
    return config


def _unsupported(hf_dir: Path, key: str, value: Any, remedy: str) -> ConfigError:
    return ConfigError(f"{hf_dir / 'config.json'}: {key} = {value!r} has no tessera equivalent; {remedy}")


def model_config_from_hf(config: Any, hf_dir: Path) -> ModelConfig:
    """The ModelConfig of a transformers Qwen3-MoE / Qwen2-MoE config object (AutoConfig: defaults
    filled in, renamed keys resolved), refusing what tessera cannot represent."""
    model_type = config.model_type
    if model_type not in _ARCHITECTURES:
        raise ConfigError(
            f"{hf_dir / 'config.json'}: model_type {model_type!r} cannot be imported; supported: "
            f"{', '.join(_ARCHITECTURES)}"
        )
    if config.hidden_act != "silu":
        raise _unsupported(hf_dir, "hidden_act", config.hidden_act, "tessera's SwiGLU uses silu")
    if getattr(config, "use_sliding_window", False):
        raise _unsupported(hf_dir, "use_sliding_window", True, "tessera attends over the full sequence")
    for bias_key in ("attention_bias", "qkv_bias"):
        if getattr(config, bias_key, False):
            raise _unsupported(hf_dir, bias_key, True, "tessera's projections have no bias")
    rope = config.rope_parameters or {}
    if rope.get("rope_type", "default") != "default":
        raise _unsupported(
            hf_dir, "rope_parameters.rope_type", rope["rope_type"], "only default RoPE is built"
        )
    num_layers = config.num_hidden_layers
    step = config.decoder_sparse_step
    dense = sorted(set(config.mlp_only_layers or []) | {i for i in range(num_layers) if (i + 1) % step})
    if dense != list(range(len(dense))):
        raise _unsupported(
            hf_dir,
            "mlp_only_layers/decoder_sparse_step",
            dense,
            "tessera's dense layers are the first num_dense_layers",
        )
    moe: dict[str, Any] = {
        "num_experts": config.num_experts,
        "top_k": config.num_experts_per_tok,
        "expert_hidden": config.moe_intermediate_size,
        "renormalize": bool(config.norm_topk_prob),
        "aux_loss_weight": float(config.router_aux_loss_coef),
    }
    if model_type == "qwen2_moe":
        moe["num_shared_experts"] = 1
        moe["shared_hidden"] = config.shared_expert_intermediate_size
    num_heads = config.num_attention_heads
    data = {
        "vocab_size": config.vocab_size,
        "d_model": config.hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_kv_heads": config.num_key_value_heads or num_heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // num_heads,
        "max_seq_len": config.max_position_embeddings,
        "moe": moe,
        "num_dense_layers": len(dense),
        "dense_hidden": config.intermediate_size if dense else 0,
        "rope_theta": float(rope.get("rope_theta", 10000.0)),
        "norm_eps": float(config.rms_norm_eps),
        "qk_norm": model_type == "qwen3_moe",
        "tie_embeddings": bool(config.tie_word_embeddings),
        "init_std": float(config.initializer_range),
    }
    return from_dict(ModelConfig, data, f"{hf_dir / 'config.json'}")


# ---- weights -----------------------------------------------------------------------------------------


def to_hf_state_dict(tessera_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """tessera names -> transformers names, routed experts split per expert (the released layout)."""
    hf: dict[str, torch.Tensor] = {}
    for name, tensor in tessera_state.items():
        stacked = _EXPERTS_STACKED.match(name)
        if stacked:
            prefix, kind = stacked.groups()
            for e, weight in enumerate(tensor.unbind(0)):
                if kind == "gate_up_proj":
                    gate, up = weight.chunk(2, dim=0)
                    hf[f"model.{prefix}.{e}.gate_proj.weight"] = gate.contiguous()
                    hf[f"model.{prefix}.{e}.up_proj.weight"] = up.contiguous()
                else:
                    hf[f"model.{prefix}.{e}.down_proj.weight"] = weight.contiguous()
        elif name.startswith("lm_head."):
            hf[name] = tensor
        elif "expert_bias" not in name:  # checked to be zero by export_hf
            hf[f"model.{name}"] = tensor
    return hf


def from_hf_state_dict(hf_state: dict[str, torch.Tensor], num_experts: int) -> dict[str, torch.Tensor]:
    """transformers names (per-expert or stacked experts) -> tessera names."""
    state: dict[str, torch.Tensor] = {}
    split: dict[str, dict[str, list[torch.Tensor | None]]] = {}
    for hf_name, tensor in hf_state.items():
        name = hf_name.removeprefix("model.")
        match = _EXPERT_SPLIT.match(name)
        if match:
            prefix, e, kind = match.groups()
            split.setdefault(prefix, {}).setdefault(kind, [None] * num_experts)[int(e)] = tensor
        else:
            state[name] = tensor
    for prefix, kinds in split.items():
        if any(t is None for ts in kinds.values() for t in ts) or set(kinds) != {
            "gate_proj",
            "up_proj",
            "down_proj",
        }:
            raise CheckpointError(
                f"{prefix}: the per-expert weights are incomplete (expected {num_experts} "
                "experts with gate_proj, up_proj and down_proj)"
            )
        gate_up = [
            torch.cat((g, u), dim=0) for g, u in zip(kinds["gate_proj"], kinds["up_proj"], strict=True)
        ]
        state[f"{prefix}.gate_up_proj"] = torch.stack(gate_up)
        state[f"{prefix}.down_proj"] = torch.stack(kinds["down_proj"])
    return state


def export_hf(checkpoint_dir: str | Path, out_dir: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write a transformers folder (model.safetensors, config.json, generation_config.json, tokenizer).

    `dtype` casts the floating-point weights (e.g. torch.bfloat16 to halve a float32 checkpoint's
    release); by default they keep the checkpoint's dtype.
    """
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    cfg, meta = read_checkpoint_meta(checkpoint_dir)
    _check_exportable(cfg, str(checkpoint_dir))
    state = read_safetensors(checkpoint_dir / WEIGHTS_FILE)
    for name, tensor in state.items():
        if "expert_bias" in name and tensor.abs().max() > 0:
            raise ConfigError(
                f"{checkpoint_dir}: {name} is non-zero: the auxiliary-loss-free balancing bias changes which "
                "experts a token reaches and Qwen-MoE routers have no such bias; train with "
                "model.overrides.moe.bias_balancing: false (balance with moe.aux_loss_weight) to export"
            )
    if dtype is not None:
        state = {name: t.to(dtype) if t.is_floating_point() else t for name, t in state.items()}
    dtype = state["embed_tokens.weight"].dtype
    token_ids = _special_token_ids(checkpoint_dir)
    with atomic_dir(out_dir) as tmp:
        save_file(to_hf_state_dict(state), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        write_json(tmp / "config.json", hf_config(cfg, dtype, token_ids))
        generation = {key: value for key, value in token_ids.items() if value is not None}
        write_json(tmp / "generation_config.json", generation)
        write_json(tmp / "tessera.json", {"exported_from": str(checkpoint_dir), **meta})
        copy_tokenizer_files(checkpoint_dir, tmp)
    return out_dir


def _read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise CheckpointError(
            f"{hf_dir}: no *.safetensors weights (PyTorch .bin checkpoints are not read; "
            "re-save the model with safe_serialization=True)"
        )
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(read_safetensors(path))
    return state


def import_hf(hf_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a tessera checkpoint (step 0 of stage "import") from a local Qwen3-MoE / Qwen2-MoE folder."""
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not (hf_dir / "config.json").is_file():
        raise CheckpointError(f"{hf_dir}: config.json is missing; not a transformers model folder")
    refuse_custom_code(hf_dir)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(hf_dir), trust_remote_code=False)
    except (ValueError, OSError, KeyError) as err:
        raise CheckpointError(f"{hf_dir / 'config.json'}: transformers cannot read it ({err})") from None
    cfg = model_config_from_hf(config, hf_dir)
    state = from_hf_state_dict(_read_hf_weights(hf_dir), cfg.moe.num_experts)
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # some exports store the tied matrix twice
    model = model_from_state(cfg, state, "cpu", f"{hf_dir}: the weights do not match its config.json")
    meta = {"stage": "import", "step": 0, "tokens_seen": 0, "imported_from": str(hf_dir)}
    return save_checkpoint(out_dir, model, meta, tokenizer_dir=hf_dir)
