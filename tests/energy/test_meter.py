"""The meter on this machine: no GPU (the no-NVML path), RAPL through a powercap tree, ranks."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from tessera.config import SiteConfig
from tessera.energy.config import EnergyConfig
from tessera.energy.meter import EnergyMeter, invocation_id
from tessera.energy.nvml import NvmlGpus, visible_gpu_ids
from tessera.energy.records import merge_job, read_records
from tessera.parallel.env import DistEnv

QUIET = EnergyConfig(sample_interval_s=0.05, codecarbon=False)


def test_no_nvml_library_gives_zero_flagged_gpu_energy(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    gpus = NvmlGpus.open()
    assert not gpus.available and "nvidia-ml-py" in gpus.reason
    meter = EnergyMeter(QUIET, SiteConfig(), rapl_root=tmp_path / "absent").start()
    reading = meter.read()
    record = meter.stop("j", "j")
    assert reading.gpu_j == 0.0
    assert record["gpu"] == {"j": 0.0, "kind": "none", "method": gpus.reason, "devices": []}


def test_no_visible_gpu_gives_zero_flagged_gpu_energy(tmp_path):
    meter = EnergyMeter(
        QUIET, SiteConfig(), environ={"CUDA_VISIBLE_DEVICES": ""}, rapl_root=tmp_path / "absent"
    ).start()
    record = meter.stop("j", "j")
    assert record["gpu"]["j"] == 0.0 and record["gpu"]["kind"] == "none" and record["gpu"]["method"]
    # Without RAPL and with CodeCarbon off, CPU and memory are flagged too, with both reasons.
    assert record["cpu"]["kind"] == "none" and "absent" in record["cpu"]["method"]
    assert "energy.codecarbon is false" in record["cpu"]["method"]


def test_rapl_counters_are_measured_and_read_is_cumulative(tmp_path, powercap):
    powercap(tmp_path, package_uj=5_000_000, dram_uj=1_000_000)
    meter = EnergyMeter(QUIET, SiteConfig(), environ={}, rapl_root=tmp_path).start()
    powercap(tmp_path, package_uj=7_000_000, dram_uj=1_500_000)  # +2 J package, +0.5 J dram
    first = meter.read()
    powercap(tmp_path, package_uj=9_000_000, dram_uj=2_000_000)
    second = meter.read()
    record = meter.stop("j", "j")
    assert (first.cpu_j, first.mem_j) == pytest.approx((2.0, 0.5))
    assert (second.cpu_j, second.mem_j) == pytest.approx((4.0, 1.0))
    assert second.total_j == pytest.approx(second.gpu_j + second.cpu_j + second.mem_j)
    assert second.time_s >= first.time_s
    assert record["cpu"] == {"j": pytest.approx(4.0), "kind": "measured", "method": record["cpu"]["method"]}
    assert "RAPL" in record["cpu"]["method"] and record["mem"]["kind"] == "measured"


def test_only_local_rank_zero_meters_cpu_and_memory(tmp_path, powercap):
    powercap(tmp_path, package_uj=0, dram_uj=0)
    dist = DistEnv(
        rank=1, world_size=2, local_rank=1, master_addr="127.0.0.1", master_port=1, launcher="torchrun"
    )
    meter = EnergyMeter(QUIET, SiteConfig(), dist=dist, environ={}, rapl_root=tmp_path).start()
    powercap(tmp_path, package_uj=3_000_000, dram_uj=3_000_000)
    assert meter.read().cpu_j == 0.0
    record = meter.stop("j", "j")
    assert record["cpu"]["kind"] == "elsewhere" and record["mem"]["kind"] == "elsewhere"
    assert (record["rank"], record["local_rank"], record["world_size"]) == (1, 1, 2)


def test_for_job_appends_a_record_even_when_the_job_fails(tmp_path):
    cfg = SimpleNamespace(energy=QUIET, site=SiteConfig(name="leonardo", country="ITA", pue=1.1))
    out = tmp_path / "energy" / "train-stable-000002.jsonl"
    with pytest.raises(KeyboardInterrupt):
        with EnergyMeter.for_job(cfg, out, "train") as meter:
            assert meter.read().time_s >= 0
            raise KeyboardInterrupt
    with EnergyMeter.for_job(cfg, out, "train"):
        pass
    records = read_records(out)
    assert [r["status"] for r in records] == ["error: KeyboardInterrupt", "ok"]
    assert records[0]["job"] == "train-stable-000002" and records[0]["site"]["pue"] == 1.1
    assert records[0]["samples"]["t_s"]  # at least the start and stop samples
    assert merge_job("train-stable-000002", records).num_invocations == 2
    # Snakemake deletes a failed job's log; the failed attempt's energy stays in energy/failed/.
    failed = read_records(tmp_path / "energy" / "failed" / "train-stable-000002.jsonl")
    assert [r["status"] for r in failed] == ["error: KeyboardInterrupt"]


def test_for_job_without_a_config_uses_defaults(tmp_path):
    out = tmp_path / "export.jsonl"
    with EnergyMeter.for_job(None, out, "export-hf"):
        pass
    assert read_records(out)[0]["site"]["name"] == "laptop"


def test_visible_gpus_per_rank():
    assert visible_gpu_ids({}, 0, 1) is None
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 0, 1) == ["0", "1", "2", "3"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 2, 8) == ["2"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "3"}, 3, 4) == ["3"]  # srun --gpus-per-task
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "GPU-ab,GPU-cd"}, 1, 2) == ["GPU-cd"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "-1"}, 0, 1) == []
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "1,-1,2"}, 0, 1) == ["1"]


def test_invocation_ids_are_shared_by_the_ranks_of_one_launch():
    slurm = {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0"}
    assert invocation_id(slurm) == invocation_id({**slurm, "SLURM_PROCID": "3"}) == "slurm-42.0"
    assert invocation_id({"TORCHELASTIC_RUN_ID": "abc"}) == "torchrun-abc"
    local = {"TESSERA_LAUNCH_ID": "f00d", "MASTER_PORT": "29500", "WORLD_SIZE": "2"}
    assert invocation_id(local) == invocation_id({**local, "RANK": "1"}) == "launch-f00d"
    assert invocation_id({}) != invocation_id({})
