"""GPU energy from NVML: the board's own cumulative energy counter, and instantaneous power for plots.

`nvmlDeviceGetTotalEnergyConsumption` (Volta and newer) counts millijoules since the driver loaded, so
the energy of a job is the difference of two reads: measured, not estimated. Boards without the counter
fall back to integrating `nvmlDeviceGetPowerUsage` samples (estimated). No NVML library, no driver or no
GPU: `NvmlGpus.open` returns an object with no devices and says why; nothing raises.

Which GPUs a process uses: CUDA_VISIBLE_DEVICES (indices or UUIDs, as SLURM and torchrun set it), of
which a rank of a multi-process job takes the one at its local rank (one GPU per rank, as DeepSpeed
runs); a single-process job meters every visible GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["GpuDevice", "NvmlGpus", "visible_gpu_ids"]


def visible_gpu_ids(environ: dict[str, str], local_rank: int, world_size: int) -> list[str] | None:
    """The CUDA_VISIBLE_DEVICES entries this process meters; None = every GPU NVML sees."""
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    # CUDA stops at the first invalid entry ("-1", "" or "NoDevFiles" mean: no GPU).
    valid: list[str] = []
    for entry in ids:
        if entry.startswith(("GPU-", "MIG-")) or entry.isdigit():
            valid.append(entry)
        else:
            break
    if world_size > 1 and len(valid) > 1:
        # One GPU per rank: torchrun/srun ranks on a node use cuda:<local rank> of the visible set.
        return [valid[local_rank % len(valid)]]
    return valid


@dataclass
class GpuDevice:
    index: int
    uuid: str
    name: str
    handle: object
    has_energy_counter: bool
    start_mj: int = 0
    mig: bool = False
    """Opened through a MIG slice: the figures are the whole board's (shared with other slices)."""


class NvmlGpus:
    """The GPUs this process meters; empty (with `reason`) when NVML or GPUs are unavailable."""

    def __init__(self, devices: list[GpuDevice], reason: str, nvml=None):
        self.devices = devices
        self.reason = reason
        self._nvml = nvml

    @classmethod
    def open(cls, local_rank: int = 0, world_size: int = 1,
             environ: dict[str, str] | None = None) -> NvmlGpus:
        env = os.environ if environ is None else environ
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return cls([], "no NVML Python binding (pip install nvidia-ml-py)")
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            return cls([], f"NVML unavailable ({err}): no NVIDIA driver or GPU on this machine")
        try:
            ids = visible_gpu_ids(env, local_rank, world_size)
            if ids is None:
                handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            else:
                handles = [
                    pynvml.nvmlDeviceGetHandleByUUID(i) if not i.isdigit()
                    # NVML indexes in PCI bus order; SLURM's and our indices are the same order.
                    else pynvml.nvmlDeviceGetHandleByIndex(int(i))
                    for i in ids
                ]
            devices = []
            for handle, mig in (cls._physical(pynvml, h) for h in handles):
                device = cls._describe(pynvml, handle, mig)
                if device.uuid not in {d.uuid for d in devices}:  # two MIG slices of one board
                    devices.append(device)
        except pynvml.NVMLError as err:
            pynvml.nvmlShutdown()
            return cls([], f"NVML could not open the visible GPUs ({err})")
        if not devices:
            pynvml.nvmlShutdown()
            return cls([], "NVML found no GPU visible to this process")
        return cls(devices, "", pynvml)

    @staticmethod
    def _physical(pynvml, handle) -> tuple[object, bool]:
        """(board handle, was a MIG slice): energy and power exist per board, not per MIG instance."""
        try:
            if pynvml.nvmlDeviceIsMigDeviceHandle(handle):
                return pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle), True
        except (AttributeError, pynvml.NVMLError):  # old bindings or drivers: no MIG
            pass
        return handle, False

    @staticmethod
    def _describe(pynvml, handle, mig: bool = False) -> GpuDevice:
        def text(value) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)

        try:
            start = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            has_counter = True
        except pynvml.NVMLError:  # pre-Volta boards: power samples only
            start, has_counter = 0, False
        return GpuDevice(
            index=pynvml.nvmlDeviceGetIndex(handle),
            uuid=text(pynvml.nvmlDeviceGetUUID(handle)),
            name=text(pynvml.nvmlDeviceGetName(handle)),
            handle=handle,
            has_energy_counter=has_counter,
            start_mj=start,
            mig=mig,
        )

    @property
    def available(self) -> bool:
        return bool(self.devices)

    def energy_j(self) -> list[float | None]:
        """Joules per device since `open` from the energy counter; None where the board has none."""
        out: list[float | None] = []
        for dev in self.devices:
            if dev.has_energy_counter:
                out.append((self._nvml.nvmlDeviceGetTotalEnergyConsumption(dev.handle) - dev.start_mj) / 1e3)
            else:
                out.append(None)
        return out

    def power_w(self) -> list[float]:
        """Instantaneous board power per device, W (NVML reports milliwatts); 0 where unsupported."""
        out = []
        for dev in self.devices:
            try:
                out.append(self._nvml.nvmlDeviceGetPowerUsage(dev.handle) / 1e3)
            except self._nvml.NVMLError:
                out.append(0.0)
        return out

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None
