"""TrainConfig + one stage -> a DeepSpeed engine (ZeRO, precision, accumulation, clipping, AdamW).

The optimizer is torch's AdamW (fused on CUDA, the plain for-each version on CPU), created here and
handed to DeepSpeed, so that no DeepSpeed op is compiled at start-up. Expert parameters (marked by
`tessera.parallel.expert_parallel`) get their own optimizer groups, so ZeRO reduces and partitions them
over the expert-data-parallel group. The learning rate is set by the trainer every step from
`tessera.train.schedule` (no DeepSpeed scheduler: resuming needs only the step number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tessera.errors import ConfigError
from tessera.train.config import StageConfig, TrainConfig

__all__ = ["EngineSpec", "engine_spec", "deepspeed_config", "param_groups", "build_engine"]


@dataclass(frozen=True)
class EngineSpec:
    """What the engine does for one stage on this job's ranks."""

    micro_batch_size: int
    grad_accum_steps: int
    world_size: int
    bf16: bool


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays off on CUDA GPUs with bf16 tensor cores (Ampere+); CPU bf16 matmuls are slower than fp32."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def engine_spec(cfg: TrainConfig, stage: StageConfig, world_size: int, device: torch.device) -> EngineSpec:
    per_step = cfg.micro_batch_size * world_size
    if stage.batch_size % per_step:
        raise ConfigError(
            f"train.stages[{stage.name}].batch_size: {stage.batch_size} is not a multiple of "
            f"train.micro_batch_size ({cfg.micro_batch_size}) x {world_size} ranks = {per_step}; "
            "change the batch size or the micro batch size"
        )
    if cfg.precision == "bf16" and device.type == "cpu":
        bf16 = True  # asked for explicitly: slow, but allowed (e.g. to test numerics)
    else:
        bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_is_fast(device))
    return EngineSpec(cfg.micro_batch_size, stage.batch_size // per_step, world_size, bf16)


def deepspeed_config(cfg: TrainConfig, spec: EngineSpec) -> dict[str, Any]:
    zero = {
        "stage": cfg.zero_stage, "contiguous_gradients": True,
        # Overlapping reduction with backward needs CUDA streams; on CPU it only adds copies.
        "overlap_comm": torch.cuda.is_available(),
        "reduce_bucket_size": 50_000_000, "allgather_bucket_size": 50_000_000,
    }
    return {
        "train_micro_batch_size_per_gpu": spec.micro_batch_size,
        "gradient_accumulation_steps": spec.grad_accum_steps,
        "train_batch_size": spec.micro_batch_size * spec.grad_accum_steps * spec.world_size,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": spec.bf16},
        "fp16": {"enabled": False},
        # torch's AdamW is not on DeepSpeed's tested list for ZeRO; it is a standard torch optimizer.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
        "dump_state": False,
    }


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices, not norms/biases/embeddings; expert parameters split into their own groups."""
    from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "embed" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return split_params_into_different_moe_groups_for_optimizer([g for g in groups if g["params"]])


def build_engine(model: nn.Module, cfg: TrainConfig, spec: EngineSpec, device: torch.device, lr: float):
    """The DeepSpeed engine around `model` (already expert-sharded), with torch AdamW."""
    import deepspeed

    model.to(device)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=lr, betas=cfg.betas, eps=cfg.eps,
        fused=device.type == "cuda", foreach=None if device.type == "cuda" else True,
    )
    config = deepspeed_config(cfg, spec)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine
