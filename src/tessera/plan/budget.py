"""Budget tracking: what the run's jobs used (sacct's elapsed x nodes where SLURM accounted them, the
energy records elsewhere) against the allocation (`site.allocation_node_hours`, else plan/plan.json),
and the node-hours the rest of training will take. `tessera budget` prints it, the energy report has it
as a section, and the workflow's onstart warns when the projection exceeds the allocation."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tessera.config import RunConfig
from tessera.energy.records import KWH_J, JobEnergy
from tessera.energy.summary import BudgetSection, SacctRow
from tessera.errors import DataError, TesseraError
from tessera.layout import RunLayout
from tessera.plan.planner import PLAN_SCHEMA

__all__ = [
    "PlannedRun",
    "read_planned",
    "budget_section",
    "budget_status",
    "warn_if_over_allocation",
    "print_budget",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedRun:
    """What the budget needs of plan.json."""

    node_hours: float
    tokens_per_s: float
    """The chosen shape's tokens/s on the planned nodes."""
    nodes: int


def read_planned(path: Path) -> PlannedRun | None:
    """plan.json's allocation and planned throughput; None when there is no plan."""
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        if plan.get("schema_version") != PLAN_SCHEMA:
            raise KeyError(f"schema_version {plan.get('schema_version')!r}, expected {PLAN_SCHEMA}")
        shape = next(s for s in plan["shapes"] if s["name"] == plan["chosen"])
        per_gpu = shape["throughput"]["tokens_per_s_per_gpu"]
        nodes = int(plan["nodes"])
        return PlannedRun(float(plan["node_hours"]), per_gpu * plan["site"]["gpus_per_node"] * nodes, nodes)
    except (json.JSONDecodeError, KeyError, StopIteration, TypeError) as err:
        raise DataError(
            f"{path}: not a plan of this tessera version ({err!r}); rerun `tessera plan`"
        ) from None


def _spent(jobs: list[JobEnergy], sacct: list[SacctRow]) -> tuple[float, float, str]:
    """(all node-hours, training node-hours, source): sacct's where it has every attempt of a job."""
    by_id = {row.job_id: row for row in sacct}
    total = train = 0.0
    sources = set()
    for job in jobs:
        rows = [by_id.get(i) for i in job.slurm_job_ids]
        if rows and all(r is not None and r.elapsed_s is not None and r.num_nodes for r in rows):
            hours, source = sum(r.num_nodes * r.elapsed_s / 3600 for r in rows), "sacct elapsed x nodes"
        else:
            hours, source = job.node_hours, "energy records"
        sources.add(source)
        total += hours
        train += hours if job.rule == "train" else 0.0
    return total, train, " + ".join(sorted(sources)) or "no jobs yet"


def _steps_done(cfg: RunConfig, layout: RunLayout) -> dict[str, int]:
    """Per stage, the last published checkpoint's step (0 before the first)."""
    done = {}
    for stage in cfg.train.stages:
        steps = [
            int(p.name.removeprefix("step-"))
            for p in (layout.root / "train" / stage.name).glob("step-*")
            if p.name.removeprefix("step-").isdigit()
        ]
        done[stage.name] = max(steps, default=0)
    return done


def _assumed_tokens_per_s_per_node(cfg: RunConfig) -> float | None:
    """Before anything is measured: the model's FLOPs per token at the planner's assumed MFU."""
    from tessera.model.config import build_model_config, train_flops_per_token
    from tessera.plan.compute import Assumptions

    gpu = cfg.energy.gpu_types.get(cfg.site.gpu_type) if cfg.site.gpu_type else None
    if gpu is None or cfg.model is None or cfg.tokenizer is None:
        return None
    model = build_model_config(cfg.model, cfg.tokenizer.vocab_size)
    per_token = train_flops_per_token(model, cfg.train.stages[0].seq_len)
    # GPUs per node are the profile's; the config knows only ranks per local launch. 4 is both sites'.
    return 4 * gpu.peak_bf16_flops * Assumptions().mfu / per_token


def budget_section(cfg: RunConfig, jobs: list[JobEnergy], sacct: list[SacctRow]) -> BudgetSection:
    """The jobs' use against the allocation (when one is known) and the projection at completion."""
    layout = RunLayout(cfg.out_dir)
    planned = read_planned(layout.plan_dir / "plan.json")
    allocation = cfg.site.allocation_node_hours or (planned.node_hours if planned else None)
    spent, train, source = _spent(jobs, sacct)
    done = _steps_done(cfg, layout)
    stages = {s.name: s for s in cfg.train.stages}
    steps_done = sum(done.values())
    steps_total = sum(s.num_steps for s in stages.values())
    tokens_done = sum(step * stages[name].tokens_per_step for name, step in done.items())
    tokens_left = sum((s.num_steps - done[s.name]) * s.tokens_per_step for s in stages.values())
    train_s = sum(job.time_s for job in jobs if job.rule == "train")
    measured = tokens_done / train_s if tokens_done and train_s else None
    if steps_done and train:
        projected = spent + (steps_total - steps_done) * train / steps_done
        basis = "measured node-hours per published step"
    elif planned:
        projected = spent + tokens_left * planned.nodes / planned.tokens_per_s / 3600
        basis = "plan.json's tokens/s"
    elif per_node := _assumed_tokens_per_s_per_node(cfg):
        projected = spent + tokens_left / per_node / 3600
        basis = "assumed MFU of the site's GPU, 4 GPUs per node"
    else:
        projected, basis = None, "no throughput known (CPU site, no plan)"
    sacct_j = [r.consumed_j for r in sacct if r.consumed_j is not None]
    return BudgetSection(
        allocation_node_hours=allocation,
        spent_node_hours=spent,
        spent_source=source,
        train_node_hours=train,
        projected_node_hours=projected,
        projection_basis=basis,
        it_kwh=sum(job.total_j for job in jobs) / KWH_J,
        sacct_kwh=sum(sacct_j) / KWH_J if sacct_j else None,
        planned_tokens_per_s=planned.tokens_per_s if planned else None,
        measured_tokens_per_s=measured,
        steps_done=steps_done,
        steps_total=steps_total,
        verdict=_verdict(allocation, spent, projected),
    )


def _verdict(allocation: float | None, spent: float, projected: float | None) -> str:
    if allocation is None:
        projection = f"; projected at the end of training: {projected:,.1f} node-h" if projected else ""
        return (
            f"{spent:,.1f} node-h spent{projection}. No allocation to compare with: set "
            "site.allocation_node_hours or run `tessera plan`."
        )
    if projected is None:
        return f"{spent:,.1f} of {allocation:,.0f} node-h spent ({spent / allocation:.1%}); no projection."
    side = "EXCEEDS" if projected > allocation else "fits"
    return (
        f"{spent:,.1f} of {allocation:,.0f} node-h spent ({spent / allocation:.1%}); the projection at "
        f"the end of training, {projected:,.1f} node-h ({projected / allocation:.1%}), {side} the allocation "
        "(training only: evaluation still to run is not projected)."
    )


def budget_status(cfg: RunConfig, query_sacct: bool = True) -> BudgetSection:
    """The budget from what is on disk now (no energy logs yet: nothing spent)."""
    from tessera.energy.report import load_jobs, sacct_rows

    energy_dir = RunLayout(cfg.out_dir).energy_dir
    jobs = load_jobs(energy_dir) if any(energy_dir.glob("**/*.jsonl")) else []
    return budget_section(cfg, jobs, sacct_rows(jobs, enabled=query_sacct))


def warn_if_over_allocation(cfg: RunConfig) -> str | None:
    """The workflow's onstart: a warning when the projection exceeds the allocation (never an error:
    the allocation may be topped up, and a partial run is still worth its checkpoints)."""
    if cfg.site.allocation_node_hours is None:
        return None
    try:
        status = budget_status(cfg)
    except TesseraError as err:  # an unreadable log must not stop the run: say so and go on
        log.warning("tessera budget: no projection (%s)", err)
        return None
    if status.projected_node_hours is None or status.projected_node_hours <= status.allocation_node_hours:
        return None
    message = f"tessera budget: WARNING: {status.verdict} See `tessera budget` and docs/plan.md."
    log.warning(message)
    return message


def print_budget(cfg: RunConfig) -> BudgetSection:
    """`tessera budget`: the table the energy report's Budget section has."""
    from tessera.energy.render import budget_section as budget_lines

    status = budget_status(cfg)
    print("\n".join(budget_lines(status)))
    print(
        f"\nEnergy: {status.it_kwh:.4g} kWh IT from the energy records"
        + (
            f", {status.sacct_kwh:.4g} kWh from sacct ConsumedEnergy"
            if status.sacct_kwh
            else ", no sacct ConsumedEnergy"
        )
        + f"; projection basis: {status.projection_basis}."
    )
    return status
