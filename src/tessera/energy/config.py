"""The `energy:` section: how the meter samples, which estimators it uses, and the reference tables
(grid carbon intensity per country, GPU types) that the report and the trainer's MFU read."""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.errors import ConfigError

__all__ = ["EnergyConfig", "GpuType", "DEFAULT_GRID_INTENSITY", "DEFAULT_GPU_TYPES"]

# gCO2e per kWh of electricity, by ISO 3166-1 alpha-3 code. Source: CodeCarbon 3.3's offline table
# (codecarbon/data/private_infra/global_energy_mix.json: Our World in Data electricity mix for 2023,
# weighted by IPCC AR5 life-cycle intensity per source), so the report and CodeCarbon's own figure agree.
# The countries are those of the EuroHPC sites (Leonardo ITA, MareNostrum 5 ESP, LUMI FIN, JUPITER DEU,
# MeluXina LUX, Karolina CZE, Vega SVN, Deucalion PRT, Discoverer BGR) plus France and Sweden.
DEFAULT_GRID_INTENSITY: dict[str, float] = {
    "ITA": 330.7,
    "ESP": 174.1,
    "FRA": 56.0,
    "DEU": 381.0,
    "FIN": 79.2,
    "SWE": 40.7,
    "LUX": 105.3,
    "CZE": 449.7,
    "SVN": 231.3,
    "PRT": 165.6,
    "BGR": 335.3,
}


@dataclass
class GpuType:
    """Peak figures of one accelerator model: the trainer's MFU and the report's energy-per-FLOP floor."""

    peak_bf16_flops: float
    """Peak dense (no sparsity) bf16 tensor-core throughput, FLOP/s."""
    board_power_w: float
    """Board power limit (TDP), W: the power at which the peak is reached."""
    description: str = ""
    """What the entry is and where its figures come from."""
    memory_gb: float | None = None
    """Device memory, GB: the planner keeps shapes whose model state leaves room for activations."""

    def check(self, where: str) -> None:
        if self.peak_bf16_flops <= 0 or self.board_power_w <= 0:
            raise ConfigError(f"{where}: peak_bf16_flops and board_power_w must be positive")
        if self.memory_gb is not None and self.memory_gb <= 0:
            raise ConfigError(f"{where}.memory_gb: {self.memory_gb} must be positive, or null")

    @property
    def floor_j_per_flop(self) -> float:
        """The least energy one FLOP can cost on this GPU: board power over peak throughput."""
        return self.board_power_w / self.peak_bf16_flops


# Datasheet figures (NVIDIA A100 and H100 datasheets: 312 and 989 dense bf16 TFLOP/s; SXM TDP 400 W
# and 700 W). Leonardo's A100 64 GB and MareNostrum 5's H100 64 GB are custom parts with the SXM
# compute; read their power limit on a node with `nvidia-smi -q -d POWER` and override board_power_w
# if it differs.
DEFAULT_GPU_TYPES: dict[str, GpuType] = {
    "A100-64GB": GpuType(312e12, 400.0, "Leonardo Booster: custom A100 SXM 64 GB HBM2e, 4 per node", 64.0),
    "H100-64GB": GpuType(989e12, 700.0, "MareNostrum 5 ACC: H100 SXM 64 GB HBM2, 4 per node", 64.0),
    "A100-80GB": GpuType(312e12, 400.0, "A100 SXM4 80 GB", 80.0),
    "H100-80GB": GpuType(989e12, 700.0, "H100 SXM5 80 GB", 80.0),
    "H200": GpuType(989e12, 700.0, "H200 SXM 141 GB (same compute as H100 SXM)", 141.0),
}


@dataclass
class EnergyConfig:
    sample_interval_s: float = 1.0
    """Period of the background thread's power samples (GPU via NVML, CPU via RAPL/CodeCarbon), for plots."""
    codecarbon: bool = True
    """Estimate CPU and memory energy with CodeCarbon's OfflineEmissionsTracker where RAPL is unreadable."""
    codecarbon_interval_s: float = 15.0
    """CodeCarbon's own measurement period (its `measure_power_secs`)."""
    max_samples: int = 2000
    """Power samples kept per job record; longer jobs are averaged into this many bins (energy kept)."""
    grid_intensity: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GRID_INTENSITY))
    """gCO2e/kWh per ISO 3166-1 alpha-3 country code: the site's grid and the grids it is compared with."""
    gpu_types: dict[str, GpuType] = field(default_factory=lambda: dict(DEFAULT_GPU_TYPES))
    """Accelerator models by name (`site.gpu_type` picks one): peak bf16 FLOP/s and board power."""

    def check(self, where: str) -> None:
        if self.sample_interval_s <= 0:
            raise ConfigError(f"{where}.sample_interval_s: {self.sample_interval_s} must be > 0 seconds")
        if self.codecarbon_interval_s <= 0:
            raise ConfigError(f"{where}.codecarbon_interval_s: {self.codecarbon_interval_s} must be > 0 s")
        if self.max_samples < 2:
            raise ConfigError(f"{where}.max_samples: {self.max_samples} must be at least 2")
        for country, value in self.grid_intensity.items():
            if len(country) != 3 or not country.isupper():
                raise ConfigError(f"{where}.grid_intensity.{country}: keys are ISO alpha-3 codes like ITA")
            if value < 0:
                raise ConfigError(f"{where}.grid_intensity.{country}: {value} gCO2e/kWh must be >= 0")

    def check_site(self, site, where: str = "site") -> None:
        """Cross-section check: the site's country and GPU type must be in this section's tables."""
        if site.country not in self.grid_intensity:
            raise ConfigError(
                f"{where}.country: {site.country} has no entry in energy.grid_intensity; add its gCO2e/kWh "
                f"there (known: {', '.join(sorted(self.grid_intensity))})"
            )
        if site.gpu_type is not None and site.gpu_type not in self.gpu_types:
            raise ConfigError(
                f"{where}.gpu_type: {site.gpu_type!r} is not in energy.gpu_types; allowed: "
                f"{', '.join(sorted(self.gpu_types))} (or null on CPU-only machines)"
            )
