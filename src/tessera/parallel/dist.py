"""Start and stop the process group: one code path for a single process, torchrun and srun.

`init_distributed()` reads `DistEnv` (SLURM or torchrun variables, or none), exports the variables
`torch.distributed`'s env:// rendezvous reads, and starts DeepSpeed's communication backend: NCCL on
CUDA, gloo on CPU (DeepSpeed's CPU accelerator picks oneCCL only when intel's bindings are installed;
gloo needs nothing and runs everywhere).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch
import torch.distributed as dist

from tessera.parallel.env import DistEnv

__all__ = ["init_distributed", "backend_for", "device_for", "free_port", "barrier", "all_true"]


def free_port() -> int:
    """A TCP port nobody listens on now: single-process runs rendezvous on it, so that parallel jobs
    on one machine (tests, several engineers) never collide on the default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def device_for(env: DistEnv) -> torch.device:
    return torch.device("cuda", env.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(env: DistEnv | None = None, timeout_s: float = 600.0) -> tuple[DistEnv, torch.device]:
    """Join (or, alone, create) the job's process group; returns who we are and our device."""
    env = env or DistEnv.from_environ()
    device = device_for(env)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return env, device
    port = env.master_port if env.launcher != "single" or "MASTER_PORT" in os.environ else free_port()
    # DeepSpeed and torch read the rendezvous from these variables; srun sets none of them.
    os.environ.update(
        RANK=str(env.rank), WORLD_SIZE=str(env.world_size), LOCAL_RANK=str(env.local_rank),
        MASTER_ADDR=env.master_addr, MASTER_PORT=str(port),
    )
    import deepspeed  # imported here: a slow import, and only training needs it

    deepspeed.init_distributed(
        dist_backend=backend_for(device), auto_mpi_discovery=False, verbose=False,
        timeout=timedelta(seconds=timeout_s), rank=env.rank, world_size=env.world_size,
    )
    return env, device


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_true(flag: bool, device: torch.device) -> bool:
    """True when `flag` holds on every rank (one tiny all-reduce)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())
