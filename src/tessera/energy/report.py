"""The energy report: every job's energy log, Snakemake benchmark file and the training logs ->
`reports/energy.{md,csv,json}` and `reports/energy_*.png`.

`energy.json` is the typed record `tessera.energy.summary.EnergySummary` (the release, the budget and
the renderers read it); every figure in it is a `Figure`: `value`, `unit`, `kind` (measured / estimated
/ none / a mix like measured+estimated) and `method`. Its fields are described in docs/energy.md.
Each part of the summary has its own small builder below; `build_summary` only assembles them.
The inputs (tessera.energy.inputs) are files already on disk: the report can be rebuilt from the logs a
run left without rerunning any job.
"""

from __future__ import annotations

from tessera.config import RunConfig, to_dict
from tessera.energy.config import GpuType
from tessera.energy.inputs import (
    StageFlops,
    load_jobs,
    per_step_energy,
    read_benchmarks,
    read_training_metrics,
    stage_offsets,
    training_flops,
)
from tessera.energy.records import COMPONENTS, KWH_J, JobEnergy, SiteShare, combine_kinds
from tessera.energy.slurm import sacct_energies
from tessera.energy.summary import (
    EnergySummary,
    Figure,
    GridRow,
    JobRow,
    SacctRow,
    SegmentEnergy,
    SiteEnergy,
    SiteInfo,
    StageEnergy,
    StageFlopsRow,
    Totals,
    Training,
)
from tessera.io import write_csv, write_text
from tessera.layout import RunLayout

__all__ = [
    "write_report",
    "build_summary",
    "load_jobs",
    "read_benchmarks",
    "read_training_metrics",
    "per_step_energy",
    "sacct_rows",
    "site_rows",
    "REPORT_FILES",
]

REPORT_FILES = (
    "energy.md",
    "energy.csv",
    "energy.json",
    "energy_stages.png",
    "energy_power.png",
    "energy_per_token.png",
    "energy_emissions.png",
)


def _segment_energy(jobs: list[JobEnergy], cfg: RunConfig) -> list[SegmentEnergy]:
    """J per token of each training job (segment): its IT energy over the tokens of its steps."""
    stages = {s.name: s for s in cfg.train.stages}
    offsets = stage_offsets(cfg)
    by_stage: dict[str, list[tuple[int, JobEnergy]]] = {}
    for job in jobs:
        if job.rule != "train":
            continue
        # merge_job parsed the stage ("train/<stage>"); only the step is left in the job name.
        name, step = job.stage.removeprefix("train/"), job.job.rpartition("-")[2]
        if name in stages and step.isdigit():
            by_stage.setdefault(name, []).append((int(step), job))
    out = []
    for name, segments in by_stage.items():
        previous = 0
        for step, job in sorted(segments, key=lambda item: item[0]):
            tokens = (step - previous) * stages[name].tokens_per_step
            previous = step
            if tokens > 0:
                out.append(
                    SegmentEnergy(name, step, offsets[name] + step, tokens, job.total_j, job.total_j / tokens)
                )
    return sorted(out, key=lambda s: s.global_step)


def _kind_of(jobs: list[JobEnergy], comp: str) -> str:
    return combine_kinds({job.kinds[comp] for job in jobs}) if jobs else "none"


def _methods_of(jobs: list[JobEnergy], comp: str) -> str:
    return "; ".join(sorted({m for job in jobs for m in job.methods[comp]}))


def _it_kind(jobs: list[JobEnergy]) -> str:
    return combine_kinds({_kind_of(jobs, c) for c in COMPONENTS})


def sacct_rows(jobs: list[JobEnergy], enabled: bool = True) -> list[SacctRow]:
    """SLURM's own figures for every SLURM job id the records name (one sacct call)."""
    job_ids = list(dict.fromkeys(i for job in jobs for i in job.slurm_job_ids))
    answers = sacct_energies(job_ids) if enabled else {}
    rows = []
    for i in job_ids:
        answer = answers.get(i)
        if answer is None:
            rows.append(SacctRow(i, None, "sacct not queried"))
        else:
            rows.append(SacctRow(i, answer.consumed_j, answer.note, answer.elapsed_s, answer.num_nodes))
    return rows


def site_rows(cfg: RunConfig, jobs: list[JobEnergy]) -> list[SiteEnergy]:
    """One row per site the jobs ran at. The report's own site takes its PUE and country from the
    config (the current figures); another site's come from the records its jobs wrote there."""
    shares: dict[str, list[SiteShare]] = {}
    for job in jobs:
        for name, share in job.site_shares.items():
            shares.setdefault(name, []).append(share)
    rows = []
    for name, parts in shares.items():
        own = name == cfg.site.name
        country = cfg.site.country if own else parts[-1].country
        pue = cfg.site.pue if own else parts[-1].pue
        grid = cfg.energy.grid_intensity.get(country)
        it_kwh = sum(p.total_j for p in parts) / KWH_J
        rows.append(
            SiteEnergy(
                name=name,
                country=country,
                pue=pue,
                gpu_type=cfg.site.gpu_type if own else parts[-1].gpu_type,
                grid_g_per_kwh=grid,
                it_kwh=it_kwh,
                it_kind=combine_kinds(set().union(*(p.kinds for p in parts))),
                facility_kwh=it_kwh * pue,
                co2e_kg=it_kwh * pue * grid / 1e3 if grid is not None else None,
                node_hours=sum(p.node_hours for p in parts),
                gpu_hours=sum(p.gpu_hours for p in parts),
                jobs=len(parts),
                pue_source="config site.pue" if own else f"the energy records written at {name}",
            )
        )
    order = {name: i for i, name in enumerate(dict.fromkeys(s for job in jobs for s in job.site_shares))}
    return sorted(rows, key=lambda r: order[r.name])


def _job_row(job: JobEnergy, bench: dict[str, float], sacct: dict[str, SacctRow]) -> JobRow:
    slurm_j = [sacct[i].consumed_j for i in job.slurm_job_ids if sacct[i].consumed_j is not None]
    return JobRow(
        job=job.job,
        rule=job.rule,
        stage=job.stage,
        label=job.label,
        status=job.status,
        gpu_j=job.gpu_j,
        cpu_j=job.cpu_j,
        mem_j=job.mem_j,
        total_j=job.total_j,
        gpu_kind=job.kinds["gpu"],
        cpu_kind=job.kinds["cpu"],
        mem_kind=job.kinds["mem"],
        time_s=job.time_s,
        gpu_hours=job.gpu_hours,
        num_gpus=job.num_gpus,
        num_nodes=job.num_nodes,
        num_ranks=job.num_ranks,
        invocations=job.num_invocations,
        failed_attempts=job.failed_attempts,
        node_hours=job.node_hours,
        sites=list(job.site_shares),
        benchmark_s=bench.get("s"),
        max_rss_mb=bench.get("max_rss"),
        cpu_time_s=bench.get("cpu_time"),
        mean_load=bench.get("mean_load"),
        slurm_job_ids=job.slurm_job_ids,
        sacct_j=sum(slurm_j) if slurm_j else None,
    )


def stage_rows(jobs: list[JobEnergy]) -> list[StageEnergy]:
    stages: dict[str, StageEnergy] = {}
    for job in jobs:
        row = stages.setdefault(job.stage, StageEnergy(job.stage))
        row.jobs += 1
        for key in ("gpu_j", "cpu_j", "mem_j", "total_j", "time_s", "gpu_hours"):
            setattr(row, key, getattr(row, key) + getattr(job, key))
    return list(stages.values())


def grid_rows(cfg: RunConfig, facility_kwh: float) -> list[GridRow]:
    """This run's facility energy at each grid of energy.grid_intensity (the site marked)."""
    return [
        GridRow(country, g, facility_kwh * g / 1e3, country == cfg.site.country)
        for country, g in sorted(cfg.energy.grid_intensity.items(), key=lambda item: item[1])
    ]


def totals(cfg: RunConfig, jobs: list[JobEnergy], sites: list[SiteEnergy]) -> Totals:
    it_j = sum(job.total_j for job in jobs)
    measured_j = sum(getattr(job, f"{c}_j") for job in jobs for c in COMPONENTS if job.kinds[c] == "measured")
    facility_kwh = sum(s.facility_kwh for s in sites)
    co2e = sum(s.co2e_kg or 0.0 for s in sites)
    per_site = "; ".join(
        f"{s.name}: PUE {s.pue:g}, {s.country} {s.grid_g_per_kwh:g} gCO2e/kWh"
        if s.grid_g_per_kwh is not None
        else f"{s.name}: PUE {s.pue:g}, {s.country} no grid"
        for s in sites
    )
    out = Totals(
        it_kwh=Figure(it_j / KWH_J, "kWh", _it_kind(jobs), "sum of GPU, CPU and memory energy of every job"),
        it_measured_kwh=Figure(measured_j / KWH_J, "kWh", "measured", "the measured components only"),
        it_estimated_kwh=Figure((it_j - measured_j) / KWH_J, "kWh", "estimated", "the estimated components"),
        facility_kwh=Figure(facility_kwh, "kWh", "estimated", f"IT energy x each site's PUE ({per_site})"),
        co2e_kg=Figure(
            co2e,
            "kg CO2e",
            "estimated",
            f"facility energy x energy.grid_intensity of each site's country, annual average ({per_site})",
        ),
        gpu_hours=Figure(
            sum(j.gpu_hours for j in jobs), "GPU-h", "measured", "per GPU, wall time of the rank metering it"
        ),
        wall_time_s=Figure(
            max(j.end_unix for j in jobs) - min(j.start_unix for j in jobs),
            "s",
            "measured",
            "first job's start to last job's end",
        ),
        job_time_s=Figure(sum(j.time_s for j in jobs), "s", "measured", "sum of the jobs' wall times"),
        node_hours=Figure(
            sum(j.node_hours for j in jobs),
            "node-h",
            "measured",
            "per invocation, nodes that wrote energy records x its wall time",
        ),
    )
    intensities = [j.codecarbon_intensity_g_per_kwh for j in jobs if j.codecarbon_intensity_g_per_kwh]
    if intensities:
        out.codecarbon_intensity_g_per_kwh = Figure(
            sum(intensities) / len(intensities),
            "gCO2e/kWh",
            "estimated",
            f"CodeCarbon's offline table for {cfg.site.country}",
        )
    return out


def components(jobs: list[JobEnergy]) -> dict[str, Figure]:
    return {
        comp: Figure(
            sum(getattr(j, f"{comp}_j") for j in jobs) / KWH_J,
            "kWh",
            _kind_of(jobs, comp),
            _methods_of(jobs, comp),
        )
        for comp in COMPONENTS
    }


def training(
    cfg: RunConfig, jobs: list[JobEnergy], step_energy: list[dict], flops: list[StageFlops]
) -> Training:
    """Training FLOPs, energy, and energy per FLOP against the GPU's floor."""
    train_jobs = [job for job in jobs if job.rule == "train"]
    gpu_j = sum(job.gpu_j for job in train_jobs)
    it_j = sum(job.total_j for job in train_jobs)
    kind = _it_kind(train_jobs)
    gpu_kind = _kind_of(train_jobs, "gpu")
    total_flops = sum(f.flops for f in flops if f.flops is not None)
    tokens = sum(f.tokens for f in flops)
    gpu_type: GpuType | None = cfg.energy.gpu_types.get(cfg.site.gpu_type) if cfg.site.gpu_type else None
    floor = gpu_type.floor_j_per_flop if gpu_type else None
    per_flop = gpu_j / total_flops if total_flops and gpu_j else None
    return Training(
        tokens=Figure(
            tokens,
            "tokens",
            "computed" if tokens else "none",
            "published checkpoint step x stage batch_size x seq_len (every sequence is packed to seq_len)",
        ),
        flops=Figure(
            total_flops or None,
            "FLOP",
            "estimated" if total_flops else "none",
            "analytic count (tessera.model.config.train_flops_per_token): "
            + "; ".join(f"{f.stage}: {f.note}" for f in flops),
        ),
        energy_it_kwh=Figure(it_j / KWH_J, "kWh", kind, "sum of the train jobs' GPU + CPU + memory energy"),
        energy_gpu_kwh=Figure(gpu_j / KWH_J, "kWh", gpu_kind, _methods_of(train_jobs, "gpu")),
        tokens_per_kwh=Figure(
            tokens / (it_j / KWH_J) if it_j and tokens else None,
            "tokens/kWh",
            kind if it_j else "none",
            "trained tokens over the train jobs' IT energy",
        ),
        # The GPU energy is measured, the FLOPs are the analytic estimate: the quotient is as good as both.
        gpu_j_per_flop=Figure(
            per_flop,
            "J/FLOP",
            combine_kinds({gpu_kind, "estimated"}) if per_flop else "none",
            "train jobs' GPU energy over the estimated training FLOPs",
        ),
        floor_j_per_flop=Figure(
            floor,
            "J/FLOP",
            "estimated" if floor else "none",
            f"board power / peak dense bf16 FLOP/s of energy.gpu_types[{cfg.site.gpu_type}]"
            if gpu_type
            else "no GPU type at this site",
        ),
        ratio_to_floor=Figure(
            per_flop / floor if per_flop and floor else None,
            "x",
            "estimated" if per_flop and floor else "none",
            "GPU J/FLOP over the floor (1 = every joule at peak throughput)",
        ),
        per_stage=[StageFlopsRow(f.stage, f.steps, f.tokens, f.flops_per_token, f.flops) for f in flops],
        steps_with_energy=len(step_energy),
        segments=_segment_energy(jobs, cfg),
    )


def notes(
    cfg: RunConfig, jobs: list[JobEnergy], benchmarks: dict, sacct: list[SacctRow], sites: list[SiteEnergy]
) -> list[str]:
    """What is missing or worth knowing, in plain sentences."""
    out = []
    elsewhere = [s for s in sites if s.name != cfg.site.name]
    if elsewhere:
        out.append(
            f"Some jobs ran at site(s) {', '.join(s.name for s in elsewhere)}: their facility energy and "
            f"CO2e use the PUE and country recorded there (section Sites), not site {cfg.site.name}'s."
        )
    if any(s.grid_g_per_kwh is None for s in sites):
        missing = ", ".join(s.country for s in sites if s.grid_g_per_kwh is None)
        out.append(f"No energy.grid_intensity for {missing}: those sites' CO2e is not counted.")
    if not sacct:
        out.append("No job ran under SLURM (no SLURM_JOB_ID): no sacct ConsumedEnergy to compare with.")
    missing_bench = [job.job for job in jobs if job.job not in benchmarks]
    if missing_bench:
        out.append(f"No Snakemake benchmark file for: {', '.join(missing_bench)} (run outside Snakemake?).")
    train_gpu_j = sum(job.gpu_j for job in jobs if job.rule == "train")
    if cfg.site.gpu_type is None:
        out.append("site.gpu_type is null (CPU-only site): no hardware floor for energy per FLOP.")
    elif not train_gpu_j:
        out.append("Training jobs measured no GPU energy: energy per FLOP is not compared with the floor.")
    return out


def build_summary(
    cfg: RunConfig,
    jobs: list[JobEnergy],
    benchmarks: dict[str, dict[str, float]],
    step_energy: list[dict],
    flops: list[StageFlops],
    query_sacct: bool = True,
) -> EnergySummary:
    """The content of energy.json; `step_energy` is per_step_energy's list. `query_sacct`: ask sacct
    about the jobs' SLURM ids (their rows are the summary's `slurm`)."""
    site = cfg.site
    sacct = sacct_rows(jobs, enabled=query_sacct)
    sites = site_rows(cfg, jobs)
    by_id = {row.job_id: row for row in sacct}
    facility = sum(s.facility_kwh for s in sites)
    return EnergySummary(
        run=cfg.run.name,
        site=SiteInfo(
            site.name, site.country, site.pue, site.gpu_type, cfg.energy.grid_intensity[site.country]
        ),
        totals=totals(cfg, jobs, sites),
        components=components(jobs),
        stages=stage_rows(jobs),
        jobs=[_job_row(job, benchmarks.get(job.job, {}), by_id) for job in jobs],
        grids=grid_rows(cfg, facility),
        training=training(cfg, jobs, step_energy, flops),
        slurm=sacct,
        notes=notes(cfg, jobs, benchmarks, sacct, sites),
        sites=sites,
    )


def write_report(cfg: RunConfig, query_sacct: bool = True) -> EnergySummary:
    """Write reports/energy.{md,csv,json} and the PNG plots from the logs under cfg.out_dir."""
    from tessera.energy.plots import write_plots
    from tessera.energy.render import JOB_CSV_COLUMNS, summary_markdown
    from tessera.plan.budget import budget_section

    layout = RunLayout(cfg.out_dir)
    jobs = load_jobs(layout.energy_dir)
    stages = [s.name for s in cfg.train.stages]
    step_energy = per_step_energy(read_training_metrics(layout, stages), cfg)
    summary = build_summary(
        cfg,
        jobs,
        read_benchmarks(layout.benchmarks_dir),
        step_energy,
        training_flops(cfg, layout),
        query_sacct,
    )
    summary.budget = budget_section(cfg, jobs, summary.slurm)
    reports = layout.reports_dir
    write_plots(reports, summary, jobs, step_energy)
    write_csv(reports / "energy.csv", [to_dict(row) for row in summary.jobs], JOB_CSV_COLUMNS)
    summary.write(reports / "energy.json")
    write_text(reports / "energy.md", summary_markdown(summary))  # last: Snakemake's target of the rule
    t = summary.totals
    print(
        f"energy report: {len(jobs)} jobs at {len(summary.sites)} site(s), {t.it_kwh.value:.4g} kWh IT "
        f"({t.it_kwh.kind}), {t.co2e_kg.value:.4g} kg CO2e, -> {reports}/energy.md"
    )
    return summary
