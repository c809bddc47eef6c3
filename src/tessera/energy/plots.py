"""The energy report's PNG plots. Each plot says in its title when its data is absent or estimated, so
a CPU-only run still gets four readable (non-empty) figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on compute nodes
import matplotlib.pyplot as plt  # noqa: E402

from tessera.energy.records import JobEnergy  # noqa: E402
from tessera.energy.summary import EnergySummary, SegmentEnergy  # noqa: E402
from tessera.io import atomic_path  # noqa: E402

__all__ = ["write_plots"]

COLORS = {"gpu": "#2a9d8f", "cpu": "#e9c46a", "mem": "#f4a261"}


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_stages(summary: EnergySummary, path: Path) -> None:
    stages = summary.stages
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(stages) + 1.8))
    names = [s.stage for s in stages]
    left = [0.0] * len(stages)
    for comp, label in (("gpu", "GPU"), ("cpu", "CPU"), ("mem", "memory")):
        values = [getattr(s, f"{comp}_j") / 3600 for s in stages]
        kind = summary.components[comp].kind
        ax.barh(names, values, left=left, color=COLORS[comp], label=f"{label} ({kind})")
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("energy, Wh (IT, before PUE)")
    ax.set_title(f"Energy per stage, run {summary.run}")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def plot_power(jobs: list[JobEnergy], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    has_gpu = any(job.num_gpus for job in jobs)
    key = "gpu_w" if has_gpu else "cpu_w"
    t0 = min(job.start_unix for job in jobs)
    seen_rules: set[str] = set()
    cmap = plt.get_cmap("tab10")
    rules = sorted({job.rule for job in jobs})
    for job in jobs:
        color = cmap(rules.index(job.rule) % 10)
        for series in job.series:
            metered = series.get("num_gpus") if key == "gpu_w" else series.get("node_main")
            if not series.get("t_s") or not metered:
                continue
            minutes = [(series["start_unix"] + t - t0) / 60 for t in series["t_s"]]
            label = job.rule if job.rule not in seen_rules else None
            seen_rules.add(job.rule)
            ax.plot(minutes, series[key], color=color, lw=1, label=label)
    if not seen_rules:
        _empty(ax, "no power samples in the energy logs")
    else:
        ax.set_xlabel("minutes since the run's first job")
        ax.set_ylabel("W")
        # From zero, with headroom: an offset axis would make a constant estimate look like noise.
        ax.set_ylim(0, max(ax.get_ylim()[1], 1.0) * 1.15)
        ax.legend(fontsize=7, ncol=2)
    ax.set_title(
        "GPU board power (NVML), per rank"
        if has_gpu
        else "No GPU measured (CPU-only run): node CPU + memory power, estimated"
    )
    _save(fig, path)


def plot_per_token(steps: list[dict], segments: list[SegmentEnergy], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    if steps:
        ax.plot(
            [s["global_step"] for s in steps],
            [s["j_per_token"] for s in steps],
            lw=1,
            label="per step, all ranks (trainer's metrics.jsonl)",
        )
    if segments:
        ax.plot(
            [s.global_step for s in segments],
            [s.j_per_token for s in segments],
            "o-",
            label="per training job (energy log / segment tokens)",
        )
    if not steps and not segments:
        _empty(ax, "no training jobs in the energy logs")
    else:
        ax.set_xlabel("optimizer step (all stages)")
        ax.set_ylabel("J per token (IT energy)")
        ax.legend(fontsize=8)
    ax.set_title("Joules per trained token")
    _save(fig, path)


def plot_emissions(summary: EnergySummary, path: Path) -> None:
    grids = summary.grids
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(grids) + 1.8))
    colors = ["#e76f51" if g.site else "#8d99ae" for g in grids]
    ax.barh([g.country for g in grids], [g.co2e_kg * 1e3 for g in grids], color=colors)
    ax.set_xlabel("g CO2e (facility energy x annual grid intensity)")
    ax.set_title(f"This run at each grid (site {summary.site.country} highlighted)")
    _save(fig, path)


def write_plots(reports: Path, summary: EnergySummary, jobs: list[JobEnergy], steps: list[dict]) -> None:
    plot_stages(summary, reports / "energy_stages.png")
    plot_power(jobs, reports / "energy_power.png")
    plot_per_token(steps, summary.training.segments, reports / "energy_per_token.png")
    plot_emissions(summary, reports / "energy_emissions.png")
