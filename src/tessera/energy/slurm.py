"""SLURM's own energy figure for a job: `sacct`'s ConsumedEnergy, recorded next to the meter's.

SLURM reports energy only where the site runs an `acct_gather_energy` plugin (IPMI or Redfish: whole
node, GPUs included; RAPL: CPU only), so the figure is a cross-check whose scope depends on the site,
never a replacement for the meter. It is queried at report time, when every step of the job has ended.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

__all__ = ["SacctEnergy", "sacct_energy"]

SACCT_FORMAT = "JobID,ConsumedEnergyRaw,ElapsedRaw,NNodes,State"


@dataclass
class SacctEnergy:
    job_id: str
    consumed_j: float | None
    """ConsumedEnergyRaw of the job allocation, joules; None when sacct gives no figure."""
    elapsed_s: float | None
    num_nodes: int | None
    note: str
    """Why there is no figure, or what the figure covers."""


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text) if text else None
    except ValueError:
        return None


def sacct_energy(job_id: str, timeout_s: float = 30.0) -> SacctEnergy:
    """Ask sacct for one job's consumed energy; every failure becomes a note, never an exception."""
    cmd = ["sacct", "-j", job_id, "--noheader", "--parsable2", f"--format={SACCT_FORMAT}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        return SacctEnergy(job_id, None, None, None, "sacct not found on this machine")
    except subprocess.TimeoutExpired:
        return SacctEnergy(job_id, None, None, None, f"sacct did not answer within {timeout_s:g} s")
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return SacctEnergy(job_id, None, None, None, f"sacct failed (exit {proc.returncode}): {first}")
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.strip()]
    allocation = next((r for r in rows if r[0] == job_id), None)
    if allocation is None or len(allocation) < 4:
        return SacctEnergy(job_id, None, None, None, f"sacct has no record of job {job_id}")
    consumed = _number(allocation[1])
    elapsed = _number(allocation[2])
    nodes = _number(allocation[3])
    num_nodes = int(nodes) if nodes is not None else None
    if not consumed:
        # 0 or empty: the cluster runs no acct_gather_energy plugin (or the job ran too briefly).
        return SacctEnergy(
            job_id,
            None,
            elapsed,
            num_nodes,
            "sacct reports no ConsumedEnergy (no acct_gather_energy plugin on this cluster)",
        )
    return SacctEnergy(
        job_id,
        consumed,
        elapsed,
        num_nodes,
        "sacct ConsumedEnergy of the allocation (scope set by the site's energy plugin)",
    )
