"""Who am I: rank, world size, local rank and rendezvous from srun, torchrun, or a plain process."""

from __future__ import annotations

import pytest

from tessera.parallel.env import DistEnv, first_host


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [
        ("lrdn0012", "lrdn0012"),
        ("lrdn[0012-0015,0020],lrdn0030", "lrdn0012"),
        ("lrdn[0020,0012-0015]", "lrdn0020"),  # SLURM's order, not sorted
        ("as01r1b[05-08]", "as01r1b05"),
        ("gpu-a,gpu-b", "gpu-a"),
        ("nid[001234]", "nid001234"),
    ],
)
def test_first_host(nodelist, host):
    assert first_host(nodelist) == host


def test_srun_step():
    env = DistEnv.from_environ({
        "SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
        "SLURM_JOB_ID": "123456", "SLURM_JOB_NODELIST": "lrdn[0101-0102]",
    })
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (5, 8, 1, "slurm")
    assert env.master_addr == "lrdn0101"
    assert env.master_port == 20000 + 123456 % 20000
    assert not env.is_main and not env.is_node_main


def test_a_step_smaller_than_its_allocation():
    env = DistEnv.from_environ({
        "SLURM_PROCID": "1", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_ID": "2",
        "SLURM_JOB_NODELIST": "lrdn[0101-0102]", "SLURM_STEP_NODELIST": "lrdn0102",
    })
    assert (env.world_size, env.master_addr) == (4, "lrdn0102")


def test_two_jobs_on_one_node_get_different_ports():
    base = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0", "SLURM_JOB_NODELIST": "n1"}
    a = DistEnv.from_environ({**base, "SLURM_JOB_ID": "1000"})
    b = DistEnv.from_environ({**base, "SLURM_JOB_ID": "1001"})
    assert a.master_port != b.master_port


def test_batch_script_without_srun_is_a_single_process():
    # sbatch alone sets SLURM_PROCID/SLURM_NTASKS for the batch shell but no step id.
    env = DistEnv.from_environ({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "n[1-2]"})
    assert (env.rank, env.world_size, env.launcher) == (0, 1, "single")


def test_torchrun_wins_over_slurm():
    env = DistEnv.from_environ({
        "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3", "MASTER_ADDR": "node7", "MASTER_PORT": "29612",
        "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0",
    })
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (3, 4, 3, "torchrun")
    assert (env.master_addr, env.master_port) == ("node7", 29612)


def test_explicit_master_overrides_slurm_guess():
    env = DistEnv.from_environ({
        "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "SLURM_JOB_NODELIST": "n[1-2]",
        "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "30000",
    })
    assert (env.master_addr, env.master_port) == ("10.0.0.1", 30000)


def test_plain_process():
    env = DistEnv.from_environ({})
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (0, 1, 0, "single")
    assert env.is_main and env.is_node_main
