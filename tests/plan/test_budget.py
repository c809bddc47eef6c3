"""Budget tracking: node-hours from sacct (elapsed x nodes) or from the energy records, the projection
at completion, the warning the workflow's onstart prints, and the energy report's Budget section."""

from __future__ import annotations

import os
import stat

import pytest

from tessera.config import load
from tessera.energy.records import append_record
from tessera.energy.report import write_report
from tessera.layout import RunLayout
from tessera.plan.budget import budget_status, print_budget, warn_if_over_allocation
from tests.energy.conftest import record

from .conftest import REPO


@pytest.fixture
def fake_sacct(tmp_path, monkeypatch):
    """`sacct` on PATH printing the given lines (JobID|ConsumedEnergyRaw|ElapsedRaw|NNodes)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def install(stdout: str) -> None:
        script = bin_dir / "sacct"
        script.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    return install


def _run(tmp_path, allocation: float):
    """A Leonardo run one segment (1000 of 22000 steps) in: two nodes for an hour under SLURM job 11,
    and a data job without SLURM (its node-hours from the energy record)."""
    cfg = load(
        [REPO / "config.yaml", REPO / "configs" / "leonardo.yaml"],
        [f"run.results_dir={tmp_path / 'results'}", f"site.allocation_node_hours={allocation}"],
    )
    layout = RunLayout(cfg.out_dir)
    for node in ("n1", "n2"):
        append_record(
            layout.energy_dir / "train-stable-001000.jsonl",
            record("train-stable-001000", node=node, cpu_j=3.6e6, time_s=3000.0, slurm_job_id="11"),
        )
    append_record(layout.energy_dir / "prepare_data.jsonl", record("prepare_data", cpu_j=1.0, time_s=1800.0))
    layout.checkpoint("stable", 1000).mkdir(parents=True)
    return cfg


def test_node_hours_from_sacct_and_the_projection(tmp_path, fake_sacct, capsys):
    fake_sacct("11|7200000|3600|2\n")
    cfg = _run(tmp_path, allocation=300000)
    status = print_budget(cfg)
    # sacct charges 2 nodes x 1 h for the segment (the records saw 3000 s); the data job 0.5 node-h.
    assert status.train_node_hours == pytest.approx(2.0)
    assert status.spent_node_hours == pytest.approx(2.5)
    assert status.spent_source == "energy records + sacct elapsed x nodes"
    assert status.sacct_kwh == pytest.approx(2.0)
    assert status.steps_done == 1000 and status.steps_total == 22000
    assert status.projected_node_hours == pytest.approx(2.5 + 21000 * 2.0 / 1000)
    assert status.measured_tokens_per_s == pytest.approx(1000 * 512 * 4096 / 3000.0)
    assert "fits the allocation" in status.verdict
    printed = capsys.readouterr().out
    assert "| allocation | 300,000.0 | node-h |" in printed and "kWh from sacct" in printed
    assert warn_if_over_allocation(cfg) is None


def test_onstart_warns_when_the_rest_does_not_fit(tmp_path, fake_sacct):
    fake_sacct("11|0|3600|2\n")
    cfg = _run(tmp_path, allocation=40)
    message = warn_if_over_allocation(cfg)
    assert message and "EXCEEDS the allocation" in message


def test_before_any_job_the_projection_uses_the_assumed_throughput(tmp_path):
    cfg = load(
        [REPO / "config.yaml", REPO / "configs" / "leonardo.yaml"],
        [f"run.results_dir={tmp_path / 'results'}", "site.allocation_node_hours=100"],
    )
    status = budget_status(cfg)
    assert status.spent_node_hours == 0 and status.projection_basis.startswith("assumed MFU")
    # 22000 steps of 2M tokens of OLMoE-1B-7B at 35% MFU are far more than 100 node-hours.
    assert status.projected_node_hours > 100 and warn_if_over_allocation(cfg)


def test_the_energy_report_has_the_budget(tmp_path, fake_sacct):
    fake_sacct("11|7200000|3600|2\n")
    cfg = _run(tmp_path, allocation=300000)
    summary = write_report(cfg)
    assert summary.budget.spent_node_hours == pytest.approx(2.5)
    assert summary.slurm[0].elapsed_s == 3600 and summary.slurm[0].num_nodes == 2
    md = (RunLayout(cfg.out_dir).reports_dir / "energy.md").read_text()
    assert "## Budget" in md and "fits the allocation" in md


def test_the_plan_gives_allocation_and_rate_before_training(tmp_path, leonardo):
    from tessera.plan.planner import make_plan
    from tessera.plan.render import write_plan

    files = [REPO / "config.yaml", REPO / "configs" / "leonardo.yaml"]
    cfg = load(files, [f"run.results_dir={tmp_path / 'results'}"])
    plan = make_plan(cfg, leonardo[1], 5000.0, nodes=2, shapes=["olmoe-1b-7b"])
    write_plan(cfg, plan, RunLayout(cfg.out_dir).plan_dir)
    status = budget_status(cfg)
    rate = plan.shape().throughput.tokens_per_s_per_gpu * 4 * 2
    assert status.allocation_node_hours == 5000 and status.projection_basis == "plan.json's tokens/s"
    assert status.planned_tokens_per_s == pytest.approx(rate)
    tokens = sum(s.num_steps * s.tokens_per_step for s in cfg.train.stages)
    assert status.projected_node_hours == pytest.approx(tokens * 2 / rate / 3600)
