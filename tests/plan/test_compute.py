"""The plan's arithmetic, each formula against a hand computation."""

from __future__ import annotations

import pytest

from tessera.model.config import PRESETS
from tessera.plan.compute import (
    Assumptions,
    Throughput,
    checkpoint_every_for,
    it_kwh,
    node_hours_for_flops,
    plan_shape,
    tokens_for_node_hours,
)
from tessera.plan.flops import flops_per_token, threshold_verdicts


def test_site_facts_come_from_the_repository(leonardo):
    _, site = leonardo
    assert (site.name, site.country, site.gpu_type, site.pue) == ("leonardo", "ITA", "A100-64GB", 1.1)
    assert site.gpus_per_node == 4 and site.gpu.peak_bf16_flops == 312e12
    assert site.segment_limit_h == 24 and site.signal_lead_s == 900
    assert site.grid_g_per_kwh == 330.7 and site.cpu_partition


def test_node_hours_tokens_and_energy(leonardo):
    _, site = leonardo
    # 1e21 FLOP at 40% of 4 x 312 TFLOP/s: 1e21 / (4 x 312e12 x 0.4 x 3600) node-hours.
    assert node_hours_for_flops(1e21, site, 0.4) == pytest.approx(1e21 / (4 * 312e12 * 0.4 * 3600))
    throughput = Throughput(tokens_per_s_per_gpu=5000.0, mfu=0.4, watts_per_gpu=300.0, basis="assumed")
    assert tokens_for_node_hours(10.0, site, throughput) == pytest.approx(10 * 3600 * 4 * 5000)
    # 10 node-hours at 4 x 300 W + 400 W = 16 kWh IT.
    assert it_kwh(10.0, 4, 300.0, 400.0) == pytest.approx(16.0)


def test_a_shape_plan_is_consistent(leonardo):
    _, site = leonardo
    model = PRESETS["olmoe-1b-7b"]
    flops = flops_per_token(model, 4096)
    a = Assumptions()
    throughput = Throughput(site.gpu.peak_bf16_flops * 0.3 / flops.hardware, 0.3, 340.0, "assumed")
    shape = plan_shape("x", model, flops, throughput, site, 1000.0, 8, 512 * 4096, 4096, a)
    assert shape.tokens == shape.steps * 512 * 4096
    assert shape.training_flops == pytest.approx(shape.tokens * (flops.dense + flops.attention))
    assert shape.attention_flops == pytest.approx(shape.tokens * flops.attention)
    # The hardware FLOPs of those tokens take the training node-hours at the assumed MFU (whole steps).
    hours = node_hours_for_flops(shape.tokens * flops.hardware, site, 0.3)
    assert hours == pytest.approx(1000.0, rel=1e-4)
    assert shape.wall_days == pytest.approx(1000.0 / 8 / 24)
    assert shape.it_kwh == pytest.approx(1000.0 * (4 * 340.0 + a.node_overhead_w) / 1000)
    assert shape.facility_kwh == pytest.approx(shape.it_kwh * 1.1)
    assert shape.co2e_kg == pytest.approx(shape.facility_kwh * 330.7 / 1000)
    assert shape.segments * shape.checkpoint_every >= shape.steps


def test_segments_fit_the_time_limit(leonardo):
    _, site = leonardo
    every = checkpoint_every_for(site, step_time_s=7.0)
    usable = 24 * 3600 - 900 - 600
    assert usable // 7 == 12128 and every == 12000  # two significant digits, rounded down


def test_threshold_verdicts():
    below, above = threshold_verdicts(5e22), threshold_verdicts(2e25)
    assert below[0].startswith("below 1e+23") and below[1].startswith("below 1e+25")
    assert above[0].startswith("ABOVE 1e+23") and above[1].startswith("ABOVE 1e+25")
    assert "Art. 52" in above[1]
