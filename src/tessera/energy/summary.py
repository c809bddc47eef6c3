"""The energy report's summary as one typed record: `reports/energy.json`.

The report writes it, the release, the planner's budget and the renderers read it, all through these
dataclasses rather than nested dict keys. The JSON keeps the field names of schema 1 (`schema`,
`totals.it_kwh`, `training.flops`, ...) so that readers of the file stay valid, and adds
`schema_version` (checked on read), `sites` (one row per site the run's jobs ran at) and `budget`.
Field meanings: docs/energy.md.

    summary = EnergySummary.read(layout.reports_dir / "energy.json")
    summary.training.flops.value, summary.totals.co2e_kg.value, [s.name for s in summary.sites]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tessera.config import from_dict, to_dict
from tessera.errors import ConfigError, DataError
from tessera.io import write_json

__all__ = [
    "SCHEMA_VERSION",
    "Figure",
    "SiteInfo",
    "SiteEnergy",
    "Totals",
    "StageEnergy",
    "JobRow",
    "GridRow",
    "StageFlopsRow",
    "SegmentEnergy",
    "Training",
    "SacctRow",
    "BudgetSection",
    "EnergySummary",
]

SCHEMA_VERSION = 3
"""2: schema 1's fields plus `schema_version`, `sites` and `budget`; 3: `sites[].it_kind` and `gpu_type`, and
`training.tokens` is of kind `computed` (steps x batch x seq_len; 2 called it measured)."""


@dataclass
class Figure:
    """One labelled number: its unit, how it was obtained (kind) and the method."""

    value: float | None
    unit: str
    kind: str
    """measured / estimated / none / a mix like estimated+measured; computed for a count derived by a
    formula from the config (training tokens)."""
    method: str


@dataclass
class SiteInfo:
    """The site of the report's config (the one its totals are labelled with)."""

    name: str
    country: str
    pue: float
    gpu_type: str | None
    grid_intensity_g_per_kwh: float


@dataclass
class SiteEnergy:
    """What the run's jobs used at one site: a run continued elsewhere has one row per site."""

    name: str
    country: str
    pue: float
    gpu_type: str | None
    """site.gpu_type of the config the jobs ran with there (null: CPU only)."""
    grid_g_per_kwh: float | None
    """energy.grid_intensity[country]; null when the table lacks the country."""
    it_kwh: float
    it_kind: str
    """How this site's IT energy was obtained: measured, estimated, none or a mix (as Figure.kind)."""
    facility_kwh: float
    """IT energy x this site's PUE."""
    co2e_kg: float | None
    node_hours: float
    """Sum over invocations of nodes x wall time, from the energy records."""
    gpu_hours: float
    jobs: int
    pue_source: str
    """Where the PUE came from: the report's config (its own site) or the jobs' records (others)."""


@dataclass
class Totals:
    it_kwh: Figure
    it_measured_kwh: Figure
    it_estimated_kwh: Figure
    facility_kwh: Figure
    co2e_kg: Figure
    gpu_hours: Figure
    wall_time_s: Figure
    job_time_s: Figure
    node_hours: Figure
    codecarbon_intensity_g_per_kwh: Figure | None = None


@dataclass
class StageEnergy:
    stage: str
    jobs: int = 0
    gpu_j: float = 0.0
    cpu_j: float = 0.0
    mem_j: float = 0.0
    total_j: float = 0.0
    time_s: float = 0.0
    gpu_hours: float = 0.0


@dataclass
class JobRow:
    """One job of energy.csv."""

    job: str
    rule: str
    stage: str
    label: str
    status: str
    gpu_j: float
    cpu_j: float
    mem_j: float
    total_j: float
    gpu_kind: str
    cpu_kind: str
    mem_kind: str
    time_s: float
    gpu_hours: float
    num_gpus: int
    num_nodes: int
    num_ranks: int
    invocations: int
    failed_attempts: int
    node_hours: float
    sites: list[str]
    benchmark_s: float | None
    max_rss_mb: float | None
    cpu_time_s: float | None
    mean_load: float | None
    slurm_job_ids: list[str]
    sacct_j: float | None


@dataclass
class GridRow:
    country: str
    intensity_g_per_kwh: float
    co2e_kg: float
    site: bool


@dataclass
class StageFlopsRow:
    stage: str
    steps: int
    tokens: int
    flops_per_token: float | None
    flops: float | None


@dataclass
class SegmentEnergy:
    stage: str
    step: int
    global_step: int
    tokens: int
    energy_j: float
    j_per_token: float


@dataclass
class Training:
    tokens: Figure
    flops: Figure
    energy_it_kwh: Figure
    energy_gpu_kwh: Figure
    tokens_per_kwh: Figure
    gpu_j_per_flop: Figure
    floor_j_per_flop: Figure
    ratio_to_floor: Figure
    per_stage: list[StageFlopsRow]
    steps_with_energy: int
    segments: list[SegmentEnergy]

    def figures(self) -> dict[str, Figure]:
        return {name: value for name, value in vars(self).items() if isinstance(value, Figure)}


@dataclass
class SacctRow:
    job_id: str
    consumed_j: float | None
    note: str
    elapsed_s: float | None = None
    num_nodes: int | None = None


@dataclass
class BudgetSection:
    """What was spent against the allocation (tessera.plan.budget)."""

    allocation_node_hours: float | None
    """site.allocation_node_hours, else plan/plan.json's; null when neither is known."""
    spent_node_hours: float
    spent_source: str
    """sacct (elapsed x nodes) where every job has it, else the energy records, or a mix."""
    train_node_hours: float
    projected_node_hours: float | None
    """Spent plus the rest of training: at the measured node-hours per step once a segment is published,
    before that at the plan's (or the assumed MFU's) tokens/s; null when neither is known."""
    projection_basis: str
    it_kwh: float
    """IT energy of every job from the energy records (meter)."""
    sacct_kwh: float | None
    """sacct ConsumedEnergy summed over the jobs that have it (null when none has)."""
    planned_tokens_per_s: float | None
    measured_tokens_per_s: float | None
    steps_done: int
    steps_total: int
    verdict: str


@dataclass
class EnergySummary:
    """The content of reports/energy.json."""

    run: str
    site: SiteInfo
    totals: Totals
    components: dict[str, Figure]
    stages: list[StageEnergy]
    jobs: list[JobRow]
    grids: list[GridRow]
    training: Training
    slurm: list[SacctRow]
    notes: list[str]
    sites: list[SiteEnergy] = field(default_factory=list)
    budget: BudgetSection | None = None
    schema_version: int = SCHEMA_VERSION
    schema: int = SCHEMA_VERSION
    """The schema-1 name of the version, kept for readers of older files."""

    def to_json(self) -> dict:
        data = to_dict(self)
        if data["totals"]["codecarbon_intensity_g_per_kwh"] is None:
            del data["totals"]["codecarbon_intensity_g_per_kwh"]  # schema 1 left it out when absent
        return data

    def write(self, path: Path) -> None:
        write_json(Path(path), self.to_json())

    @classmethod
    def from_json(cls, data: dict, where: str = "energy.json") -> EnergySummary:
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            found = data.get("schema_version") if isinstance(data, dict) else None
            raise DataError(
                f"{where}: energy summary schema_version {found!r}, expected {SCHEMA_VERSION}; rebuild it "
                "with this tessera version (snakemake energy_report, or tessera energy report)"
            )
        try:
            return from_dict(cls, data, where)
        except ConfigError as err:
            raise DataError(
                f"{err}; rebuild the energy report with this tessera version (snakemake energy_report)"
            ) from None

    @classmethod
    def read(cls, path: Path) -> EnergySummary:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: no energy summary; build it with `snakemake energy_report`") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not JSON ({err}); rebuild it with `snakemake energy_report`") from None
        return cls.from_json(data, str(path))
