"""The energy report: every job's energy log, Snakemake benchmark file and the training logs ->
`reports/energy.{md,csv,json}` and `reports/energy_*.png`.

`energy.json` is the machine-readable summary the release reads; every figure in it is a mapping with
`value`, `unit`, `kind` (measured / estimated / none / a mix like measured+estimated) and `method`.
Its fields are described in docs/energy.md. Only files already on disk are read: the report can be
rebuilt from the logs a run left without rerunning any job.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from tessera.config import RunConfig
from tessera.energy.config import GpuType
from tessera.energy.records import (
    COMPONENTS,
    FAILED_DIR,
    KWH_J,
    JobEnergy,
    combine_kinds,
    merge_job,
    read_records,
    unique_records,
)
from tessera.energy.slurm import sacct_energies
from tessera.errors import DataError
from tessera.io import write_csv, write_json, write_text
from tessera.layout import RunLayout

__all__ = [
    "write_report",
    "build_summary",
    "load_jobs",
    "read_benchmarks",
    "read_training_metrics",
    "per_step_energy",
    "REPORT_FILES",
    "SUMMARY_SCHEMA",
]

SUMMARY_SCHEMA = 1
REPORT_FILES = (
    "energy.md",
    "energy.csv",
    "energy.json",
    "energy_stages.png",
    "energy_power.png",
    "energy_per_token.png",
    "energy_emissions.png",
)
BENCHMARK_COLUMNS = ("s", "max_rss", "cpu_time", "mean_load")


def figure(value, unit: str, kind: str, method: str) -> dict:
    """One labelled number of energy.json."""
    return {"value": value, "unit": unit, "kind": kind, "method": method}


def load_jobs(energy_dir: Path) -> list[JobEnergy]:
    """Every job's merged record (failed attempts under energy/failed/ included), in start order."""
    if not energy_dir.is_dir():
        raise DataError(
            f"{energy_dir}: no energy logs; run the workflow's jobs first (each writes energy/<job>.jsonl)"
        )
    by_job: dict[str, list[dict]] = {}
    # Failed attempts first: a job's records then read in the order they were spent.
    for path in [*sorted((energy_dir / FAILED_DIR).glob("*.jsonl")), *sorted(energy_dir.glob("*.jsonl"))]:
        by_job.setdefault(path.stem, []).extend(read_records(path))
    jobs = [merge_job(job, unique_records(records)) for job, records in by_job.items()]
    if not jobs:
        raise DataError(f"{energy_dir}: no energy/<job>.jsonl files; run the workflow's jobs first")
    return sorted(jobs, key=lambda j: j.start_unix)


def read_benchmarks(benchmarks_dir: Path) -> dict[str, dict[str, float]]:
    """Snakemake `benchmark:` files (TSV: s, h:m:s, max_rss, ..., cpu_time), the last row of each, by job."""
    out: dict[str, dict[str, float]] = {}
    for path in sorted(benchmarks_dir.glob("*.tsv")) if benchmarks_dir.is_dir() else []:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]  # with `repeat()` the last repetition; Snakemake writes one row per repetition
        values = {}
        for column in BENCHMARK_COLUMNS:
            try:
                values[column] = float(row[column])
            except (KeyError, TypeError, ValueError):  # "NA" where psutil could not measure
                continue
        out[path.stem] = values
    return out


def read_training_metrics(layout: RunLayout, stages: list[str]) -> list[dict]:
    """Per-step training lines (stage, step, tokens_seen, energy_j, ...) from every published
    checkpoint's metrics.jsonl and the stage's state dir; one line per (stage, step), in stage order."""
    lines: dict[tuple[str, int], dict] = {}
    for stage in stages:
        sources = sorted((layout.root / "train" / stage).glob("step-*/metrics.jsonl"))
        sources.append(layout.state_dir(stage) / "metrics.jsonl")
        for path in sources:
            if not path.is_file():
                continue
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    line = json.loads(raw)
                except json.JSONDecodeError:
                    continue  # a line being written when the job was killed
                if isinstance(line, dict) and "step" in line:
                    lines[(stage, int(line["step"]))] = {**line, "stage": stage}
    order = {name: i for i, name in enumerate(stages)}
    return [lines[key] for key in sorted(lines, key=lambda k: (order[k[0]], k[1]))]


@dataclass
class StageFlops:
    stage: str
    steps: int
    tokens: int
    flops_per_token: float | None
    note: str

    @property
    def flops(self) -> float | None:
        return None if self.flops_per_token is None else self.flops_per_token * self.tokens


def training_flops(cfg: RunConfig, layout: RunLayout) -> list[StageFlops]:
    """FLOPs of each stage's trained tokens: train_flops_per_token(model, seq_len) x steps x tokens/step,
    with the model as saved in the stage's last published checkpoint."""
    from tessera.model.checkpoint import META_FILE, read_checkpoint_meta
    from tessera.model.config import train_flops_per_token

    out = []
    for stage in cfg.train.stages:
        metas = sorted((layout.root / "train" / stage.name).glob(f"step-*/{META_FILE}"))
        if not metas:
            out.append(StageFlops(stage.name, 0, 0, None, "no published checkpoint"))
            continue
        last = metas[-1].parent
        model, meta = read_checkpoint_meta(last)
        steps = int(meta["step"])
        out.append(
            StageFlops(
                stage.name,
                steps,
                steps * stage.tokens_per_step,
                train_flops_per_token(model, stage.seq_len),
                f"train_flops_per_token(model of {last.name}, seq_len={stage.seq_len})",
            )
        )
    return out


def per_step_energy(metrics: list[dict], cfg: RunConfig) -> list[dict]:
    """J per token of each logged step. The trainer sums each step's energy over all ranks before it
    logs, so `energy_j` is the whole job's and `energy_j_per_token` is over the whole step's tokens.
    A line without `energy_j_per_token` gives energy_j over the step's tokens."""
    tokens_per_step = {s.name: s.tokens_per_step for s in cfg.train.stages}
    offsets = _stage_offsets(cfg)
    out = []
    for line in metrics:
        if line["stage"] not in offsets:
            continue
        per_token = line.get("energy_j_per_token")
        if per_token is None and line.get("energy_j") is not None:
            per_token = line["energy_j"] / tokens_per_step[line["stage"]]
        if per_token is None:
            continue
        out.append(
            {
                "stage": line["stage"],
                "step": line["step"],
                "global_step": offsets[line["stage"]] + line["step"],
                "j_per_token": per_token,
            }
        )
    return out


def _stage_offsets(cfg: RunConfig) -> dict[str, int]:
    """Steps before each stage: plots put all stages on one step axis."""
    offsets, total = {}, 0
    for stage in cfg.train.stages:
        offsets[stage.name] = total
        total += stage.num_steps
    return offsets


def _segment_energy(jobs: list[JobEnergy], cfg: RunConfig) -> list[dict]:
    """J per token of each training job (segment): its IT energy over the tokens of its steps."""
    stages = {s.name: s for s in cfg.train.stages}
    offsets = _stage_offsets(cfg)
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
                    {
                        "stage": name,
                        "step": step,
                        "global_step": offsets[name] + step,
                        "tokens": tokens,
                        "energy_j": job.total_j,
                        "j_per_token": job.total_j / tokens,
                    }
                )
    return sorted(out, key=lambda s: s["global_step"])


def _kind_of(jobs: list[JobEnergy], comp: str) -> str:
    return combine_kinds({job.kinds[comp] for job in jobs}) if jobs else "none"


def _methods_of(jobs: list[JobEnergy], comp: str) -> str:
    return "; ".join(sorted({m for job in jobs for m in job.methods[comp]}))


def build_summary(
    cfg: RunConfig,
    jobs: list[JobEnergy],
    benchmarks: dict[str, dict[str, float]],
    step_energy: list[dict],
    flops: list[StageFlops],
    query_sacct: bool = True,
) -> dict:
    """The content of energy.json (and the figures the md/csv/plots show); `step_energy` is
    per_step_energy's list."""
    site, energy = cfg.site, cfg.energy
    pue = site.pue
    notes: list[str] = []
    it_j = sum(job.total_j for job in jobs)
    measured_j = sum(getattr(job, f"{c}_j") for job in jobs for c in COMPONENTS if job.kinds[c] == "measured")
    intensity = energy.grid_intensity[site.country]
    facility_kwh = it_j * pue / KWH_J
    kind_it = combine_kinds({_kind_of(jobs, c) for c in COMPONENTS})
    grid_method = f"energy.grid_intensity[{site.country}] = {intensity:g} gCO2e/kWh (annual average)"
    codecarbon_intensities = [
        j.codecarbon_intensity_g_per_kwh for j in jobs if j.codecarbon_intensity_g_per_kwh
    ]

    # SLURM's own figure per job, where the job ran under SLURM.
    job_ids = list(dict.fromkeys(i for job in jobs for i in job.slurm_job_ids))
    answers = sacct_energies(job_ids) if query_sacct else {}
    sacct: dict[str, dict] = {
        i: {
            "job_id": i,
            "consumed_j": answers[i].consumed_j if i in answers else None,
            "note": answers[i].note if i in answers else "sacct not queried",
        }
        for i in job_ids
    }
    elsewhere = sorted({s for job in jobs for s in job.sites} - {site.name})
    if elsewhere:
        notes.append(
            f"Some jobs ran at site(s) {', '.join(elsewhere)}, but this report applies site {site.name}'s "
            "PUE and grid to all of them: rerun the report with that site's config for those figures."
        )
    if not sacct:
        notes.append("No job ran under SLURM (no SLURM_JOB_ID): no sacct ConsumedEnergy to compare with.")

    job_rows = []
    for job in jobs:
        bench = benchmarks.get(job.job, {})
        slurm_j = [sacct[i]["consumed_j"] for i in job.slurm_job_ids if sacct[i]["consumed_j"] is not None]
        job_rows.append(
            {
                "job": job.job,
                "rule": job.rule,
                "stage": job.stage,
                "label": job.label,
                "status": job.status,
                "gpu_j": job.gpu_j,
                "cpu_j": job.cpu_j,
                "mem_j": job.mem_j,
                "total_j": job.total_j,
                "gpu_kind": job.kinds["gpu"],
                "cpu_kind": job.kinds["cpu"],
                "mem_kind": job.kinds["mem"],
                "time_s": job.time_s,
                "gpu_hours": job.gpu_hours,
                "num_gpus": job.num_gpus,
                "num_nodes": job.num_nodes,
                "num_ranks": job.num_ranks,
                "invocations": job.num_invocations,
                "failed_attempts": job.failed_attempts,
                "benchmark_s": bench.get("s"),
                "max_rss_mb": bench.get("max_rss"),
                "cpu_time_s": bench.get("cpu_time"),
                "mean_load": bench.get("mean_load"),
                "slurm_job_ids": job.slurm_job_ids,
                "sacct_j": sum(slurm_j) if slurm_j else None,
            }
        )
    missing_bench = [job.job for job in jobs if job.job not in benchmarks]
    if missing_bench:
        notes.append(f"No Snakemake benchmark file for: {', '.join(missing_bench)} (run outside Snakemake?).")

    stages: dict[str, dict] = {}
    for job in jobs:
        row = stages.setdefault(
            job.stage,
            {
                "stage": job.stage,
                "jobs": 0,
                "gpu_j": 0.0,
                "cpu_j": 0.0,
                "mem_j": 0.0,
                "total_j": 0.0,
                "time_s": 0.0,
                "gpu_hours": 0.0,
            },
        )
        row["jobs"] += 1
        for key in ("gpu_j", "cpu_j", "mem_j", "total_j", "time_s", "gpu_hours"):
            row[key] += getattr(job, key)

    grids = [
        {"country": c, "intensity_g_per_kwh": g, "co2e_kg": facility_kwh * g / 1e3, "site": c == site.country}
        for c, g in sorted(energy.grid_intensity.items(), key=lambda item: item[1])
    ]

    # Training: FLOPs and energy per FLOP against the GPU's floor.
    train_jobs = [job for job in jobs if job.rule == "train"]
    train_gpu_j = sum(job.gpu_j for job in train_jobs)
    train_it_j = sum(job.total_j for job in train_jobs)
    train_kind = combine_kinds({_kind_of(train_jobs, c) for c in COMPONENTS})
    total_flops = sum(f.flops for f in flops if f.flops is not None)
    tokens = sum(f.tokens for f in flops)
    gpu_type: GpuType | None = energy.gpu_types.get(site.gpu_type) if site.gpu_type else None
    floor = gpu_type.floor_j_per_flop if gpu_type else None
    flops_method = "; ".join(f"{f.stage}: {f.note}" for f in flops)
    per_flop_gpu = train_gpu_j / total_flops if total_flops and train_gpu_j else None
    if gpu_type is None:
        notes.append("site.gpu_type is null (CPU-only site): no hardware floor for energy per FLOP.")
    elif not train_gpu_j:
        notes.append("Training jobs measured no GPU energy: energy per FLOP is not compared with the floor.")
    segments = _segment_energy(jobs, cfg)
    training = {
        "tokens": figure(
            tokens,
            "tokens",
            "measured" if tokens else "none",
            "published checkpoint step x stage batch_size x seq_len",
        ),
        "flops": figure(
            total_flops or None,
            "FLOP",
            "estimated" if total_flops else "none",
            f"analytic count (tessera.model.config.train_flops_per_token): {flops_method}",
        ),
        "energy_it_kwh": figure(
            train_it_j / KWH_J,
            "kWh",
            train_kind,
            "sum of the train jobs' GPU + CPU + memory energy",
        ),
        "energy_gpu_kwh": figure(
            train_gpu_j / KWH_J, "kWh", _kind_of(train_jobs, "gpu"), _methods_of(train_jobs, "gpu")
        ),
        "tokens_per_kwh": figure(
            tokens / (train_it_j / KWH_J) if train_it_j and tokens else None,
            "tokens/kWh",
            train_kind if train_it_j else "none",
            "trained tokens over the train jobs' IT energy",
        ),
        "gpu_j_per_flop": figure(
            per_flop_gpu, "J/FLOP", _kind_of(train_jobs, "gpu"), "train jobs' GPU energy over training FLOPs"
        ),
        "floor_j_per_flop": figure(
            floor,
            "J/FLOP",
            "estimated" if floor else "none",
            f"board power / peak dense bf16 FLOP/s of energy.gpu_types[{site.gpu_type}]"
            if gpu_type
            else "no GPU type at this site",
        ),
        "ratio_to_floor": figure(
            per_flop_gpu / floor if per_flop_gpu and floor else None,
            "x",
            "estimated" if per_flop_gpu and floor else "none",
            "measured GPU J/FLOP over the floor (1 = every joule at peak throughput)",
        ),
        "per_stage": [
            {
                "stage": f.stage,
                "steps": f.steps,
                "tokens": f.tokens,
                "flops_per_token": f.flops_per_token,
                "flops": f.flops,
            }
            for f in flops
        ],
        "steps_with_energy": len(step_energy),
        "segments": segments,
    }

    components = {
        comp: figure(
            sum(getattr(job, f"{comp}_j") for job in jobs) / KWH_J,
            "kWh",
            _kind_of(jobs, comp),
            _methods_of(jobs, comp),
        )
        for comp in COMPONENTS
    }
    start = min(job.start_unix for job in jobs)
    end = max(job.end_unix for job in jobs)
    totals = {
        "it_kwh": figure(it_j / KWH_J, "kWh", kind_it, "sum of GPU, CPU and memory energy of every job"),
        "it_measured_kwh": figure(measured_j / KWH_J, "kWh", "measured", "the measured components only"),
        "it_estimated_kwh": figure(
            (it_j - measured_j) / KWH_J, "kWh", "estimated", "the estimated components"
        ),
        "facility_kwh": figure(facility_kwh, "kWh", "estimated", f"IT energy x site.pue ({pue:g})"),
        "co2e_kg": figure(
            facility_kwh * intensity / 1e3, "kg CO2e", "estimated", f"facility energy x {grid_method}"
        ),
        "gpu_hours": figure(
            sum(job.gpu_hours for job in jobs),
            "GPU-h",
            "measured",
            "per GPU, wall time of the rank metering it",
        ),
        "wall_time_s": figure(end - start, "s", "measured", "first job's start to last job's end"),
        "job_time_s": figure(sum(job.time_s for job in jobs), "s", "measured", "sum of the jobs' wall times"),
    }
    if codecarbon_intensities:
        mean_cc = sum(codecarbon_intensities) / len(codecarbon_intensities)
        totals["codecarbon_intensity_g_per_kwh"] = figure(
            mean_cc, "gCO2e/kWh", "estimated", f"CodeCarbon's offline table for {site.country}"
        )
    return {
        "schema": SUMMARY_SCHEMA,
        "run": cfg.run.name,
        "site": {
            "name": site.name,
            "country": site.country,
            "pue": pue,
            "gpu_type": site.gpu_type,
            "grid_intensity_g_per_kwh": intensity,
        },
        "totals": totals,
        "components": components,
        "stages": list(stages.values()),
        "jobs": job_rows,
        "grids": grids,
        "training": training,
        "slurm": list(sacct.values()),
        "notes": notes,
    }


def write_report(cfg: RunConfig, query_sacct: bool = True) -> dict:
    """Write reports/energy.{md,csv,json} and the PNG plots from the logs under cfg.out_dir."""
    from tessera.energy.plots import write_plots
    from tessera.energy.render import JOB_CSV_COLUMNS, summary_markdown

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
        query_sacct=query_sacct,
    )
    reports = layout.reports_dir
    write_plots(reports, summary, jobs, step_energy, summary["training"]["segments"])
    write_csv(reports / "energy.csv", summary["jobs"], JOB_CSV_COLUMNS)
    write_json(reports / "energy.json", summary)
    write_text(reports / "energy.md", summary_markdown(summary))  # last: Snakemake's target of the rule
    t = summary["totals"]
    print(
        f"energy report: {len(jobs)} jobs, {t['it_kwh']['value']:.4g} kWh IT ({t['it_kwh']['kind']}), "
        f"{t['co2e_kg']['value']:.4g} kg CO2e at {cfg.site.country}, -> {reports}/energy.md"
    )
    return summary
