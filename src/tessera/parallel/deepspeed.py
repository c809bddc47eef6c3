"""TrainConfig + one stage -> a DeepSpeed engine (ZeRO, precision, accumulation, clipping, AdamW).

The optimizer is torch's AdamW (fused on CUDA, the plain for-each version on CPU), created here and
handed to DeepSpeed, so that no DeepSpeed op is compiled at start-up. Under ZeRO stage 0 in fp32 it is
`ClippedAdamW`, which clips and skips non-finite steps itself (DeepSpeed's ZeRO and bf16 optimizers do
that for the other cases). Expert parameters (marked by
`tessera.parallel.expert_parallel`) get their own optimizer groups, so ZeRO reduces and partitions them
over the expert-data-parallel group. The learning rate is set by the trainer every step from
`tessera.train.schedule` (no DeepSpeed scheduler: resuming needs only the step number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tessera.preflight import accumulation_steps
from tessera.train.config import StageConfig, TrainConfig

__all__ = ["EngineSpec", "engine_spec", "deepspeed_config", "param_groups", "build_engine"]


@dataclass(frozen=True)
class EngineSpec:
    """What the engine does for one stage on this job's ranks."""

    micro_batch_size: int
    grad_accum_steps: int
    world_size: int
    bf16: bool
    zero_stage: int
    """The ZeRO stage the engine runs: the config's, or 0 on a single rank (nothing to shard)."""


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays off on CUDA GPUs with bf16 tensor cores (Ampere+); CPU bf16 matmuls are slower than fp32."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def engine_spec(cfg: TrainConfig, stage: StageConfig, world_size: int, device: torch.device) -> EngineSpec:
    grad_accum_steps = accumulation_steps(cfg, stage, world_size)  # also checked before any job runs
    # "bf16" asked for explicitly is honoured even on CPU: slow, but allowed (e.g. to test numerics).
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_is_fast(device))
    # ZeRO partitions over the data-parallel ranks; with one rank its flat buffers are pure copying
    # (about 10% of a CPU step on the demo models, see bench/train_step.py).
    zero_stage = 0 if world_size == 1 else cfg.zero_stage
    return EngineSpec(cfg.micro_batch_size, grad_accum_steps, world_size, bf16, zero_stage)


def deepspeed_config(cfg: TrainConfig, spec: EngineSpec) -> dict[str, Any]:
    zero = {
        # DeepSpeed's ZeRO-2 accepts MoE parameter groups only with contiguous gradients.
        "stage": spec.zero_stage, "contiguous_gradients": True,
        # Overlapping reduction with backward needs CUDA streams; on CPU it only adds copies.
        "overlap_comm": torch.cuda.is_available(),
        "reduce_bucket_size": 50_000_000, "allgather_bucket_size": 50_000_000,
    }
    return {
        "train_micro_batch_size_per_gpu": spec.micro_batch_size,
        "gradient_accumulation_steps": spec.grad_accum_steps,
        "train_batch_size": spec.micro_batch_size * spec.grad_accum_steps * spec.world_size,
        # ClippedAdamW clips under stage 0 in fp32; DeepSpeed's own stage-0 clipping is not MoE-aware.
        "gradient_clipping": 0.0 if _client_clips(spec) else cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": spec.bf16},
        "fp16": {"enabled": False},
        # torch's AdamW is not on DeepSpeed's tested list for ZeRO; it is a standard torch optimizer.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
        "dump_state": False,
    }


def _client_clips(spec: EngineSpec) -> bool:
    """Stage 0 in fp32 is the one case where DeepSpeed steps the client optimizer unwrapped."""
    return spec.zero_stage == 0 and not spec.bf16


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

    from tessera.parallel.clipped_adamw import ClippedAdamW

    model.to(device)
    adamw = {"lr": lr, "betas": cfg.betas, "eps": cfg.eps, "fused": device.type == "cuda",
             "foreach": None if device.type == "cuda" else True}
    groups = param_groups(model, cfg.weight_decay)
    if _client_clips(spec):
        optimizer = ClippedAdamW(groups, max_norm=cfg.grad_clip, **adamw)
    else:
        optimizer = torch.optim.AdamW(groups, **adamw)
    config = deepspeed_config(cfg, spec)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    if spec.world_size == 1 and spec.zero_stage == 0:
        # DeepSpeed's own switch (it clears it without a process group): one rank would still flatten
        # every gradient into a buffer, "all-reduce" it with itself and copy it back, ~5% of a CPU step.
        # (ZeRO 1/2 finish their gradient bookkeeping in that call, hence stage 0 only.)
        engine.enable_backward_allreduce = False
    return engine
