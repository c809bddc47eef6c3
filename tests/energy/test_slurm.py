"""sacct's ConsumedEnergy next to the meter's figures. No SLURM accounting runs here, so a small `sacct`
script on PATH prints what sacct prints (the parsing and every failure path are what is tested)."""

from __future__ import annotations

import os
import stat

import pytest

from tessera.energy.records import append_record
from tessera.energy.report import write_report
from tessera.energy.slurm import sacct_energies
from tessera.layout import RunLayout


@pytest.fixture
def fake_sacct(tmp_path, monkeypatch):
    """Install `sacct` printing `stdout` and exiting with `code`; returns the installer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def install(stdout: str, code: int = 0, stderr: str = "") -> None:
        script = bin_dir / "sacct"
        script.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\nprintf '%s' '{stderr}' >&2\nexit {code}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    return install


def test_consumed_energy_of_the_allocation(fake_sacct):
    fake_sacct("4242|5400000\n4242.batch|1000\n4242.0|5300000\n")
    got = sacct_energies(["4242"])["4242"]
    assert got.consumed_j == 5.4e6
    assert "allocation" in got.note


def test_no_energy_plugin_is_noted(fake_sacct):
    fake_sacct("4242|0\n")
    got = sacct_energies(["4242"])["4242"]
    assert got.consumed_j is None and "acct_gather_energy" in got.note


def test_failing_sacct_is_noted(fake_sacct):
    fake_sacct("", code=1, stderr="sacct: error: Slurm accounting storage is disabled")
    got = sacct_energies(["4242"])["4242"]
    assert got.consumed_j is None and "exit 1" in got.note and "disabled" in got.note


def test_unknown_job_is_noted(fake_sacct):
    fake_sacct("")
    assert "no record of job 4242" in sacct_energies(["4242"])["4242"].note


def test_absent_sacct_is_noted(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert sacct_energies(["4242"])["4242"].note == "sacct not found on this machine"


def test_report_puts_sacct_next_to_the_meter(fake_sacct, run_config, make_record):
    fake_sacct("77|7200\n")
    cfg = run_config()
    layout = RunLayout(cfg.out_dir)
    append_record(
        layout.energy_dir / "prepare_data.jsonl", make_record("prepare_data", cpu_j=100.0, slurm_job_id="77")
    )
    summary = write_report(cfg)
    assert summary.jobs[0].sacct_j == 7200.0
    assert [(row.job_id, row.consumed_j) for row in summary.slurm] == [("77", 7200.0)]
    assert "| 77 | 2 |" in (layout.reports_dir / "energy.md").read_text()


def test_one_query_for_many_jobs(fake_sacct):
    fake_sacct("1|3600\n2|0\n")
    got = sacct_energies(["1", "2", "3"])
    assert got["1"].consumed_j == 3600.0
    assert got["2"].consumed_j is None and "acct_gather_energy" in got["2"].note
    assert "no record of job 3" in got["3"].note


def test_elapsed_and_nodes_give_node_hours(fake_sacct):
    fake_sacct("4242|5400000|7200|4\n4242.0|5300000|7100|4\n")
    got = sacct_energies(["4242"])["4242"]
    assert got.elapsed_s == 7200 and got.num_nodes == 4 and got.node_hours == 8.0
