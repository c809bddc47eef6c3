"""Builders of energy records and run configs for the energy tests (records as the meter writes them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.config import RunConfig, RunSection, SiteConfig
from tessera.energy.config import EnergyConfig
from tessera.energy.records import RECORD_SCHEMA
from tessera.train.config import StageConfig, TrainConfig


def record(
    job: str,
    *,
    node: str = "n1",
    rank: int = 0,
    local_rank: int = 0,
    world_size: int = 1,
    invocation: str = "inv-1",
    gpus: dict[str, float] | None = None,
    cpu_j: float = 0.0,
    mem_j: float = 0.0,
    start: float = 1000.0,
    time_s: float = 10.0,
    gpu_w: float = 0.0,
    cpu_w: float = 0.0,
    slurm_job_id: str | None = None,
    status: str = "ok",
) -> dict:
    """One rank's record; `gpus` maps GPU UUID -> joules (measured); CPU/memory only on local rank 0."""
    gpus = gpus or {}
    node_main = local_rank == 0
    samples_t = [0.0, time_s / 2, time_s]
    return {
        "schema": RECORD_SCHEMA,
        "job": job,
        "label": job.split("-")[0],
        "status": status,
        "invocation": invocation,
        "node": node,
        "rank": rank,
        "local_rank": local_rank,
        "world_size": world_size,
        "start_unix": start,
        "end_unix": start + time_s,
        "time_s": time_s,
        "gpu": {
            "j": sum(gpus.values()),
            "kind": "measured" if gpus else "none",
            "method": "NVML counter" if gpus else "no NVML",
            "devices": [
                {"index": i, "uuid": u, "name": "H100", "j": j, "kind": "measured"}
                for i, (u, j) in enumerate(gpus.items())
            ],
        },
        "cpu": {
            "j": cpu_j if node_main else 0.0,
            "kind": "estimated" if node_main else "elsewhere",
            "method": "CodeCarbon" if node_main else "counted once per node, by local rank 0",
        },
        "mem": {
            "j": mem_j if node_main else 0.0,
            "kind": "estimated" if node_main else "elsewhere",
            "method": "CodeCarbon" if node_main else "counted once per node, by local rank 0",
        },
        "codecarbon": {"emissions_kg": 0.0, "intensity_g_per_kwh": 330.7, "country": "ITA", "version": "3"}
        if node_main
        else None,
        "site": {"name": "test", "country": "ITA", "pue": 1.0, "gpu_type": None},
        "slurm": {"job_id": slurm_job_id, "step_id": "0", "node_list": node} if slurm_job_id else None,
        "samples": {"t_s": samples_t, "gpu_w": [gpu_w] * 3, "cpu_w": [cpu_w] * 3},
    }


@pytest.fixture
def make_record():
    return record


@pytest.fixture
def run_config(tmp_path: Path):
    """A RunConfig with the sections the energy report reads (run, site, energy, train), under tmp_path."""

    def build(*, pue: float = 1.0, gpu_type: str | None = None, stages=(("stable", 4),)) -> RunConfig:
        train = TrainConfig(
            stages=[
                StageConfig(name=name, seq_len=8, batch_size=2, mixture={"ita": 1.0}, steps=steps)
                for name, steps in stages
            ],
            checkpoint_every=2,
        )
        return RunConfig(
            run=RunSection(name="energy-test", results_dir=tmp_path / "results"),
            site=SiteConfig(name="test", country="ITA", pue=pue, gpu_type=gpu_type),
            data=None,
            tokenizer=None,
            model=None,
            train=train,
            eval=None,
            energy=EnergyConfig(),
            release=None,
        )

    return build


def _write_powercap(root: Path, package_uj: int, dram_uj: int | None = None, max_uj: int = 10**9) -> None:
    """A /sys/class/powercap layout: socket zone intel-rapl:0 and its dram subzone intel-rapl:0:0."""
    for zone, name, value in (("intel-rapl:0", "package-0", package_uj), ("intel-rapl:0:0", "dram", dram_uj)):
        if value is None:
            continue
        (root / zone).mkdir(parents=True, exist_ok=True)
        (root / zone / "name").write_text(name + "\n")
        (root / zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
        (root / zone / "energy_uj").write_text(f"{value}\n")


@pytest.fixture
def powercap():
    """Writes a /sys/class/powercap tree (the kernel's RAPL files) under a folder: (root, package_uj, ...)."""
    return _write_powercap
