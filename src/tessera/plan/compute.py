"""The plan's arithmetic: node-hours -> FLOPs -> tokens -> steps, segments, nodes, wall time, energy and
CO2e, for each candidate shape. Pure functions of typed inputs; docs/plan.md gives the formulas.

    hardware FLOP/s per node = gpus_per_node x peak_bf16_flops x MFU
    tokens/s per node        = hardware FLOP/s per node / hardware FLOPs per token
    training node-hours      = allocation - reserve (data preparation, evaluation, failures)
    tokens                   = training node-hours x 3600 x tokens/s per node
    reported FLOPs           = tokens x (6 x active parameters + attention)      (AI Act thresholds)
    IT kWh                   = node-hours x (gpus_per_node x W per GPU + node overhead W) / 1000
    kWh at the wall          = IT kWh x PUE;  kg CO2e = kWh at the wall x grid gCO2e/kWh / 1000
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tessera.model.config import ModelConfig, num_active_params, num_params
from tessera.plan.flops import FlopsPerToken, threshold_verdicts
from tessera.plan.laws import CHINCHILLA, CHINCHILLA_TOKENS_PER_PARAM, KRAJEWSKI
from tessera.plan.site import SiteRecord

__all__ = [
    "Assumptions",
    "Reserve",
    "Throughput",
    "ShapePlan",
    "node_hours_for_flops",
    "tokens_for_node_hours",
    "it_kwh",
    "checkpoint_every_for",
    "plan_shape",
    "reserve_for",
]

SEGMENT_STARTUP_S = 600.0
"""Per segment: loading the engine state and the first steps' compile/warm-up (ASSUMPTION, ~10 min)."""


@dataclass(frozen=True)
class Assumptions:
    """What the plan assumes where nothing was measured; each is printed with the plan."""

    mfu: float = 0.35
    """Model FLOPs utilisation before calibration (the figure configs/leonardo.yaml sizes segments with)."""
    gpu_power_fraction: float = 0.85
    """Mean GPU power over board power during training, before calibration."""
    node_overhead_w: float = 400.0
    """CPU, memory and network of a node beside its GPUs (one or two server CPUs, 512 GB, 4 NICs)."""
    eval_fraction: float = 0.04
    """Share of the allocation for evaluating checkpoints."""
    failure_fraction: float = 0.10
    """Share for failed and repeated work: node failures, preemptions, steps lost since the last save."""
    data_fraction: float = 0.01
    """Share for data preparation, tokenizer training and tokenization: CPU jobs, which the profiles send to
    the CPU partitions (DCGP, GPP); it stays in the plan for sites that bill them to the same award."""


@dataclass
class Reserve:
    data_node_hours: float
    eval_node_hours: float
    failure_node_hours: float

    @property
    def total(self) -> float:
        return self.data_node_hours + self.eval_node_hours + self.failure_node_hours


def reserve_for(node_hours: float, a: Assumptions) -> Reserve:
    return Reserve(
        node_hours * a.data_fraction, node_hours * a.eval_fraction, node_hours * a.failure_fraction
    )


@dataclass
class Throughput:
    """One GPU's training speed for a shape: calibrated on the site's GPU, or assumed."""

    tokens_per_s_per_gpu: float
    mfu: float
    watts_per_gpu: float
    basis: str
    """'calibrated' (tessera calibrate on this GPU type) or 'assumed' (MFU and power assumptions)."""


@dataclass
class ShapePlan:
    name: str
    total_params: int
    active_params: int
    num_experts: int
    top_k: int
    granularity: float
    seq_len: int
    flops_per_token_dense: float
    flops_per_token_attention: float
    flops_per_token_hardware: float
    throughput: Throughput
    train_node_hours: float
    nodes: int
    wall_days: float
    tokens: float
    tokens_per_step: int
    steps: int
    step_time_s: float
    checkpoint_every: int
    segments: int
    training_flops: float
    """Reported training compute: tokens x (6 x active parameters + attention)."""
    attention_flops: float
    thresholds: list[str]
    it_kwh: float
    facility_kwh: float
    co2e_kg: float
    tokens_per_active_param: float
    chinchilla_loss: float
    krajewski_loss: float
    state_gb_per_gpu: float
    """Model state per GPU: bf16 weights and gradients (experts split over the EP group) and fp32
    master weights and Adam moments sharded over all ranks (ZeRO-2); activations come on top."""


def node_hours_for_flops(hardware_flops: float, site: SiteRecord, mfu: float) -> float:
    """Node-hours to compute `hardware_flops` at `mfu` of the site's peak."""
    return hardware_flops / (site.gpus_per_node * site.gpu.peak_bf16_flops * mfu * 3600)


def tokens_for_node_hours(node_hours: float, site: SiteRecord, throughput: Throughput) -> float:
    return node_hours * 3600 * site.gpus_per_node * throughput.tokens_per_s_per_gpu


def it_kwh(node_hours: float, gpus_per_node: int, watts_per_gpu: float, node_overhead_w: float) -> float:
    """IT energy of node-hours at the given power (before PUE)."""
    return node_hours * (gpus_per_node * watts_per_gpu + node_overhead_w) / 1000


def checkpoint_every_for(site: SiteRecord, step_time_s: float) -> int:
    """Steps per segment that fit the SLURM time limit, less the USR1 lead and start-up, rounded down
    to two significant digits (1234 -> 1200) so the published steps read well."""
    usable_s = site.segment_limit_h * 3600 - site.signal_lead_s - SEGMENT_STARTUP_S
    steps = max(1, int(usable_s // step_time_s))
    if steps < 100:
        return steps
    scale = 10 ** (len(str(steps)) - 2)
    return steps // scale * scale


def state_gb_per_gpu(model: ModelConfig, ranks: int, expert_parallel_size: int) -> float:
    experts = model.num_moe_layers * model.moe.num_experts * 3 * model.d_model * model.moe.expert_hidden
    total = num_params(model)
    local = total - experts + experts / expert_parallel_size
    return (4 * local + 12 * total / ranks) / 1e9


def assumed_throughput(site: SiteRecord, flops: FlopsPerToken, a: Assumptions) -> Throughput:
    return Throughput(
        tokens_per_s_per_gpu=site.gpu.peak_bf16_flops * a.mfu / flops.hardware,
        mfu=a.mfu,
        watts_per_gpu=site.gpu.board_power_w * a.gpu_power_fraction,
        basis="assumed",
    )


def plan_shape(
    name: str,
    model: ModelConfig,
    flops: FlopsPerToken,
    throughput: Throughput,
    site: SiteRecord,
    train_node_hours: float,
    nodes: int,
    tokens_per_step: int,
    seq_len: int,
    a: Assumptions,
    expert_parallel_size: int = 1,
) -> ShapePlan:
    """Everything the allocation buys with this shape on `nodes` nodes."""
    tokens = tokens_for_node_hours(train_node_hours, site, throughput)
    steps = max(1, int(tokens // tokens_per_step))
    tokens = steps * tokens_per_step  # whole steps only
    step_time_s = tokens_per_step / (nodes * site.gpus_per_node * throughput.tokens_per_s_per_gpu)
    every = min(checkpoint_every_for(site, step_time_s), steps)
    it = it_kwh(train_node_hours, site.gpus_per_node, throughput.watts_per_gpu, a.node_overhead_w)
    active = num_active_params(model)
    non_embedding_active = active - model.vocab_size * model.d_model * (1 if model.tie_embeddings else 2)
    granularity = 4 * model.d_model / model.moe.expert_hidden
    wall_days = train_node_hours / nodes / 24
    return ShapePlan(
        name=name,
        total_params=num_params(model),
        active_params=active,
        num_experts=model.moe.num_experts,
        top_k=model.moe.top_k,
        granularity=granularity,
        seq_len=seq_len,
        flops_per_token_dense=flops.dense,
        flops_per_token_attention=flops.attention,
        flops_per_token_hardware=flops.hardware,
        throughput=throughput,
        train_node_hours=train_node_hours,
        nodes=nodes,
        wall_days=wall_days,
        tokens=tokens,
        tokens_per_step=tokens_per_step,
        steps=steps,
        step_time_s=step_time_s,
        checkpoint_every=every,
        segments=math.ceil(steps / every),
        training_flops=tokens * flops.reported,
        attention_flops=tokens * flops.attention,
        thresholds=threshold_verdicts(tokens * flops.reported),
        it_kwh=it,
        facility_kwh=it * site.pue,
        co2e_kg=it * site.pue * site.grid_g_per_kwh / 1000,
        tokens_per_active_param=tokens / active,
        chinchilla_loss=CHINCHILLA.loss(active, tokens),
        krajewski_loss=KRAJEWSKI.loss(non_embedding_active, tokens, granularity),
        state_gb_per_gpu=state_gb_per_gpu(model, nodes * site.gpus_per_node, expert_parallel_size),
    )


def chinchilla_note(flops: float) -> str:
    n_opt, d_opt = CHINCHILLA.optimal(flops)
    return (
        f"Chinchilla (Approach 3) compute-optimal for {flops:.3g} FLOP: {n_opt / 1e9:.3g}B active parameters "
        f"on {d_opt / 1e12:.3g}T tokens; the 20-tokens-per-parameter rule gives "
        f"{math.sqrt(flops / 6 / CHINCHILLA_TOKENS_PER_PARAM) / 1e9:.3g}B on "
        f"{math.sqrt(flops / 6 * CHINCHILLA_TOKENS_PER_PARAM) / 1e12:.3g}T tokens"
    )
