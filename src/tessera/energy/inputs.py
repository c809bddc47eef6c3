"""What the energy report reads from disk: every job's energy log, the Snakemake benchmark files, the
trainer's per-step metrics and the published checkpoints' step counts (for training FLOPs). Only files
already on disk are read, so the report can be rebuilt from the logs a run left."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from tessera.config import RunConfig
from tessera.energy.records import FAILED_DIR, JobEnergy, merge_job, read_records, unique_records
from tessera.errors import DataError
from tessera.layout import RunLayout

__all__ = [
    "load_jobs",
    "read_benchmarks",
    "read_training_metrics",
    "StageFlops",
    "training_flops",
    "per_step_energy",
    "stage_offsets",
]

BENCHMARK_COLUMNS = ("s", "max_rss", "cpu_time", "mean_load")


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
    offsets = stage_offsets(cfg)
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


def stage_offsets(cfg: RunConfig) -> dict[str, int]:
    """Steps before each stage: plots put all stages on one step axis."""
    offsets, total = {}, 0
    for stage in cfg.train.stages:
        offsets[stage.name] = total
        total += stage.num_steps
    return offsets
