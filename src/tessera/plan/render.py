"""The plan as Markdown (printed and plan.md), JSON (plan.json) and a config overlay (overlay.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tessera.config import RunConfig, to_dict
from tessera.io import write_json, write_text
from tessera.plan.planner import Plan, overlay

__all__ = ["plan_markdown", "write_plan", "PLAN_FILES"]

PLAN_FILES = ("plan.md", "plan.json", "overlay.yaml")


def _n(x: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _site_lines(plan: Plan) -> list[str]:
    s, a = plan.site, plan.assumptions
    return [
        f"Site **{s.name}** (configs/{s.preset}.yaml, profiles/{s.preset}): {s.gpus_per_node}x {s.gpu_type} "
        f"per node ({s.gpu.peak_bf16_flops / 1e12:g} TFLOP/s dense bf16, {s.gpu.board_power_w:g} W board), "
        f"PUE {s.pue:g}, grid {s.country} {s.grid_g_per_kwh:g} gCO2e/kWh, training segments of "
        f"{s.segment_limit_h:g} h (USR1 {s.signal_lead_s:g} s before), CPU jobs on `{s.cpu_partition}`.",
        "",
        f"Allocation **{plan.node_hours:,.0f} node-hours** over {plan.days:g} days. Reserve "
        f"{plan.reserve.total:,.0f} node-h: data preparation {plan.reserve.data_node_hours:,.0f} "
        f"({a.data_fraction:.0%}), evaluation {plan.reserve.eval_node_hours:,.0f} ({a.eval_fraction:.0%}), "
        f"failures and restarts {plan.reserve.failure_node_hours:,.0f} ({a.failure_fraction:.0%}). "
        f"Training: **{plan.train_node_hours:,.0f} node-h on {plan.nodes} nodes**.",
        "",
        f"Calibration: {plan.calibration}. Assumptions where not calibrated: MFU {a.mfu:.0%}, GPU power "
        f"{a.gpu_power_fraction:.0%} of board power, {a.node_overhead_w:g} W per node beside the GPUs.",
    ]


# Two tables of (header, cell) columns: the shape and its tokens; its time, compute and energy.
SHAPE_COLUMNS = (
    ("total", lambda s: _n(s.total_params)),
    ("active", lambda s: _n(s.active_params)),
    ("experts (top-k)", lambda s: f"{s.num_experts} ({s.top_k})"),
    ("tokens/s/GPU", lambda s: f"{s.throughput.tokens_per_s_per_gpu:,.0f}"),
    ("MFU", lambda s: f"{s.throughput.mfu:.0%}"),
    ("basis", lambda s: s.throughput.basis),
    ("tokens", lambda s: _n(s.tokens)),
    ("tokens/active param", lambda s: f"{s.tokens_per_active_param:,.0f}"),
    ("state GB/GPU", lambda s: f"{s.state_gb_per_gpu:.3g}"),
    ("Chinchilla L", lambda s: f"{s.chinchilla_loss:.3f}"),
    ("Krajewski L", lambda s: f"{s.krajewski_loss:.3f}"),
)
RUN_COLUMNS = (
    ("batch (seq)", lambda s: f"{s.tokens_per_step // s.seq_len:,}"),
    ("steps", lambda s: f"{s.steps:,}"),
    ("step s", lambda s: f"{s.step_time_s:.3g}"),
    ("ckpt every", lambda s: f"{s.checkpoint_every:,}"),
    ("segments", lambda s: str(s.segments)),
    ("nodes", lambda s: str(s.nodes)),
    ("wall days", lambda s: f"{s.wall_days:.1f}"),
    ("FLOP (6ND+attn)", lambda s: f"{s.training_flops:.3g}"),
    ("of which attn", lambda s: f"{s.attention_flops:.2g}"),
    ("kWh IT", lambda s: f"{s.it_kwh:,.0f}"),
    ("kWh at the wall", lambda s: f"{s.facility_kwh:,.0f}"),
    ("t CO2e", lambda s: f"{s.co2e_kg / 1000:,.1f}"),
)


def _table(plan: Plan, columns) -> list[str]:
    lines = [
        "| shape | " + " | ".join(h for h, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for s in plan.shapes:
        name = f"{s.name} **(chosen)**" if s.name == plan.chosen else s.name
        lines.append(f"| {name} | " + " | ".join(cell(s) for _, cell in columns) + " |")
    return lines


def plan_markdown(plan: Plan) -> str:
    chosen = plan.shape()
    lines = [
        f"# Plan: {plan.node_hours:,.0f} node-hours at {plan.site.name}",
        "",
        *_site_lines(plan),
        "",
        "## Candidate shapes",
        "",
        *_table(plan, SHAPE_COLUMNS),
        "",
        "## Tokens, time, compute and energy",
        "",
        *_table(plan, RUN_COLUMNS),
        "",
        f"## AI Act thresholds ({chosen.name}: {chosen.training_flops:.3g} FLOP)",
        "",
        *(f"- {line}" for line in chosen.thresholds),
        "",
        "## Notes",
        "",
        *(f"- {n}" for n in plan.notes),
        "",
        "## Laws and sources",
        "",
        *(f"- {c}" for c in plan.laws),
        "",
        "Chosen: the lowest Chinchilla loss at its tokens among the shapes that fit the GPU (override with "
        "--shape). Losses are in each paper's units: compare shapes with them, do not read them as this "
        "run's loss. Formulas: docs/plan.md.",
        "",
    ]
    return "\n".join(lines)


def write_plan(cfg: RunConfig, plan: Plan, out_dir: Path) -> str:
    """Write plan.md, plan.json and overlay.yaml under out_dir; return the Markdown."""
    text = plan_markdown(plan)
    write_json(out_dir / "plan.json", to_dict(plan))
    header = (
        f"# tessera plan --site {plan.site.preset} --node-hours {plan.node_hours:g} --days {plan.days:g}: "
        f"shape {plan.chosen} on {plan.nodes} nodes.\n"
        f"#   snakemake --profile profiles/{plan.site.preset} --configfile config.yaml "
        f"configs/{plan.site.preset}.yaml {out_dir / 'overlay.yaml'}\n"
        f"#   (set TESSERA_NODES={plan.nodes} for the profile)\n"
    )
    write_text(out_dir / "overlay.yaml", header + yaml.safe_dump(overlay(cfg, plan), sort_keys=False))
    write_text(out_dir / "plan.md", text)
    return text
