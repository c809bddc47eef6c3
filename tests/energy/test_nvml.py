"""The GPU path of the meter. No NVIDIA GPU here, so `pynvml` is replaced by a small module that
behaves like NVML over two boards drawing constant power: one with the total-energy counter (Volta
and newer), one without (power samples only). On a GPU node bench/energy_meter.py checks the real one."""

from __future__ import annotations

import sys
import time
import types

import pytest

from tessera.config import SiteConfig
from tessera.energy.config import EnergyConfig
from tessera.energy.meter import EnergyMeter
from tessera.energy.nvml import NvmlGpus


class NVMLError(Exception):
    pass


def fake_pynvml(boards: dict[str, tuple[float, bool]]) -> types.ModuleType:
    """`boards`: UUID -> (constant watts, has an energy counter), in PCI (index) order."""
    t0 = time.perf_counter()
    uuids = list(boards)
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError
    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: None
    module.nvmlDeviceGetCount = lambda: len(uuids)
    module.nvmlDeviceGetHandleByIndex = lambda i: uuids[i]
    module.nvmlDeviceGetHandleByUUID = lambda u: (
        u if u in boards or u.startswith("MIG-") else (_ for _ in ()).throw(NVMLError("not found"))
    )
    module.nvmlDeviceGetIndex = lambda h: uuids.index(h)
    module.nvmlDeviceGetUUID = lambda h: h
    module.nvmlDeviceGetName = lambda h: b"NVIDIA H100 64GB HBM2"
    module.nvmlDeviceGetPowerUsage = lambda h: int(boards[h][0] * 1e3)  # mW

    def energy(h):
        watts, has_counter = boards[h]
        if not has_counter:
            raise NVMLError("Not Supported")
        return int(1_000_000 + watts * (time.perf_counter() - t0) * 1e3)  # mJ since "driver load"

    module.nvmlDeviceGetTotalEnergyConsumption = energy
    # MIG slices "MIG-<board>-<n>" of a board: NVML has energy and power only per board.
    module.nvmlDeviceIsMigDeviceHandle = lambda h: h.startswith("MIG-")
    module.nvmlDeviceGetDeviceHandleFromMigDeviceHandle = lambda h: h.removeprefix("MIG-").rsplit("-", 1)[0]
    return module


QUIET = EnergyConfig(sample_interval_s=0.02, codecarbon=False)


def test_energy_counter_is_measured_and_power_integral_is_estimated(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml({"GPU-a": (200.0, True), "GPU-b": (100.0, False)}))
    meter = EnergyMeter(QUIET, SiteConfig(), environ={}, rapl_root=tmp_path).start()
    time.sleep(0.3)
    reading = meter.read()
    record = meter.stop("train-s-000002", "train")
    a, b = record["gpu"]["devices"]
    assert (a["uuid"], a["kind"], b["uuid"], b["kind"]) == ("GPU-a", "measured", "GPU-b", "estimated")
    assert a["j"] == pytest.approx(200.0 * record["time_s"], rel=0.02)
    # Constant power: the integral of the 0.02 s samples, closed at stop, is exact but for rounding.
    assert b["j"] == pytest.approx(100.0 * record["time_s"], rel=0.02)
    assert record["gpu"]["kind"] == "estimated"  # the sum is only as good as its weakest part
    assert "nvmlDeviceGetTotalEnergyConsumption" in record["gpu"]["method"]
    # A live reading lags GPU-b by the time since its last sample (~2% here).
    assert reading.gpu_j == pytest.approx(300.0 * reading.time_s, rel=0.1)
    assert max(record["samples"]["gpu_w"]) == pytest.approx(300.0)


def test_each_rank_meters_its_own_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml({f"GPU-{i}": (100.0, True) for i in range(4)}))
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert [d.uuid for d in NvmlGpus.open(2, 4, env).devices] == ["GPU-2"]
    assert [d.uuid for d in NvmlGpus.open(0, 1, env).devices] == ["GPU-0", "GPU-1", "GPU-2", "GPU-3"]
    assert [d.uuid for d in NvmlGpus.open(0, 1, {"CUDA_VISIBLE_DEVICES": "GPU-3"}).devices] == ["GPU-3"]
    assert len(NvmlGpus.open(0, 1, {}).devices) == 4


def test_unknown_visible_gpu_is_flagged_not_fatal(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml({"GPU-a": (100.0, True)}))
    gpus = NvmlGpus.open(0, 1, {"CUDA_VISIBLE_DEVICES": "GPU-zz"})
    assert not gpus.available and "could not open" in gpus.reason


def test_mig_slices_meter_their_board_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml({"GPU-a": (100.0, True), "GPU-b": (100.0, True)}))
    gpus = NvmlGpus.open(0, 1, {"CUDA_VISIBLE_DEVICES": "MIG-GPU-a-1,MIG-GPU-a-2"})
    assert [(d.uuid, d.mig) for d in gpus.devices] == [("GPU-a", True)]


def test_a_failing_sensor_is_recorded_not_fatal(monkeypatch, tmp_path):
    module = fake_pynvml({"GPU-a": (100.0, True)})
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = EnergyMeter(QUIET, SiteConfig(), environ={}, rapl_root=tmp_path).start()

    def broken(handle):
        raise RuntimeError("GPU has fallen off the bus")

    module.nvmlDeviceGetPowerUsage = broken  # not an NVMLError: escapes power_w
    time.sleep(0.1)
    module.nvmlDeviceGetPowerUsage = lambda h: 100_000
    record = meter.stop("j", "j")
    assert record["errors"] and "fallen off the bus" in record["errors"][0]
    assert record["gpu"]["kind"] == "measured" and record["gpu"]["j"] > 0
