"""SLURM's own figures for a job: `sacct`'s ConsumedEnergy, recorded next to the meter's, and the
allocation's elapsed time and node count, which the budget (tessera.plan.budget) counts as node-hours.

SLURM reports energy only where the site runs an `acct_gather_energy` plugin (IPMI or Redfish: whole
node, GPUs included; RAPL: CPU only), so the figure is a cross-check whose scope depends on the site,
never a replacement for the meter. It is queried at report time, when every step of the job has ended.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

__all__ = ["SacctEnergy", "sacct_energies"]

SACCT_FORMAT = "JobID,ConsumedEnergyRaw,ElapsedRaw,NNodes"


@dataclass
class SacctEnergy:
    job_id: str
    consumed_j: float | None
    """ConsumedEnergyRaw of the job allocation, joules; None when sacct gives no figure."""
    note: str
    """Why there is no figure, or what the figure covers."""
    elapsed_s: float | None = None
    """ElapsedRaw of the allocation, seconds; None when sacct gives none."""
    num_nodes: int | None = None
    """NNodes of the allocation."""

    @property
    def node_hours(self) -> float | None:
        """What the allocation is charged: nodes x elapsed (node-exclusive jobs, as training is)."""
        if self.elapsed_s is None or not self.num_nodes:
            return None
        return self.num_nodes * self.elapsed_s / 3600


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _parse(job_id: str, rows: list[list[str]]) -> SacctEnergy:
    allocation = next((r for r in rows if r[0] == job_id), None)
    if allocation is None or len(allocation) < 2:
        return SacctEnergy(job_id, None, f"sacct has no record of job {job_id}")
    consumed = _number(allocation[1])
    elapsed = _number(allocation[2]) if len(allocation) > 2 else None
    nodes = _number(allocation[3]) if len(allocation) > 3 else None
    usage = {"elapsed_s": elapsed, "num_nodes": int(nodes) if nodes else None}
    if not consumed:
        # 0 or empty: the cluster runs no acct_gather_energy plugin (or the job ran too briefly).
        why = "sacct reports no ConsumedEnergy (no acct_gather_energy plugin on this cluster)"
        return SacctEnergy(job_id, None, why, **usage)
    what = "sacct ConsumedEnergy of the allocation (scope set by the site's energy plugin)"
    return SacctEnergy(job_id, consumed, what, **usage)


def sacct_energies(job_ids: list[str], timeout_s: float = 60.0) -> dict[str, SacctEnergy]:
    """Ask sacct once for the consumed energy of every job; every failure becomes a note per job,
    never an exception (a run has hundreds of jobs: one query, one timeout at most)."""
    if not job_ids:
        return {}
    cmd = ["sacct", "-j", ",".join(job_ids), "--noheader", "--parsable2", f"--format={SACCT_FORMAT}"]
    try:
        # sacct from the site's PATH with job ids Snakemake got back from sbatch; no shell.
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)  # noqa: S603
    except FileNotFoundError:
        failure = "sacct not found on this machine"
    except subprocess.TimeoutExpired:
        failure = f"sacct did not answer within {timeout_s:g} s"
    else:
        if proc.returncode == 0:
            rows = [line.split("|") for line in proc.stdout.splitlines() if line.strip()]
            return {job_id: _parse(job_id, rows) for job_id in job_ids}
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        failure = f"sacct failed (exit {proc.returncode}): {last}"
    return {job_id: SacctEnergy(job_id, None, failure) for job_id in job_ids}
