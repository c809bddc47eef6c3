"""CPU and memory energy estimates, and the grid's carbon intensity, from CodeCarbon's offline tracker.

CodeCarbon measures in its own thread every `measure_power_secs`: CPU power from RAPL where readable,
else from the CPU model's TDP scaled by load (or a constant), and memory power from the installed RAM.
Run here as `OfflineEmissionsTracker` with no output methods, so it writes no file, opens no socket and
takes its country's intensity from the table shipped in the package.

Per-step reads must not flush CodeCarbon (a flush re-measures through psutil), and CodeCarbon books a
whole interval's energy at once when it measures, a step in any curve read from its totals. So the
meter integrates `power_w()`, the last power CodeCarbon measured, itself: a continuous curve for the
per-step figures; the job's record takes CodeCarbon's own total at `stop()`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tessera.energy.records import KWH_J

__all__ = ["CodeCarbonEstimator", "CodeCarbonResult"]


@dataclass
class CodeCarbonResult:
    cpu_j: float
    mem_j: float
    cpu_method: str
    mem_method: str
    emissions_kg: float
    intensity_g_per_kwh: float | None
    """CodeCarbon's grid intensity for the country (its emissions over its energy)."""
    country: str
    version: str


class CodeCarbonEstimator:
    """Wraps one OfflineEmissionsTracker; `start` and `stop` say (False/None, with `reason`) when
    CodeCarbon fails, and never raise: an estimator must not end a training job."""

    def __init__(self, country: str, interval_s: float):
        self.country = country
        self.interval_s = interval_s
        self.reason = ""
        self._tracker = None

    def start(self) -> bool:
        try:
            from codecarbon import OfflineEmissionsTracker
            from codecarbon import __version__ as version
        except ImportError as err:
            self.reason = f"CodeCarbon not importable ({err})"
            return False
        self.version = version
        # CodeCarbon logs an INFO line per measurement; the job log should show our figures, not its.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        try:
            tracker = OfflineEmissionsTracker(
                country_iso_code=self.country,
                measure_power_secs=self.interval_s,
                output_methods=[],  # no emissions.csv, no API, no Prometheus: we write our own record
                log_level="error",
                tracking_mode="machine",  # one tracker per node (local rank 0): the node's CPU and RAM
                allow_multiple_runs=True,  # no lock file in /tmp; concurrent jobs on a node are expected
            )
            tracker.start()
        except Exception as err:  # CodeCarbon is an estimator: its failure must not stop a training job
            self.reason = f"CodeCarbon failed to start ({type(err).__name__}: {err})"
            return False
        self._tracker = tracker
        return True

    def _hardware(self, kind: str) -> str:
        """CodeCarbon's description of how it measures `kind` ('CPU' or 'RAM'), e.g. 'CPU(Cpu Load)'."""
        described = getattr(self._tracker, "_conf", {}).get("hardware", [])
        found = next((d for d in described if d.startswith(kind)), kind)
        return found.removesuffix("()")

    def power_w(self) -> tuple[float, float]:
        """(CPU W, memory W) of CodeCarbon's last measurement (attribute reads: cheap)."""
        return self._tracker._cpu_power.W, self._tracker._ram_power.W

    def stop(self) -> CodeCarbonResult | None:
        t = self._tracker
        try:
            t.stop()
            data = t.final_emissions_data
        except Exception as err:
            self.reason = f"CodeCarbon failed to stop ({type(err).__name__}: {err})"
            return None
        energy_kwh = data.energy_consumed
        return CodeCarbonResult(
            cpu_j=data.cpu_energy * KWH_J,
            mem_j=data.ram_energy * KWH_J,
            cpu_method=f"CodeCarbon {self.version} {self._hardware('CPU')}: {data.cpu_model}, "
            f"{data.cpu_count:g} CPUs",
            mem_method=f"CodeCarbon {self.version} {self._hardware('RAM')}: {data.ram_total_size:.1f} GB",
            emissions_kg=data.emissions,
            intensity_g_per_kwh=data.emissions / energy_kwh * 1e3 if energy_kwh > 0 else None,
            country=data.country_iso_code or self.country,
            version=self.version,
        )
