"""reports/energy.md, and energy.csv's columns, from the typed summary (energy.json) that report.py builds."""

from __future__ import annotations

from tessera.energy.summary import BudgetSection, EnergySummary, Figure, SiteEnergy

__all__ = ["summary_markdown", "JOB_CSV_COLUMNS"]

# energy.csv: a row per job of summary["jobs"].
JOB_CSV_COLUMNS = (
    "job",
    "rule",
    "stage",
    "status",
    "gpu_j",
    "gpu_kind",
    "cpu_j",
    "cpu_kind",
    "mem_j",
    "mem_kind",
    "total_j",
    "time_s",
    "gpu_hours",
    "num_gpus",
    "num_nodes",
    "num_ranks",
    "invocations",
    "failed_attempts",
    "benchmark_s",
    "max_rss_mb",
    "cpu_time_s",
    "mean_load",
    "sacct_j",
    "node_hours",
)


def _g(x) -> str:
    """A number for a table: 4 significant digits, blank when absent."""
    if x is None:
        return ""
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _figure_rows(figures: dict[str, Figure]) -> list[str]:
    return [f"| {name} | {_g(f.value)} | {f.unit} | {f.kind} | {f.method} |" for name, f in figures.items()]


def _totals_section(summary: EnergySummary) -> list[str]:
    figures = {k: v for k, v in vars(summary.totals).items() if v is not None}
    figures.update({f"component {k}": v for k, v in summary.components.items()})
    return [
        "## Totals",
        "",
        "| figure | value | unit | kind | method |",
        "|---|---|---|---|---|",
        *_figure_rows(figures),
    ]


def sites_section(sites: list[SiteEnergy]) -> list[str]:
    """One row per site the run's jobs ran at (a run moved from one site to another shows both)."""
    lines = [
        "## Sites",
        "",
        "| site | country | PUE | gCO2e/kWh | IT kWh | IT kind | kWh at the wall | kg CO2e | node-h | GPU-h "
        "| jobs | PUE from |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sites:
        lines.append(
            f"| {s.name} | {s.country} | {s.pue:g} | {_g(s.grid_g_per_kwh)} | {_g(s.it_kwh)} | {s.it_kind} | "
            f"{_g(s.facility_kwh)} | {_g(s.co2e_kg)} | {_g(s.node_hours)} | {_g(s.gpu_hours)} | {s.jobs} | "
            f"{s.pue_source} |"
        )
    return lines


def _hours(x: float | None) -> str:
    """Node-hours: one decimal for an allocation's thousands, three digits for a demo's fractions."""
    if x is None:
        return ""
    return f"{x:,.1f}" if x >= 10 else f"{x:.3g}"


def budget_section(budget: BudgetSection | None) -> list[str]:
    if budget is None:
        return []
    b = budget
    rows = [
        ("allocation", _hours(b.allocation_node_hours), "node-h"),
        (f"spent ({b.spent_source})", _hours(b.spent_node_hours), "node-h"),
        ("of which training", _hours(b.train_node_hours), "node-h"),
        (f"projected at completion ({b.projection_basis})", _hours(b.projected_node_hours), "node-h"),
        ("training steps done / planned", f"{b.steps_done} / {b.steps_total}", "steps"),
        ("IT energy, energy records", _g(b.it_kwh), "kWh"),
        ("energy, sacct ConsumedEnergy", _g(b.sacct_kwh), "kWh"),
        ("tokens/s, plan", _g(b.planned_tokens_per_s), "tokens/s"),
        ("tokens/s, measured", _g(b.measured_tokens_per_s), "tokens/s"),
    ]
    return [
        "## Budget",
        "",
        "| figure | value | unit |",
        "|---|---|---|",
        *(f"| {a} | {v} | {u} |" for a, v, u in rows),
        "",
        b.verdict,
    ]


def _stages_section(summary: EnergySummary) -> list[str]:
    lines = [
        "## Per stage",
        "",
        "| stage | jobs | GPU Wh | CPU Wh | memory Wh | total Wh | wall s | GPU-h |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary.stages:
        lines.append(
            f"| {s.stage} | {s.jobs} | {_g(s.gpu_j / 3600)} | {_g(s.cpu_j / 3600)} | {_g(s.mem_j / 3600)} | "
            f"{_g(s.total_j / 3600)} | {_g(s.time_s)} | {_g(s.gpu_hours)} |"
        )
    return lines


def _jobs_section(summary: EnergySummary) -> list[str]:
    lines = [
        "## Per job",
        "",
        "| job | rule | GPU Wh | CPU Wh | memory Wh | total Wh | wall s | node-h | benchmark s "
        "| max RSS MB | CPU time s | sacct Wh | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j in summary.jobs:
        sacct = _g(j.sacct_j / 3600) if j.sacct_j is not None else ""
        lines.append(
            f"| {j.job} | {j.rule} | {_g(j.gpu_j / 3600)} ({j.gpu_kind}) | "
            f"{_g(j.cpu_j / 3600)} ({j.cpu_kind}) | {_g(j.mem_j / 3600)} ({j.mem_kind}) | "
            f"{_g(j.total_j / 3600)} | {_g(j.time_s)} | {_g(j.node_hours)} | {_g(j.benchmark_s)} | "
            f"{_g(j.max_rss_mb)} | {_g(j.cpu_time_s)} | {sacct} | {j.status} |"
        )
    return lines


def _grids_section(summary: EnergySummary) -> list[str]:
    lines = [
        "## Emissions of this run at each grid",
        "",
        "Same facility energy, each country's annual average intensity.",
        "",
        "| country | gCO2e/kWh | kg CO2e |",
        "|---|---|---|",
    ]
    for g in summary.grids:
        mark = " (this site)" if g.site else ""
        lines.append(f"| {g.country}{mark} | {g.intensity_g_per_kwh:g} | {_g(g.co2e_kg)} |")
    return lines


def _slurm_section(summary: EnergySummary) -> list[str]:
    if not summary.slurm:
        return []
    lines = ["## SLURM", "", "| job id | sacct Wh | elapsed s | nodes | note |", "|---|---|---|---|---|"]
    for s in summary.slurm:
        wh = _g(s.consumed_j / 3600) if s.consumed_j else ""
        lines.append(f"| {s.job_id} | {wh} | {_g(s.elapsed_s)} | {_g(s.num_nodes)} | {s.note} |")
    return [*lines, ""]


PLOTS = [
    "## Plots",
    "",
    "![energy per stage](energy_stages.png)",
    "",
    "![power over time](energy_power.png)",
    "",
    "![joules per token](energy_per_token.png)",
    "",
    "![emissions per grid](energy_emissions.png)",
    "",
]
KINDS = (
    "Kinds: *measured* = hardware energy counters (NVML, RAPL); *estimated* = a model (CodeCarbon, "
    "PUE, grid averages, analytic FLOPs); *none* = not available here, counted as zero. "
    "Field meanings: docs/energy.md."
)


def summary_markdown(summary: EnergySummary) -> str:
    site = summary.site
    lines = [
        f"# Energy report: run `{summary.run}`",
        "",
        f"Site **{site.name}** ({site.country}, PUE {site.pue:g}, grid {site.grid_intensity_g_per_kwh:g} "
        f"gCO2e/kWh, GPU type {site.gpu_type or 'none'}).",
        "",
        *_totals_section(summary),
        "",
        *sites_section(summary.sites),
        "",
        *_stages_section(summary),
        "",
        *_jobs_section(summary),
        "",
        *_grids_section(summary),
        "",
        "## Training",
        "",
        "| figure | value | unit | kind | method |",
        "|---|---|---|---|---|",
        *_figure_rows(summary.training.figures()),
        "",
        *budget_section(summary.budget),
        *([""] if summary.budget else []),
        *_slurm_section(summary),
        *PLOTS,
    ]
    if summary.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in summary.notes), ""]
    return "\n".join([*lines, KINDS, ""])
