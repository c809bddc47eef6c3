"""The local launcher (`python -m tessera.parallel.launch`) behaves like srun towards its ranks: it
forwards SIGUSR1/SIGTERM (a 2-rank `tessera train` preempts: state saved, exit 75; the rerun resumes
and exits 0), and its death, even by SIGKILL, ends its ranks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tessera.train.callbacks.loggers import read_metrics
from tests.train.mini_run import REPO, TEST_ENV, make_mini_run, tessera_cmd

pytestmark = pytest.mark.slow

LAUNCH = [sys.executable, "-m", "tessera.parallel.launch", "--nproc-per-node", "2"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (reaped by init eventually).
    return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_sigusr1_to_the_launcher_preempts_both_ranks(tmp_path):
    config, layout = make_mini_run(tmp_path, expert_parallel_size=2)
    metrics = layout.state_dir("s1") / "metrics.jsonl"
    proc = subprocess.Popen([*LAUNCH, *tessera_cmd(config, "train", "--stage", "s1")], cwd=REPO,
                            env=TEST_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not (read_metrics(metrics) and read_metrics(metrics)[-1]["step"] >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, out[-3000:]
    assert out.count("signal received; run state saved at step") == 2  # both ranks report it
    assert (layout.state_dir("s1") / "latest").is_file()
    # The rerun under the launcher resumes and ends with exit 0.
    rerun = subprocess.run([*LAUNCH, *tessera_cmd(config, "train", "--stage", "s1", "--until-step", "12")],
                           cwd=REPO, env=TEST_ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "resumed s1 at step" in rerun.stdout, rerun.stdout[-3000:]


def test_killing_the_launcher_ends_its_ranks(tmp_path):
    pids = tmp_path / "pids"
    child = f"import os, time; open({str(pids)!r} + str(os.getpid()), 'w').close(); time.sleep(600)"
    proc = subprocess.Popen([*LAUNCH, sys.executable, "-c", child], cwd=REPO, env=TEST_ENV)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("pids*"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ranks = [int(p.name.removeprefix("pids")) for p in tmp_path.glob("pids*")]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in ranks):
        assert time.monotonic() < deadline, "ranks outlived their launcher"
        time.sleep(0.05)
