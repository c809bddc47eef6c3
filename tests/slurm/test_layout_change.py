"""A stage started by a SLURM job with 2 tasks is continued by a job with 1 task, end to end, on the
local cluster of scripts/local-slurm.sh: the run state written by 2 ranks (expert parallel 2, ZeRO-2)
resumes on 1 rank, the layout change is logged, and the history records both layouts with the jobs'
node counts. Each job is `sbatch --wait` around `srun tessera train` (what the profiles' jobs run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.train.callbacks.loggers import read_metrics
from tests.train.mini_run import make_mini_run, tessera_cmd

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 15 * 60


def _env() -> dict[str, str]:
    """The activated venv and this checkout's sources for the jobs (sbatch --export=ALL)."""
    path = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ, PATH=path, PYTHONPATH=str(REPO / "src"), PYTHONUNBUFFERED="1",
                OMP_NUM_THREADS="1")


def _job(config: Path, tasks: int, log: Path, *args: str) -> None:
    """One batch job of `tasks` tasks on one node running `srun tessera ... train ...`; waits for it."""
    command = " ".join(f"'{part}'" for part in tessera_cmd(config, *args))
    proc = subprocess.run(
        ["sbatch", "--wait", "--account=tessera", "--partition=debug", "--nodes=1", f"--ntasks={tasks}",
         "--cpus-per-task=1", "--mem=4000", "--time=15", f"--output={log}", "--export=ALL",
         f"--wrap=srun {command}"],
        capture_output=True, text=True, timeout=JOB_TIMEOUT_S, env=_env(), cwd=REPO,
    )
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}\n--- job log\n{log.read_text()[-4000:]}"


def test_two_task_stage_continues_in_a_one_task_job(local_slurm, tmp_path):
    config, layout = make_mini_run(tmp_path, expert_parallel_size=2, zero_stage=2)
    _job(config, 2, tmp_path / "two.log", "train", "--stage", "s1", "--until-step", "12")
    _job(config, 1, tmp_path / "one.log", "--set", "train.expert_parallel_size=1", "train", "--stage", "s1")

    log = (tmp_path / "one.log").read_text()
    assert "resumed s1 at step 12" in log and "new parallel layout: 2 ranks" in log
    records = read_metrics(layout.state_dir("s1") / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 25))
    assert [r["world_size"] for r in records] == [2] * 12 + [1] * 12
    assert "-> 1 rank" in records[12]["layout_change"]
    history = json.loads((layout.checkpoint("s1", 24) / "tessera.json").read_text())["history"]
    spans = [(h["world_size"], h["expert_parallel_size"], h["num_nodes"], h["first_step"], h["last_step"])
             for h in history]
    assert spans == [(2, 2, 1, 1, 12), (1, 1, 1, 13, 24)]
    assert not (layout.state_dir("s1") / "lock").exists()  # each job released the stage
