"""Tests against the real single-node SLURM of scripts/local-slurm.sh. They take minutes and need root
to start the cluster, so they run only when asked: `.ci/run` starts the cluster, sets
TESSERA_SLURM_TESTS=1 and runs `pytest -m slurm tests/slurm`, then stops the cluster."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def local_slurm() -> None:
    """Skip unless asked for; fail (not skip) when asked for but the cluster is down."""
    if os.environ.get("TESSERA_SLURM_TESTS") != "1":
        pytest.skip("set TESSERA_SLURM_TESTS=1 after `scripts/local-slurm.sh start` to run the SLURM tests")
    if shutil.which("scontrol") is None:
        pytest.fail("SLURM client tools missing: `scripts/local-slurm.sh start` installs them")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        pytest.fail(
            f"SLURM controller not reachable ({ping.stdout.strip()} {ping.stderr.strip()}): "
            "run `scripts/local-slurm.sh start` first"
        )
