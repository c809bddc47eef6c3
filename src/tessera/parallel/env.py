"""Who am I in the job? Rank, world size and rendezvous from SLURM, torchrun, or nothing (one process).

One code path serves all three launches: `srun` sets SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID and
SLURM_JOB_NODELIST; torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT; a plain
`python` sets neither.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["DistEnv", "first_host"]

DEFAULT_PORT = 29500


def first_host(nodelist: str) -> str:
    """First host of a SLURM nodelist: 'lrdn[0012-0015,0020],lrdn0030' -> 'lrdn0012'."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ValueError(f"cannot parse SLURM nodelist {nodelist!r}")
    prefix, ranges = match.group(1), match.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    launcher: str
    """'slurm', 'torchrun' or 'single'."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_node_main(self) -> bool:
        """Local rank 0: meters CPU and memory once per node."""
        return self.local_rank == 0

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> DistEnv:
        env = os.environ if environ is None else environ
        if "RANK" in env and "WORLD_SIZE" in env:  # torchrun (also what we export for DeepSpeed)
            return cls(
                rank=int(env["RANK"]),
                world_size=int(env["WORLD_SIZE"]),
                local_rank=int(env.get("LOCAL_RANK", "0")),
                master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
                master_port=int(env.get("MASTER_PORT", DEFAULT_PORT)),
                launcher="torchrun",
            )
        if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "SLURM_STEP_ID" in env:
            # Only inside an srun step: a batch script alone also has SLURM_PROCID=0 and SLURM_NTASKS.
            # The step's own task count and nodes win over the allocation's (an srun may use fewer).
            job_id = int(env.get("SLURM_JOB_ID", "0"))
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "127.0.0.1")
            return cls(
                rank=int(env["SLURM_PROCID"]),
                world_size=int(env.get("SLURM_STEP_NUM_TASKS") or env["SLURM_NTASKS"]),
                local_rank=int(env.get("SLURM_LOCALID", "0")),
                master_addr=env.get("MASTER_ADDR") or first_host(nodelist),
                # A port derived from the job id lets two jobs share a node without colliding.
                master_port=int(env.get("MASTER_PORT", 20000 + job_id % 20000)),
                launcher="slurm",
            )
        return cls(0, 1, 0, "127.0.0.1", int(env.get("MASTER_PORT", DEFAULT_PORT)), "single")
