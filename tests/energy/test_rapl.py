"""RAPL counters through a powercap tree written by the test (the kernel's file interface)."""

from __future__ import annotations

import pytest

from tessera.energy.rapl import RaplCounters


def test_rapl_counter_wraparound(tmp_path, powercap):
    powercap(tmp_path, package_uj=900, max_uj=1000)
    counters = RaplCounters.open(tmp_path)
    powercap(tmp_path, package_uj=100, max_uj=1000)  # wrapped: 900 -> 1000 -> 100 = 200 uJ
    cpu_j, dram_j = counters.read_j()
    assert cpu_j == pytest.approx(200e-6) and dram_j is None


def test_unreadable_rapl_says_why(tmp_path):
    (tmp_path / "intel-rapl:0").mkdir()
    (tmp_path / "intel-rapl:0" / "name").write_text("package-0\n")  # no energy_uj: like a root-only file
    counters = RaplCounters.open(tmp_path)
    assert not counters.available and "not readable" in counters.reason
