"""`python -m tessera.parallel.launch --nproc-per-node N CMD...`: the local launcher (no SLURM).

Starts N ranks of CMD on this machine with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), and behaves like `srun` towards them, which torchrun does
not: torchrun starts each rank in its own session (killing the launcher's process group leaves the
ranks running) and dies of SIGUSR1 (exit 138) instead of passing it on. Here:

- SIGTERM, SIGUSR1 and SIGINT are forwarded to every rank, so they preempt (save their state, exit 75);
- each rank gets PR_SET_PDEATHSIG=SIGKILL: if the launcher dies, however it dies, its ranks die too;
- the exit code is the ranks' (75 when they preempted); when one rank fails, the others are stopped
  (SIGTERM, then SIGKILL after a grace period) rather than left waiting in a collective.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid

from tessera.parallel.dist import free_port

__all__ = ["launch", "main"]

FORWARDED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
GRACE_S = 60.0
"""How long the other ranks get to finish (a state save) after one failed, before SIGKILL."""
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGKILL when the launcher exits."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _start(command: list[str], nproc: int) -> list[subprocess.Popen]:
    port = os.environ.get("MASTER_PORT") or str(free_port())
    # The energy report groups the ranks of one launch by this id; a retry must not share it (a port may).
    launch_id = uuid.uuid4().hex[:12]
    ranks = []
    for rank in range(nproc):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank),
                   LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                   TESSERA_LAUNCH_ID=launch_id)
        # preexec_fn is unsafe with threads; the launcher has none.
        # The command is the launcher's own argv (the train rule's tessera call), run without a shell.
        ranks.append(subprocess.Popen(command, env=env, preexec_fn=_die_with_parent))  # noqa: S603
    return ranks


def _stop(ranks: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + GRACE_S
    for rank in ranks:
        if rank.poll() is None:
            rank.send_signal(signal.SIGTERM)
    for rank in ranks:
        try:
            rank.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            rank.kill()
            rank.wait()


def launch(command: list[str], nproc: int) -> int:
    """Run `nproc` ranks of `command`; returns the exit code (the first failing rank's, else 0)."""
    ranks = _start(command, nproc)

    def forward(signum, frame) -> None:
        for rank in ranks:
            if rank.poll() is None:
                rank.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            codes = [rank.poll() for rank in ranks]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                _stop(ranks)
                return failed[0] if failed[0] > 0 else 128 - failed[0]
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.parallel.launch",
                                     description="start N local ranks of a command, as srun would")
    parser.add_argument("--nproc-per-node", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.nproc_per_node < 1 or not args.command:
        parser.error("give --nproc-per-node >= 1 and a command")
    return launch(args.command, args.nproc_per_node)


if __name__ == "__main__":
    sys.exit(main())
