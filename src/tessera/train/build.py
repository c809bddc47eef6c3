"""The parts a training segment is built from: its thread count, token loader, first run-state record and
layout span, the model on its DeepSpeed engine, and its callbacks. `Segment.__init__` calls these in order
(resume checks go between the record and the engine); they hold no state of their own."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tessera.config import RunConfig, to_dict
from tessera.layout import RunLayout
from tessera.parallel.env import DistEnv
from tessera.train.callbacks import (
    Callback,
    EnergyCallback,
    JsonlLogger,
    MoEStatsCallback,
    ProgressPrinter,
    TensorBoardLogger,
    ThroughputCallback,
)
from tessera.train.checkpoint import RunStateMeta
from tessera.train.config import StageConfig, TrainConfig
from tessera.train.history import LayoutSpan
from tessera.train.resume import num_nodes

if TYPE_CHECKING:
    from tessera.data.loader import TokenLoader
    from tessera.model.config import ModelConfig
    from tessera.parallel.deepspeed import EngineSpec

__all__ = ["METRICS_FILE", "num_threads", "build_loader", "initial_meta", "first_span", "build_model_engine",
           "build_callbacks"]

METRICS_FILE = "metrics.jsonl"


def num_threads(cfg: TrainConfig) -> int:
    if cfg.num_threads:
        return cfg.num_threads
    # SLURM writes e.g. "4(x2)" for 4 tasks on each of 2 nodes.
    env = os.environ
    local_ranks = int(env.get("LOCAL_WORLD_SIZE") or env.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0])
    return max(1, len(os.sched_getaffinity(0)) // max(local_ranks, 1))


def build_loader(cfg: RunConfig, stage: StageConfig, layout: RunLayout, env: DistEnv,
                 spec: EngineSpec) -> TokenLoader:
    """This rank's `TokenLoader` over the stage's mixture (languages of weight 0 are not opened)."""
    from tessera.data.loader import TokenLoader, stage_seed

    stage_index = [s.name for s in cfg.train.stages].index(stage.name)
    return TokenLoader(
        {lang: layout.tokens(lang, "train") for lang, w in stage.mixture.items() if w > 0},
        stage.mixture, stage.seq_len, spec.micro_batch_size,
        seed=stage_seed(cfg.run.seed, stage_index),
        rank=env.rank, world_size=env.world_size, grad_accum_steps=spec.grad_accum_steps,
    )


def initial_meta(cfg: RunConfig, stage: StageConfig, model_cfg: ModelConfig, spec: EngineSpec, env: DistEnv,
                 device: torch.device, tokenizer_sha256: str) -> RunStateMeta:
    """The run-state record of step 0 in this launch's layout (a resume overwrites its counters)."""
    return RunStateMeta(
        stage=stage.name, step=0, tokens_seen=0, world_size=env.world_size,
        expert_parallel_size=cfg.train.expert_parallel_size, zero_stage=spec.zero_stage,
        model=to_dict(model_cfg), tokenizer_sha256=tokenizer_sha256,
        stage_config=to_dict(stage), site=cfg.site.name,
        gpu_type=cfg.site.gpu_type if device.type == "cuda" else None, num_nodes=num_nodes(),
    )


def first_span(stage: StageConfig, meta: RunStateMeta) -> LayoutSpan:
    """The history span this launch adds, before its first step."""
    return LayoutSpan(
        stage.name, meta.site, meta.gpu_type, meta.num_nodes, meta.world_size,
        meta.expert_parallel_size, meta.zero_stage, first_step=0, last_step=0,
    )


def build_model_engine(cfg: RunConfig, stage: StageConfig, model_cfg: ModelConfig, spec: EngineSpec,
                       device: torch.device):
    """The model, expert-parallel and on its engine in train mode; and the routers that balance by bias
    (moe.bias_balancing), whose module objects the engine keeps. Returns (engine, routers)."""
    # DeepSpeed's import alone takes seconds: the caller has checked the resume before this.
    from tessera.model.transformer import Transformer
    from tessera.parallel.deepspeed import build_engine
    from tessera.parallel.expert_parallel import apply_expert_parallel

    # Same seed on every rank: identical initial weights, and each EP rank keeps its slice of them.
    torch.manual_seed(cfg.run.seed)
    model = Transformer(model_cfg)
    model.enable_activation_checkpointing(cfg.train.activation_checkpointing)
    balancing_routers = [moe.gate for moe in model.moe_layers() if moe.gate.bias_balancing]
    apply_expert_parallel(model, cfg.train.expert_parallel_size)
    engine = build_engine(model, cfg.train, spec, device, lr=stage.lr.peak)
    engine.train()
    return engine, balancing_routers


def build_callbacks(cfg: RunConfig, env: DistEnv, device: torch.device, state_dir: Path, until_step: int,
                    flops_per_token: float, meter,
                    sum_over_ranks: Callable[[list[float]], list[float]]) -> list[Callback]:
    """The segment's callbacks in priority order: energy on every rank, metrics and logs on rank 0."""
    peak = None
    if cfg.site.gpu_type and device.type == "cuda":
        peak = cfg.energy.gpu_types[cfg.site.gpu_type].peak_bf16_flops
    callbacks: list[Callback] = []
    if meter is not None:  # on every rank: its sum over ranks is a collective
        callbacks.append(EnergyCallback(meter, sum_over_ranks if env.world_size > 1 else None))
    if env.is_main:  # one log per stage: rank 0 computes the metrics it needs and writes it
        callbacks.append(ThroughputCallback(flops_per_token, peak, env.world_size))
        callbacks.append(MoEStatsCallback())
        callbacks.append(JsonlLogger(state_dir / METRICS_FILE))
        if cfg.train.tensorboard:
            callbacks.append(TensorBoardLogger(state_dir / "tensorboard"))
        callbacks.append(ProgressPrinter(cfg.train.log_every, until_step))
    return sorted(callbacks, key=lambda c: c.priority)

