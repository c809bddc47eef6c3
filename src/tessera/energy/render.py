"""reports/energy.md, and energy.csv's columns, from the summary dict (energy.json) that report.py builds."""

from __future__ import annotations

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
)


def _g(x) -> str:
    """A number for a table: 4 significant digits, blank when absent."""
    if x is None:
        return ""
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def summary_markdown(summary: dict) -> str:
    t, site, tr = summary["totals"], summary["site"], summary["training"]
    lines = [
        f"# Energy report: run `{summary['run']}`",
        "",
        f"Site **{site['name']}** ({site['country']}, PUE {site['pue']:g}, grid "
        f"{site['grid_intensity_g_per_kwh']:g} gCO2e/kWh, GPU type {site['gpu_type'] or 'none'}).",
        "",
        "## Totals",
        "",
        "| figure | value | unit | kind | method |",
        "|---|---|---|---|---|",
    ]
    for name, fig in [*t.items(), *(("component " + k, v) for k, v in summary["components"].items())]:
        lines.append(f"| {name} | {_g(fig['value'])} | {fig['unit']} | {fig['kind']} | {fig['method']} |")
    lines += [
        "",
        "## Per stage",
        "",
        "| stage | jobs | GPU Wh | CPU Wh | memory Wh | total Wh | wall s | GPU-h |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary["stages"]:
        lines.append(
            f"| {s['stage']} | {s['jobs']} | {_g(s['gpu_j'] / 3600)} | {_g(s['cpu_j'] / 3600)} | "
            f"{_g(s['mem_j'] / 3600)} | {_g(s['total_j'] / 3600)} | {_g(s['time_s'])} | "
            f"{_g(s['gpu_hours'])} |"
        )
    lines += [
        "",
        "## Per job",
        "",
        "| job | rule | GPU Wh | CPU Wh | memory Wh | total Wh | wall s | benchmark s | max RSS MB | "
        "CPU time s | sacct Wh | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j in summary["jobs"]:
        sacct = _g(j["sacct_j"] / 3600) if j["sacct_j"] is not None else ""
        lines.append(
            f"| {j['job']} | {j['rule']} | {_g(j['gpu_j'] / 3600)} ({j['gpu_kind']}) | "
            f"{_g(j['cpu_j'] / 3600)} ({j['cpu_kind']}) | {_g(j['mem_j'] / 3600)} ({j['mem_kind']}) | "
            f"{_g(j['total_j'] / 3600)} | {_g(j['time_s'])} | {_g(j['benchmark_s'])} | "
            f"{_g(j['max_rss_mb'])} | "
            f"{_g(j['cpu_time_s'])} | {sacct} | {j['status']} |"
        )
    lines += [
        "",
        "## Emissions of this run at each grid",
        "",
        "Same facility energy, each country's annual average intensity.",
        "",
        "| country | gCO2e/kWh | kg CO2e |",
        "|---|---|---|",
    ]
    for g in summary["grids"]:
        mark = " (this site)" if g["site"] else ""
        lines.append(f"| {g['country']}{mark} | {g['intensity_g_per_kwh']:g} | {_g(g['co2e_kg'])} |")
    lines += ["", "## Training", "", "| figure | value | unit | kind | method |", "|---|---|---|---|---|"]
    for name, fig in tr.items():
        if isinstance(fig, dict) and "value" in fig:
            lines.append(f"| {name} | {_g(fig['value'])} | {fig['unit']} | {fig['kind']} | {fig['method']} |")
    if summary["slurm"]:
        lines += ["", "## SLURM", "", "| job id | sacct Wh | note |", "|---|---|---|"]
        for s in summary["slurm"]:
            lines.append(
                f"| {s['job_id']} | {_g(s['consumed_j'] / 3600) if s['consumed_j'] else ''} | {s['note']} |"
            )
    lines += [
        "",
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
    if summary["notes"]:
        lines += ["## Notes", "", *(f"- {n}" for n in summary["notes"]), ""]
    lines += [
        "Kinds: *measured* = hardware energy counters (NVML, RAPL); *estimated* = a model (CodeCarbon, "
        "PUE, grid averages, analytic FLOPs); *none* = not available here, counted as zero. "
        "Field meanings: docs/energy.md.",
        "",
    ]
    return "\n".join(lines)
