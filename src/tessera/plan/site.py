"""A site as the planner needs it, read from what the repository already has: the site's config preset
(`configs/<site>.yaml`: site name, country, PUE, GPU type), the energy tables of the merged config
(`energy.gpu_types`, `energy.grid_intensity`) and the site's Snakemake profile
(`profiles/<site>/config.yaml`: GPUs per node, the training job's time limit and USR1 lead, the
partition CPU jobs run on). Nothing here is a second copy of those facts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tessera.config import RunConfig
from tessera.energy.config import GpuType
from tessera.errors import ConfigError
from tessera.names import check_name

__all__ = ["SiteRecord", "site_record", "site_config_files", "read_profile"]


@dataclass(frozen=True)
class SiteRecord:
    name: str
    """site.name of the config (leonardo, marenostrum5)."""
    preset: str
    """The file stem of configs/<preset>.yaml and profiles/<preset>/."""
    country: str
    pue: float
    grid_g_per_kwh: float
    gpu_type: str
    gpu: GpuType
    gpus_per_node: int
    segment_limit_h: float
    """The profile's `train` runtime: the SLURM time limit of one training segment."""
    signal_lead_s: float
    """USR1 this long before the limit: the segment saves and exits then."""
    cpu_partition: str
    """Partition of the CPU jobs (data preparation, tokenizer)."""


def site_config_files(root: Path, preset: str) -> list[Path]:
    """config.yaml and configs/<preset>.yaml, as a cluster run layers them."""
    check_name(preset, "--site")
    path = root / "configs" / f"{preset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "configs").glob("*.yaml"))
        raise ConfigError(f"--site {preset}: no {path}; sites with a config preset: {', '.join(known)}")
    return [root / "config.yaml", path]


def read_profile(root: Path, preset: str) -> dict:
    check_name(preset, "--site")
    path = root / "profiles" / preset / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"--site {preset}: no Snakemake profile {path}; the planner reads the site's "
            "GPUs per node and time limit from it"
        )
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _train_resources(profile: dict, path: str) -> dict:
    train = (profile.get("set-resources") or {}).get("train")
    if not isinstance(train, dict):
        raise ConfigError(f"{path}: set-resources.train is missing; it holds the training job's geometry")
    return train


def site_record(cfg: RunConfig, root: Path, preset: str) -> SiteRecord:
    """The planner's view of a site: cfg is config.yaml + configs/<preset>.yaml (or the user's files)."""
    site = cfg.site
    where = f"profiles/{preset}/config.yaml"
    if site.gpu_type is None:
        raise ConfigError(
            f"site.gpu_type is null in the config for --site {preset}: the planner needs a GPU "
            "type from energy.gpu_types"
        )
    profile = read_profile(root, preset)
    train = _train_resources(profile, where)
    gres = re.fullmatch(r"gpu(?::[\w-]+)?:(\d+)", str(train.get("gres", "")))
    if gres is None:
        raise ConfigError(f"{where}: set-resources.train.gres {train.get('gres')!r} is not gpu:<count>")
    lead = re.search(r"USR1@(\d+)", str(train.get("slurm_extra", "")))
    defaults = profile.get("default-resources") or {}
    prepare = (profile.get("set-resources") or {}).get("prepare_data") or {}
    return SiteRecord(
        name=site.name,
        preset=preset,
        country=site.country,
        pue=site.pue,
        grid_g_per_kwh=cfg.energy.grid_intensity[site.country],
        gpu_type=site.gpu_type,
        gpu=cfg.energy.gpu_types[site.gpu_type],
        gpus_per_node=int(gres.group(1)),
        segment_limit_h=float(train.get("runtime", defaults.get("runtime", 60))) / 60,
        signal_lead_s=float(lead.group(1)) if lead else 0.0,
        cpu_partition=str(prepare.get("slurm_partition", defaults.get("slurm_partition", ""))),
    )
