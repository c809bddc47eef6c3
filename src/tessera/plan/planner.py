"""`tessera plan`: a site and an allocation -> the plan record (plan.json), its table (plan.md) and the
config overlay that runs the chosen shape (plan/overlay.yaml).

    tessera plan --site leonardo --node-hours 300000 --days 60 [--nodes N] [--shape NAME]

The site's facts come from configs/<site>.yaml, the energy tables and profiles/<site>/ (plan.site).
Throughput is the calibration's (`tessera calibrate` on the site's GPU type, plan/calibration.json) where
there is one for a shape, else the FLOPs per token at an assumed MFU; the plan labels which.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from tessera.config import RunConfig, to_dict
from tessera.errors import ConfigError, DataError
from tessera.model.config import ModelSection, build_model_config
from tessera.plan.compute import (
    Assumptions,
    Reserve,
    ShapePlan,
    Throughput,
    assumed_throughput,
    chinchilla_note,
    plan_shape,
    reserve_for,
    tokens_for_node_hours,
)
from tessera.plan.flops import flops_per_token
from tessera.plan.laws import CITATIONS
from tessera.plan.shapes import CANDIDATES
from tessera.plan.site import SiteRecord

__all__ = [
    "PLAN_SCHEMA",
    "Plan",
    "make_plan",
    "candidate_sections",
    "read_calibration",
    "overlay",
    "batch_for",
]

PLAN_SCHEMA = 1
RUN_SHAPE = "run"
"""The config's own model section, planned beside the candidates."""


@dataclass
class Plan:
    site: SiteRecord
    node_hours: float
    days: float
    nodes: int
    reserve: Reserve
    train_node_hours: float
    assumptions: Assumptions
    shapes: list[ShapePlan]
    chosen: str
    laws: list[str]
    notes: list[str]
    calibration: str
    created_utc: str
    schema_version: int = PLAN_SCHEMA
    chosen_section: dict = field(default_factory=dict)
    """The chosen shape's `model:` section (preset and overrides), as the overlay writes it."""

    def shape(self, name: str | None = None) -> ShapePlan:
        return next(s for s in self.shapes if s.name == (name or self.chosen))


def candidate_sections(cfg: RunConfig, names: list[str] | None) -> dict[str, ModelSection]:
    """The shapes to plan: the config's own model ('run') and the candidates, or those named."""
    known = {RUN_SHAPE: cfg.model, **CANDIDATES}
    if not names:
        # The run's own model once: under its candidate name when it is one.
        same = any(to_dict(section) == to_dict(cfg.model) for section in CANDIDATES.values())
        return dict(CANDIDATES) if same else known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--shapes {','.join(unknown)}: not a shape; shapes: {', '.join(known)}")
    return {n: known[n] for n in names}


def read_calibration(path: Path, gpu_type: str | None) -> dict[str, Throughput]:
    """Per shape, the calibrated throughput on this GPU type (none if the file is absent or another GPU's)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not JSON ({err}); rerun `snakemake calibrate`") from None
    if data.get("gpu_type") != gpu_type:
        return {}
    return {
        s["name"]: Throughput(s["tokens_per_s_per_gpu"], s["mfu"], s["watts_per_gpu"], "calibrated")
        for s in data.get("shapes", [])
        if s.get("tokens_per_s_per_gpu") and s.get("mfu") and s.get("watts_per_gpu")
    }


MAX_STAGE_STEPS = 999_999
"""Checkpoints are step-NNNNNN (six digits: the workflow's wildcard constraint), so a stage has fewer
than a million steps; a larger token budget gets a larger batch (more gradient accumulation)."""


def max_total_steps(cfg: RunConfig) -> int:
    """Most steps over all stages such that the longest stage, in the config's proportions, stays
    within MAX_STAGE_STEPS."""
    steps = [s.num_steps for s in cfg.train.stages]
    return int(MAX_STAGE_STEPS * sum(steps) / max(steps)) - len(steps)


def batch_for(batch_size: int, ranks: int, micro_batch_size: int) -> int:
    """The config's batch, rounded up to whole micro-batches on every rank (ranks x micro x accumulation)."""
    unit = ranks * micro_batch_size
    return math.ceil(batch_size / unit) * unit


def _nodes(train_node_hours: float, days: float, nodes: int | None) -> int:
    if nodes is not None:
        if nodes < 1:
            raise ConfigError(f"--nodes {nodes}: must be at least 1")
        return nodes
    return max(1, math.ceil(train_node_hours / (days * 24)))


def _plan_one(
    cfg: RunConfig,
    site: SiteRecord,
    name: str,
    section: ModelSection,
    calibrated: Throughput | None,
    train_node_hours: float,
    nodes: int,
    a: Assumptions,
) -> ShapePlan:
    """One shape: its throughput (calibrated or assumed) and a batch that keeps stages under a million
    steps, then the arithmetic of plan_shape."""
    stage = cfg.train.stages[0]
    model = build_model_config(section, cfg.tokenizer.vocab_size)
    seq_len = min(stage.seq_len, model.max_seq_len)
    flops = flops_per_token(model, seq_len)
    throughput = calibrated or assumed_throughput(site, flops, a)
    tokens = tokens_for_node_hours(train_node_hours, site, throughput)
    wanted = max(stage.batch_size, math.ceil(tokens / seq_len / max_total_steps(cfg)))
    batch_size = batch_for(wanted, nodes * site.gpus_per_node, cfg.train.micro_batch_size)
    return plan_shape(
        name,
        model,
        flops,
        throughput,
        site,
        train_node_hours,
        nodes,
        batch_size * seq_len,
        seq_len,
        a,
        cfg.train.expert_parallel_size,
    )


def make_plan(
    cfg: RunConfig,
    site: SiteRecord,
    node_hours: float,
    days: float = 60.0,
    nodes: int | None = None,
    shapes: list[str] | None = None,
    chosen: str | None = None,
    calibration: Path | None = None,
    assumptions: Assumptions | None = None,
) -> Plan:
    if node_hours <= 0 or days <= 0:
        raise ConfigError(f"--node-hours {node_hours} and --days {days} must be positive")
    a = assumptions or Assumptions()
    reserve = reserve_for(node_hours, a)
    train_node_hours = node_hours - reserve.total
    num_nodes = _nodes(train_node_hours, days, nodes)
    calibrated = read_calibration(calibration, site.gpu_type) if calibration else {}
    sections = candidate_sections(cfg, shapes)
    planned = [
        _plan_one(cfg, site, name, section, calibrated.get(name), train_node_hours, num_nodes, a)
        for name, section in sections.items()
    ]
    pick = chosen or _choose(planned, site)
    if pick not in sections:
        raise ConfigError(f"--shape {pick}: not among the planned shapes ({', '.join(sections)})")
    notes = _notes(planned, days, num_nodes, site, calibrated)
    return Plan(
        site=site,
        node_hours=node_hours,
        days=days,
        nodes=num_nodes,
        reserve=reserve,
        train_node_hours=train_node_hours,
        assumptions=a,
        shapes=planned,
        chosen=pick,
        laws=list(CITATIONS),
        notes=notes,
        calibration=f"shapes calibrated in {calibration}" if calibrated else "none, all throughput assumed",
        created_utc=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        chosen_section=to_dict(sections[pick]),
    )


STATE_MEMORY_FRACTION = 0.6
"""A shape fits when its model state takes at most this share of a GPU's memory: the rest is for
activations (checkpointed), communication buffers and fragmentation (ASSUMPTION)."""


def _fits(shape: ShapePlan, site: SiteRecord) -> bool:
    memory = site.gpu.memory_gb
    return memory is None or shape.state_gb_per_gpu <= STATE_MEMORY_FRACTION * memory


def _choose(planned: list[ShapePlan], site: SiteRecord) -> str:
    """The lowest Chinchilla loss among the shapes that fit the GPU's memory (else the smallest shape)."""
    fitting = [s for s in planned if _fits(s, site)]
    if not fitting:
        return min(planned, key=lambda s: s.state_gb_per_gpu).name
    return min(fitting, key=lambda s: s.chinchilla_loss).name


def _notes(
    planned: list[ShapePlan], days: float, nodes: int, site: SiteRecord, calibrated: dict
) -> list[str]:
    out = [chinchilla_note(max(s.training_flops for s in planned))]
    wall = planned[0].wall_days
    if wall > days:
        out.append(
            f"{nodes} node(s) need {wall:.1f} days for the training node-hours, more than --days {days:g}"
        )
    if not calibrated:
        out.append(
            f"Throughput and power are ASSUMED (no calibration for {site.gpu_type}): run "
            "`snakemake calibrate` with the site's profile, then plan again."
        )
    too_big = [s.name for s in planned if not _fits(s, site)]
    if too_big:
        out.append(
            f"Model state over {STATE_MEMORY_FRACTION:.0%} of the GPU's {site.gpu.memory_gb:g} GB (no room "
            f"left for activations): {', '.join(too_big)}; not chosen unless named with --shape."
        )
    return out


def overlay(cfg: RunConfig, plan: Plan) -> dict:
    """A config overlay (layered over config.yaml + configs/<site>.yaml) that trains the chosen shape
    for the planned steps: the stages keep their proportions, segments fit the SLURM time limit."""
    shape = plan.shape()
    total = sum(s.num_steps for s in cfg.train.stages)
    stages, left = [], shape.steps
    for i, stage in enumerate(cfg.train.stages):
        last = i == len(cfg.train.stages) - 1
        steps = max(1, left) if last else max(1, round(shape.steps * stage.num_steps / total))
        left -= steps
        data = to_dict(stage)
        data.pop("tokens", None)
        data["steps"] = steps
        data["batch_size"] = shape.tokens_per_step // shape.seq_len
        stages.append(data)
    return {
        "site": {"allocation_node_hours": plan.node_hours},
        "model": plan.chosen_section,
        "train": {"checkpoint_every": shape.checkpoint_every, "stages": stages},
    }
