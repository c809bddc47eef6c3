"""One writer per stage: a job holds `state/<stage>/lock` while it trains the stage.

The lock is a file created with O_CREAT|O_EXCL (atomic on local filesystems and on Lustre/GPFS, which
Leonardo and MareNostrum 5 use for scratch) holding its holder: host, pid, SLURM job id, start time. A
second job refuses naming the holder. A lock whose holder is dead is taken over: on the same host the
pid is checked (`os.kill(pid, 0)`); on another host the SLURM job state is asked (`squeue -j`, when
the holder had a job id and squeue exists), else the lock's heartbeat (its mtime, refreshed while
training, at most once a minute) decides: older than `STALE_AFTER_S` means dead. A pid alone says
nothing across hosts, and a shared filesystem offers no lock that dies with its process (flock over
NFS/Lustre is unreliable), hence this layering. Take-over renames the stale file away first, so of two
jobs taking over, one wins the O_EXCL create.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tessera.errors import CheckpointError

__all__ = ["StageLock", "LockHolder", "STALE_AFTER_S"]

STALE_AFTER_S = 900.0
"""A lock of another host without SLURM job whose heartbeat is older than this is stale (15 min: far
longer than any step or state save)."""
HEARTBEAT_EVERY_S = 60.0
LOCK = "lock"


@dataclass
class LockHolder:
    host: str
    pid: int
    slurm_job_id: str | None
    started: float

    @classmethod
    def me(cls) -> LockHolder:
        return cls(socket.gethostname(), os.getpid(), os.environ.get("SLURM_JOB_ID"), time.time())

    def describe(self) -> str:
        job = f", SLURM job {self.slurm_job_id}" if self.slurm_job_id else ""
        since = time.strftime("%F %T", time.localtime(self.started))
        return f"host {self.host}, pid {self.pid}{job}, since {since}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _slurm_job_running(job_id: str) -> bool | None:
    """Whether SLURM still runs (or queues) the job; None when squeue is not available."""
    squeue = shutil.which("squeue")
    if squeue is None:
        return None
    # No shell; the job id is one argument whatever the lock file holds.
    proc = subprocess.run([squeue, "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True,  # noqa: S603
                          timeout=60)
    if proc.returncode != 0:  # an unknown (long finished) job id is an error for squeue
        return False
    return proc.stdout.strip() != ""


class StageLock:
    """`with StageLock(state_dir):` holds the stage's lock; `heartbeat()` refreshes it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK
        self._last_beat = float("-inf")

    def _holder(self) -> LockHolder | None:
        try:
            return LockHolder(**json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError, TypeError):
            return LockHolder("unknown", -1, None, 0.0)  # torn write of a killed holder

    def _stale(self, holder: LockHolder) -> bool:
        if holder.host == socket.gethostname() and holder.pid > 0:
            return not _pid_alive(holder.pid)
        if holder.slurm_job_id:
            running = _slurm_job_running(holder.slurm_job_id)
            if running is not None:
                return not running
        try:
            return time.time() - self.path.stat().st_mtime > STALE_AFTER_S
        except FileNotFoundError:
            return True

    def acquire(self) -> list[str]:
        """Take the lock; returns notes (a stale lock taken over). CheckpointError if a live job holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        notes = []
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    continue
                if not self._stale(holder):
                    raise CheckpointError(
                        f"{self.path}: stage is being trained by another job ({holder.describe()}); wait for "
                        "it to end or cancel it (scancel). If that job is dead, delete the lock file"
                    ) from None
                if self._take_over(holder):
                    notes.append(f"took over the stale lock of a dead job ({holder.describe()})")
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(asdict(LockHolder.me()), out)
            return notes
        raise CheckpointError(f"{self.path}: could not take the stage lock (contended); rerun the job")

    def _take_over(self, judged: LockHolder) -> bool:
        """Move the stale lock away; if another job replaced it meanwhile, put that live one back."""
        stale = self.path.with_name(f"{LOCK}.stale-{socket.gethostname()}-{os.getpid()}")
        try:
            os.replace(self.path, stale)
        except FileNotFoundError:
            return False  # another job took it over first; retry the create
        moved = StageLock(stale.parent)
        moved.path = stale
        if moved._holder() != judged:
            try:
                os.link(stale, self.path)  # fails if yet another job holds it now: then it is theirs
            except FileExistsError:
                pass
            stale.unlink()
            return False
        stale.unlink()
        return True

    def heartbeat(self) -> None:
        """Refresh the lock's mtime, at most once a minute (a metadata write on a cluster filesystem)."""
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_EVERY_S:
            return
        self._last_beat = now
        try:
            os.utime(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        holder = self._holder()
        if holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname():
            self.path.unlink(missing_ok=True)
