"""CodeCarbon's offline tracker: CPU and memory estimates and the grid intensity, with no network and
no files written outside our own record."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tessera.config import SiteConfig
    from tessera.energy.config import EnergyConfig
    from tessera.energy.meter import EnergyMeter
    cfg = EnergyConfig(sample_interval_s=0.1, codecarbon=True, codecarbon_interval_s=0.5)
    meter = EnergyMeter(cfg, SiteConfig(country=sys.argv[1]), environ={}).start()
    time.sleep(1.2)
    reading = meter.read()
    record = meter.stop("j", "j")
    print(json.dumps({"reading": [reading.cpu_j, reading.mem_j], "record": record}))
""")


def _no_network_prefix() -> list[str]:
    """`unshare -rn` (a user namespace with no network interface but loopback down) where allowed."""
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    return ["unshare", "-rn"] if probe.returncode == 0 else []


@pytest.mark.parametrize("country", ["ESP"])
def test_codecarbon_offline_without_network(tmp_path, country):
    prefix = _no_network_prefix()
    if not prefix:
        pytest.skip("cannot create a network namespace here (unshare -rn refused)")
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", SCRIPT, country],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    record = out["record"]
    for comp in ("cpu", "mem"):
        assert record[comp]["kind"] == "estimated" and "CodeCarbon" in record[comp]["method"]
        assert record[comp]["j"] > 0
    assert out["reading"][1] > 0  # per-step reads see the estimate before CodeCarbon stops
    assert record["codecarbon"]["country"] == country
    assert record["codecarbon"]["intensity_g_per_kwh"] == pytest.approx(174.05, rel=0.01)  # ESP, 2023
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no lock file, nothing in HOME
