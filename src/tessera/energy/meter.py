"""The energy meter every compute job runs inside: GPU energy measured by NVML, CPU and memory energy
measured by RAPL or estimated by CodeCarbon, power sampled in a background thread for plots.

    with EnergyMeter.for_job(cfg, Path("energy/train-stable-000050.jsonl"), "train") as meter:
        ...
        reading = meter.read()  # cumulative since start; cheap enough for every training step

Each rank meters its own GPU(s); CPU and memory are metered once per node, by local rank 0, because
RAPL and CodeCarbon see the whole node. Each rank appends one record to the job's JSONL file
(tessera.energy.records); the report merges them without double counting. `read()` is this process's
share (its GPUs, plus the node's CPU and memory on local rank 0): the trainer sums deltas over ranks for
the job's joules per step. Figures are IT energy; the report applies the site's PUE.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tessera.config import SiteConfig, to_dict
from tessera.energy.codecarbon_backend import CodeCarbonEstimator, CodeCarbonResult
from tessera.energy.config import EnergyConfig
from tessera.energy.nvml import NvmlGpus
from tessera.energy.rapl import POWERCAP, RaplCounters
from tessera.energy.records import RECORD_SCHEMA, append_record, bin_samples, failed_log
from tessera.parallel.env import DistEnv

__all__ = ["EnergyMeter", "EnergyReading", "invocation_id"]

NVML_COUNTER = "NVML nvmlDeviceGetTotalEnergyConsumption (board energy counter)"
NVML_POWER = "integral of NVML nvmlDeviceGetPowerUsage samples (board has no energy counter)"
RAPL_PACKAGE = "RAPL package counters (/sys/class/powercap, whole socket)"
RAPL_DRAM = "RAPL dram counters (/sys/class/powercap)"
ON_NODE_MAIN = "counted once per node, by local rank 0"


@dataclass(frozen=True)
class EnergyReading:
    """Cumulative energy since the meter started, joules (IT energy, before PUE)."""

    time_s: float
    gpu_j: float
    cpu_j: float
    mem_j: float
    total_j: float


def invocation_id(environ: dict[str, str]) -> str:
    """An id the ranks of one launch share (and a retry does not): groups their records in the report."""
    if environ.get("SLURM_JOB_ID") and environ.get("SLURM_STEP_ID"):
        return f"slurm-{environ['SLURM_JOB_ID']}.{environ['SLURM_STEP_ID']}"
    run_id = environ.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id != "none":
        return f"torchrun-{run_id}"
    if launch_id := environ.get("TESSERA_LAUNCH_ID"):  # tessera.parallel.launch
        return f"launch-{launch_id}"
    if "MASTER_PORT" in environ and "WORLD_SIZE" in environ:
        return f"launch-{environ.get('MASTER_ADDR', '')}:{environ['MASTER_PORT']}"
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class EnergyMeter:
    """start() -> read()* -> stop(): one process's energy; `for_job` wraps a CLI verb in one."""

    def __init__(self, cfg: EnergyConfig, site: SiteConfig, dist: DistEnv | None = None,
                 environ: dict[str, str] | None = None, rapl_root: Path = POWERCAP):
        self.cfg = cfg
        self.site = site
        self.environ = dict(os.environ if environ is None else environ)
        self.dist = dist or DistEnv.from_environ(self.environ)
        self._rapl_root = rapl_root
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples_t: list[float] = []
        self._samples_gpu_w: list[float] = []
        self._samples_cpu_w: list[float] = []
        self._gpu_power_j: list[float] = []  # integrated power, for boards without an energy counter
        self._errors: list[str] = []
        self._started = False

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> EnergyMeter:
        self.gpus = NvmlGpus.open(self.dist.local_rank, self.dist.world_size, self.environ)
        self._gpu_power_j = [0.0] * len(self.gpus.devices)
        self.node_main = self.dist.is_node_main
        self.rapl = (RaplCounters.open(self._rapl_root) if self.node_main
                     else RaplCounters([], [], ON_NODE_MAIN))
        self.codecarbon: CodeCarbonEstimator | None = None
        self._codecarbon_reason = "energy.codecarbon is false"
        # CodeCarbon also gives the grid intensity, so it runs on node-main ranks even with RAPL.
        if self.node_main and self.cfg.codecarbon:
            estimator = CodeCarbonEstimator(self.site.country, self.cfg.codecarbon_interval_s)
            if estimator.start():
                self.codecarbon = estimator
            else:
                self._codecarbon_reason = estimator.reason
        self.start_unix = time.time()
        self._t0 = time.perf_counter()
        self._last_sample_t = 0.0
        self._last_cpu_j = 0.0
        self._codecarbon_j, self._codecarbon_t = (0.0, 0.0), 0.0
        self._started = True
        self._safe_sample()
        self._thread = threading.Thread(target=self._sample_loop, name="tessera-energy", daemon=True)
        self._thread.start()
        return self

    def _sample_loop(self) -> None:
        while not self._stop_event.wait(self.cfg.sample_interval_s):
            self._safe_sample()

    def _safe_sample(self) -> None:
        try:
            self._sample()
        except Exception as err:  # a failing sensor must not end sampling, nor the job
            if len(self._errors) < 5:
                self._errors.append(f"power sample failed: {type(err).__name__}: {err}")

    def _sample(self) -> None:
        """One power sample: GPU board power (NVML), node CPU+memory power (RAPL delta or CodeCarbon)."""
        with self._lock:
            t = time.perf_counter() - self._t0
            gpu_w = self.gpus.power_w() if self.gpus.available else []
            dt = t - self._last_sample_t
            for i, watts in enumerate(gpu_w):
                self._gpu_power_j[i] += watts * dt  # rectangle rule: the sample holds until the next
            cpu_j, mem_j = self._cpu_mem_j_locked(commit=True)
            node_j = cpu_j + mem_j
            if self._samples_t:
                cpu_w = (node_j - self._last_cpu_j) / dt if dt > 0 else self._samples_cpu_w[-1]
            else:  # no interval yet: CodeCarbon's current power, or nothing
                cpu_w = sum(self.codecarbon.power_w()) if self.codecarbon is not None else 0.0
            self._last_cpu_j = node_j
            self._last_sample_t = t
            self._samples_t.append(t)
            self._samples_gpu_w.append(sum(gpu_w))
            self._samples_cpu_w.append(cpu_w)

    # --- reading ---------------------------------------------------------------------------------

    def _gpu_j_locked(self) -> list[float]:
        if not self.gpus.available:
            return []
        counters = self.gpus.energy_j()
        return [c if c is not None else p for c, p in zip(counters, self._gpu_power_j, strict=True)]

    def _codecarbon_j_locked(self, commit: bool) -> tuple[float, float] | None:
        """CPU and memory joules: the integral of CodeCarbon's latest power (continuous, unlike its
        totals, which jump at each of its measurements); `commit` advances the integral (samples)."""
        if self.codecarbon is None:
            return None
        t = time.perf_counter() - self._t0
        cpu_w, mem_w = self.codecarbon.power_w()
        dt = t - self._codecarbon_t
        cpu_j, mem_j = self._codecarbon_j[0] + cpu_w * dt, self._codecarbon_j[1] + mem_w * dt
        if commit:
            self._codecarbon_j, self._codecarbon_t = (cpu_j, mem_j), t
        return cpu_j, mem_j

    def _cpu_mem_j_locked(self, commit: bool = False) -> tuple[float, float]:
        if not self.node_main:
            return 0.0, 0.0
        estimated = self._codecarbon_j_locked(commit)
        if self.rapl.available:
            cpu_j, dram_j = self.rapl.read_j()
            if dram_j is not None:
                return cpu_j, dram_j
            return cpu_j, estimated[1] if estimated else 0.0
        return estimated if estimated else (0.0, 0.0)

    def read(self) -> EnergyReading:
        """Joules since start for this process's GPUs (and the node's CPU and memory on local rank 0)."""
        if not self._started:
            raise RuntimeError("EnergyMeter.read() before start()")
        with self._lock:
            t = time.perf_counter() - self._t0
            gpu_j = sum(self._gpu_j_locked(), 0.0)
            cpu_j, mem_j = self._cpu_mem_j_locked()
        return EnergyReading(t, gpu_j, cpu_j, mem_j, gpu_j + cpu_j + mem_j)

    # --- the record ------------------------------------------------------------------------------

    def stop(self, job: str = "", label: str = "", status: str = "ok") -> dict:
        """Stop sampling and the estimators; return this process's record (see docs/energy.md)."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join()
        self._safe_sample()
        with self._lock:
            time_s = time.perf_counter() - self._t0
            devices_j = self._gpu_j_locked()
            cpu_j, mem_j = self._cpu_mem_j_locked()
        codecarbon = self.codecarbon.stop() if self.codecarbon is not None else None
        if self.codecarbon is not None and codecarbon is None:
            self._codecarbon_reason = self.codecarbon.reason
        record = {
            "schema": RECORD_SCHEMA,
            "job": job,
            "label": label,
            "status": status,
            "invocation": invocation_id(self.environ),
            "node": socket.gethostname(),
            "rank": self.dist.rank,
            "local_rank": self.dist.local_rank,
            "world_size": self.dist.world_size,
            "start_unix": self.start_unix,
            "end_unix": self.start_unix + time_s,
            "time_s": time_s,
            "gpu": self._gpu_part(devices_j),
            "cpu": self._cpu_part(cpu_j, codecarbon),
            "mem": self._mem_part(mem_j, codecarbon),
            "codecarbon": None if codecarbon is None else {
                "emissions_kg": codecarbon.emissions_kg,
                "intensity_g_per_kwh": codecarbon.intensity_g_per_kwh,
                "country": codecarbon.country,
                "version": codecarbon.version,
            },
            "site": to_dict(self.site),
            "slurm": self._slurm(),
            "errors": self._errors,
            "samples": bin_samples(self._samples_t, self._samples_gpu_w, self._samples_cpu_w,
                                   self.cfg.max_samples),
        }
        self.gpus.close()
        return record

    def _gpu_part(self, devices_j: list[float]) -> dict:
        if not self.gpus.available:
            return {"j": 0.0, "kind": "none", "method": self.gpus.reason, "devices": []}
        devices = [
            {"index": d.index, "uuid": d.uuid, "name": d.name, "j": j, "mig": d.mig,
             "kind": "measured" if d.has_energy_counter else "estimated"}
            for d, j in zip(self.gpus.devices, devices_j, strict=True)
        ]
        counters = {d.has_energy_counter for d in self.gpus.devices}
        return {
            "j": sum(devices_j),
            "kind": "measured" if counters == {True} else "estimated",
            "method": " + ".join(NVML_COUNTER if has else NVML_POWER
                                 for has in sorted(counters, reverse=True)),
            "devices": devices,
        }

    def _cpu_part(self, cpu_j: float, codecarbon: CodeCarbonResult | None) -> dict:
        if not self.node_main:
            return {"j": 0.0, "kind": "elsewhere", "method": ON_NODE_MAIN}
        if self.rapl.available:
            return {"j": cpu_j, "kind": "measured", "method": RAPL_PACKAGE}
        if codecarbon is not None:
            return {"j": codecarbon.cpu_j, "kind": "estimated", "method": codecarbon.cpu_method}
        why = f"not measured: {self.rapl.reason}; {self._codecarbon_reason}"
        return {"j": 0.0, "kind": "none", "method": why}

    def _mem_part(self, mem_j: float, codecarbon: CodeCarbonResult | None) -> dict:
        if not self.node_main:
            return {"j": 0.0, "kind": "elsewhere", "method": ON_NODE_MAIN}
        if self.rapl.available and self.rapl.dram:
            return {"j": mem_j, "kind": "measured", "method": RAPL_DRAM}
        if codecarbon is not None:
            return {"j": codecarbon.mem_j, "kind": "estimated", "method": codecarbon.mem_method}
        why = f"not measured: no RAPL dram domain; {self._codecarbon_reason}"
        return {"j": 0.0, "kind": "none", "method": why}

    def _slurm(self) -> dict | None:
        job_id = self.environ.get("SLURM_JOB_ID")
        if not job_id:
            return None
        return {"job_id": job_id, "step_id": self.environ.get("SLURM_STEP_ID"),
                "node_list": self.environ.get("SLURM_JOB_NODELIST")}

    # --- the CLI's wrapper -----------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def for_job(cls, cfg, out_path: Path, label: str) -> Iterator[EnergyMeter]:
        """Meter one job: yields the started meter; on exit (also on error) appends this rank's record
        to `out_path` (the job name in the record is the file's stem, e.g. train-stable-000050). A failed
        attempt's record also goes to energy/failed/<job>.jsonl, which Snakemake does not delete."""
        out_path = Path(out_path)
        energy_cfg = cfg.energy if cfg is not None else EnergyConfig()
        site = cfg.site if cfg is not None else SiteConfig()
        meter = cls(energy_cfg, site).start()
        status = "ok"
        try:
            yield meter
        except BaseException as err:
            status = f"error: {type(err).__name__}"
            raise
        finally:
            record = meter.stop(job=out_path.stem, label=label, status=status)
            append_record(out_path, record)
            if status != "ok":
                append_record(failed_log(out_path), record)
