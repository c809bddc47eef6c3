"""The `energy:` section and its cross-check with `site:`."""

from __future__ import annotations

import pytest

from tessera.config import SiteConfig, from_dict
from tessera.energy.config import DEFAULT_GPU_TYPES, EnergyConfig
from tessera.errors import ConfigError


def test_defaults_cover_the_eurohpc_sites():
    cfg = from_dict(EnergyConfig, {}, "energy")
    assert {"ITA", "ESP"} <= set(cfg.grid_intensity)
    assert {"A100-64GB", "H100-64GB"} <= set(cfg.gpu_types)
    cfg.check_site(SiteConfig(name="leonardo", country="ITA", gpu_type="A100-64GB"))


def test_gpu_types_from_yaml_and_the_floor():
    cfg = from_dict(
        EnergyConfig,
        {"gpu_types": {"X": {"peak_bf16_flops": "1.0e+15", "board_power_w": 500.0}}},
        "energy",
    )
    assert cfg.gpu_types["X"].floor_j_per_flop == pytest.approx(5e-13)
    assert DEFAULT_GPU_TYPES["H100-64GB"].floor_j_per_flop == pytest.approx(700 / 989e12)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"sample_interval_s": 0}, "energy.sample_interval_s"),
        ({"codecarbon_interval_s": -1}, "energy.codecarbon_interval_s"),
        ({"max_samples": 1}, "energy.max_samples"),
        ({"grid_intensity": {"italy": 300.0}}, "energy.grid_intensity.italy"),
        ({"grid_intensity": {"ITA": -1.0}}, "energy.grid_intensity.ITA"),
        ({"gpu_types": {"X": {"peak_bf16_flops": 0, "board_power_w": 1.0}}}, "energy.gpu_types.X"),
        ({"gpu_types": {"X": {"board_power_w": 1.0}}}, "energy.gpu_types.X.peak_bf16_flops"),
        ({"sampling": 1}, "unknown key"),
    ],
)
def test_bad_values_name_their_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(EnergyConfig, data, "energy")


def test_site_must_be_in_the_tables():
    cfg = EnergyConfig()
    with pytest.raises(ConfigError, match=r"site\.country: POL has no entry in energy\.grid_intensity"):
        cfg.check_site(SiteConfig(country="POL"))
    with pytest.raises(ConfigError, match=r"site\.gpu_type: 'B200' is not in energy\.gpu_types"):
        cfg.check_site(SiteConfig(gpu_type="B200"))
