"""Energy records: one JSON line per rank per job in `energy/<job>.jsonl`, and their merge into one
figure per job without double counting.

Every rank of a job appends its record with a single O_APPEND write, so ranks on one node (and on nodes
sharing a parallel file system) never interleave lines. Merging a job's records:
- records are grouped by `invocation` (the ranks of one launch share it; a retry has a new one);
- GPU energy: each (node, GPU UUID) counts once (two ranks that both saw one GPU would double it);
- CPU and memory energy: once per node, from the record of local rank 0 (others say "elsewhere");
- wall time: the span from the first rank's start to the last rank's end; GPU-hours: per GPU.
The record format is described in docs/energy.md.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tessera.errors import DataError

__all__ = [
    "RECORD_SCHEMA",
    "KWH_J",
    "COMPONENTS",
    "FAILED_DIR",
    "append_record",
    "failed_log",
    "unique_records",
    "read_records",
    "bin_samples",
    "JobEnergy",
    "SiteShare",
    "merge_job",
    "job_rule_and_stage",
    "combine_kinds",
]

RECORD_SCHEMA = 1
KWH_J = 3.6e6  # joules per kWh: records keep joules; CodeCarbon and the reports speak kWh
COMPONENTS = ("gpu", "cpu", "mem")
FAILED_DIR = "failed"
"""energy/failed/<job>.jsonl: records of failed attempts, kept apart because Snakemake deletes a failed
job's outputs (its energy log included), yet the energy was spent."""


def failed_log(path: Path) -> Path:
    """Where a failed attempt's record is also appended: energy/failed/<job>.jsonl."""
    return Path(path).parent / FAILED_DIR / Path(path).name


def unique_records(records: list[dict]) -> list[dict]:
    """Drop a record seen twice (a failed attempt's record in both the job's log and failed/)."""
    seen, out = set(), []
    for record in records:
        key = (record["invocation"], record["node"], record["rank"], record["start_unix"])
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


def append_record(path: Path, record: dict) -> None:
    """Append one record as one line with one write(2) on an O_APPEND descriptor (atomic per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # a partial write would corrupt the log; never seen on local or Lustre
            raise OSError(f"{path}: short write of an energy record ({written} of {len(line)} bytes)")
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict]:
    """All records of one job file; a truncated last line (a killed writer) is skipped, not fatal."""
    records = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise DataError(
                f"{path}:{number}: not a JSON energy record; delete the file and rerun its job"
            ) from None
        if record.get("schema") != RECORD_SCHEMA:
            raise DataError(
                f"{path}:{number}: energy record schema {record.get('schema')!r}, expected "
                f"{RECORD_SCHEMA}; rerun the job with this tessera version"
            )
        records.append(record)
    return records


def bin_samples(t_s: list[float], gpu_w: list[float], cpu_w: list[float], max_samples: int) -> dict:
    """Power samples averaged into at most `max_samples` bins of equal count (energy is preserved
    to within the bins' rounding, shapes of long jobs are kept); ms and 10 mW precision keep a
    record of every rank small enough for one append."""
    n = len(t_s)
    series = {"t_s": t_s, "gpu_w": gpu_w, "cpu_w": cpu_w}
    if n > max_samples:
        bounds = [(b * n // max_samples, (b + 1) * n // max_samples) for b in range(max_samples)]
        series = {key: [sum(v[lo:hi]) / (hi - lo) for lo, hi in bounds] for key, v in series.items()}
    digits = {"t_s": 3, "gpu_w": 2, "cpu_w": 2}
    return {key: [round(x, digits[key]) for x in values] for key, values in series.items()}


def job_rule_and_stage(job: str) -> tuple[str, str]:
    """(rule, stage) of a job name: 'train-stable-000050' -> ('train', 'train/stable'),
    'tokenize-ita-train' -> ('tokenize', 'tokenize'), 'prepare_data' -> ('prepare_data', 'prepare_data')."""
    rule = job.split("-", 1)[0]
    if rule == "train" and job.count("-") >= 2:
        return rule, f"train/{job.split('-', 1)[1].rsplit('-', 1)[0]}"
    return rule, rule


def combine_kinds(kinds: set[str]) -> str:
    """One label for figures summed from parts: 'measured', 'estimated', 'none' or 'measured+estimated'."""
    kinds = kinds - {"elsewhere"}
    informative = kinds - {"none"}
    if not informative:
        return "none"
    return "+".join(sorted(informative))


@dataclass
class SiteShare:
    """The part of a job spent at one site (a retry may run at another site than the first attempt)."""

    country: str
    pue: float
    gpu_type: str | None
    total_j: float = 0.0
    node_hours: float = 0.0
    gpu_hours: float = 0.0
    kinds: set[str] = field(default_factory=set)
    """Kinds of the components its records metered (measured, estimated, none)."""


@dataclass
class JobEnergy:
    """One job's merged figures (IT energy, joules)."""

    job: str
    label: str
    rule: str
    stage: str
    gpu_j: float = 0.0
    cpu_j: float = 0.0
    mem_j: float = 0.0
    kinds: dict[str, str] = field(default_factory=dict)
    """Per component: measured, estimated, none or a mix."""
    methods: dict[str, list[str]] = field(default_factory=dict)
    time_s: float = 0.0
    """Wall time, summed over invocations (retries)."""
    start_unix: float = 0.0
    end_unix: float = 0.0
    gpu_hours: float = 0.0
    num_gpus: int = 0
    num_nodes: int = 0
    num_ranks: int = 0
    num_invocations: int = 0
    status: str = "ok"
    """Status of the latest attempt ('ok' or 'error: <Exception>')."""
    failed_attempts: int = 0
    codecarbon_intensity_g_per_kwh: float | None = None
    slurm_job_ids: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    """Site names the records were written at (normally one)."""
    site_shares: dict[str, SiteShare] = field(default_factory=dict)
    """Per site name: what the invocations launched there used (from each record's `site`)."""
    node_hours: float = 0.0
    """Sum over invocations of the nodes that wrote records x the invocation's wall time."""
    series: list[dict] = field(default_factory=list)
    """Power samples of each record: {node, rank, start_unix, t_s, gpu_w, cpu_w} (cpu_w on node mains)."""

    @property
    def total_j(self) -> float:
        return self.gpu_j + self.cpu_j + self.mem_j


def _add_site_share(
    job: JobEnergy, group: list[dict], joules: float, node_hours: float, gpu_hours: float
) -> None:
    """Count one invocation (its records `group`) at the site they name (the ranks of one launch share a
    site), with the kinds of what they metered."""
    site = group[0]["site"]
    share = job.site_shares.setdefault(
        site["name"], SiteShare(site["country"], float(site["pue"]), site.get("gpu_type"))
    )
    share.total_j += joules
    share.node_hours += node_hours
    share.gpu_hours += gpu_hours
    share.kinds |= {r[comp]["kind"] for r in group for comp in COMPONENTS} - {"elsewhere"}


def _note_record(
    out: JobEnergy, record: dict, kinds: dict[str, set[str]], methods: dict[str, set[str]], intensities: list
) -> None:
    """What one rank's record says besides its joules: kinds and methods, site, SLURM id, power samples."""
    for comp in COMPONENTS:
        part = record[comp]
        if part["kind"] != "elsewhere":
            kinds[comp].add(part["kind"])
            methods[comp].add(part["method"])
    if record.get("codecarbon") and record["codecarbon"].get("intensity_g_per_kwh") is not None:
        intensities.append(record["codecarbon"]["intensity_g_per_kwh"])
    if record["site"]["name"] not in out.sites:
        out.sites.append(record["site"]["name"])
    if record.get("slurm") and record["slurm"]["job_id"] not in out.slurm_job_ids:
        out.slurm_job_ids.append(record["slurm"]["job_id"])
    out.series.append(
        {
            "node": record["node"],
            "rank": record["rank"],
            "start_unix": record["start_unix"],
            "node_main": record["cpu"]["kind"] != "elsewhere",
            "num_gpus": len(record["gpu"]["devices"]),
            **record.get("samples", {}),
        }
    )


def _invocation_joules(
    group: list[dict],
) -> tuple[dict[tuple[str, str], tuple[float, float]], dict[str, tuple[float, float]]]:
    """One invocation's joules without double counting: per (node, GPU uuid) the largest reading and
    record time over its ranks, per node the CPU and memory joules of its local rank 0."""
    gpu_j: dict[tuple[str, str], tuple[float, float]] = {}  # (node, uuid) -> (joules, record time)
    node_j: dict[str, tuple[float, float]] = {}  # node -> (cpu J, mem J) from its local rank 0
    for record in group:
        node = record["node"]
        for device in record["gpu"]["devices"]:
            key = (node, device["uuid"])
            previous = gpu_j.get(key, (0.0, 0.0))
            gpu_j[key] = (max(previous[0], device["j"]), max(previous[1], record["time_s"]))
        if record["cpu"]["kind"] != "elsewhere":
            previous = node_j.get(node, (0.0, 0.0))
            node_j[node] = (max(previous[0], record["cpu"]["j"]), max(previous[1], record["mem"]["j"]))
    return gpu_j, node_j


def merge_job(job: str, records: list[dict]) -> JobEnergy:
    """Merge the records of one job file (any number of ranks, nodes and invocations)."""
    if not records:
        raise DataError(f"energy/{job}.jsonl has no records; rerun the job (its meter did not finish)")
    rule, stage = job_rule_and_stage(job)
    out = JobEnergy(job=job, label=records[0].get("label", ""), rule=rule, stage=stage)
    kinds: dict[str, set[str]] = defaultdict(set)
    methods: dict[str, set[str]] = defaultdict(set)
    intensities: list[float] = []
    by_invocation: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_invocation[record["invocation"]].append(record)
    nodes_seen: set[str] = set()
    latest_start = float("-inf")
    gpus_seen: set[tuple[str, str]] = set()
    for group in by_invocation.values():
        for record in group:
            _note_record(out, record, kinds, methods, intensities)
            nodes_seen.add(record["node"])
        gpu_j, node_j = _invocation_joules(group)
        group_j = sum(j for j, _ in gpu_j.values()) + sum(c + m for c, m in node_j.values())
        group_gpu_hours = sum(t for _, t in gpu_j.values()) / 3600
        out.gpu_j += sum(j for j, _ in gpu_j.values())
        out.gpu_hours += group_gpu_hours
        out.cpu_j += sum(c for c, _ in node_j.values())
        out.mem_j += sum(m for _, m in node_j.values())
        gpus_seen |= set(gpu_j)
        start = min(r["start_unix"] for r in group)
        end = max(r["end_unix"] for r in group)
        out.time_s += end - start
        group_node_hours = len({r["node"] for r in group}) * (end - start) / 3600
        out.node_hours += group_node_hours
        _add_site_share(out, group, group_j, group_node_hours, group_gpu_hours)
        out.start_unix = start if out.num_invocations == 0 else min(out.start_unix, start)
        out.end_unix = max(out.end_unix, end)
        out.num_ranks = max(out.num_ranks, len({r["rank"] for r in group}))
        out.num_invocations += 1
        failed = [r["status"] for r in group if r.get("status", "ok") != "ok"]
        out.failed_attempts += bool(failed)
        if start >= latest_start:
            latest_start, out.status = start, failed[0] if failed else "ok"
    out.num_gpus = len(gpus_seen)
    out.num_nodes = len(nodes_seen)
    out.kinds = {comp: combine_kinds(kinds[comp]) for comp in COMPONENTS}
    out.methods = {comp: sorted(methods[comp]) for comp in COMPONENTS}
    if intensities:
        out.codecarbon_intensity_g_per_kwh = sum(intensities) / len(intensities)
    return out
