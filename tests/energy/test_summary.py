"""The typed energy summary: schema version checked on read, schema-1 field names kept, and one report
over a run that moved from one site to another (per-site PUE, grid and CO2e)."""

from __future__ import annotations

import json

import pytest

from tessera.energy.records import append_record
from tessera.energy.report import write_report
from tessera.energy.summary import SCHEMA_VERSION, EnergySummary
from tessera.errors import DataError
from tessera.layout import RunLayout


def _at(record: dict, name: str, country: str, pue: float) -> dict:
    record["site"] = {"name": name, "country": country, "pue": pue, "gpu_type": None}
    return record


def test_a_run_continued_at_another_site_reports_both(run_config, make_record):
    cfg = run_config(pue=1.1)  # the report's own site: "test", ITA
    layout = RunLayout(cfg.out_dir)
    e = layout.energy_dir
    append_record(
        e / "train-stable-000002.jsonl",
        _at(make_record("train-stable-000002", cpu_j=3.6e6, time_s=3600.0), "test", "ITA", 1.0),
    )
    # The next segment ran at MareNostrum 5 on two nodes; its records carry that site's PUE and country.
    for node in ("as01", "as02"):
        record = make_record(
            "train-stable-000004", node=node, cpu_j=3.6e6, start=5000.0, time_s=1800.0, invocation="mn5"
        )
        append_record(e / "train-stable-000004.jsonl", _at(record, "marenostrum5", "ESP", 1.2))
    summary = write_report(cfg, query_sacct=False)

    sites = {s.name: s for s in summary.sites}
    assert list(sites) == ["test", "marenostrum5"]
    # The own site takes the config's PUE (1.1), not the record's (1.0); the other site its records'.
    assert sites["test"].pue == 1.1 and sites["test"].it_kwh == pytest.approx(1.0)
    assert sites["test"].co2e_kg == pytest.approx(1.1 * 330.7 / 1e3)
    assert sites["marenostrum5"].pue == 1.2 and sites["marenostrum5"].country == "ESP"
    assert sites["marenostrum5"].gpu_type is None  # the records' site.gpu_type
    assert sites["marenostrum5"].it_kwh == pytest.approx(2.0)
    # No GPU, CPU and memory estimated by CodeCarbon at both sites: the IT energy of each is estimated.
    assert sites["test"].it_kind == sites["marenostrum5"].it_kind == "estimated"
    assert sites["marenostrum5"].node_hours == pytest.approx(1.0)  # 2 nodes x 0.5 h
    assert sites["marenostrum5"].co2e_kg == pytest.approx(2.0 * 1.2 * 174.1 / 1e3)
    assert summary.totals.facility_kwh.value == pytest.approx(1.1 + 2.4)
    assert summary.totals.co2e_kg.value == pytest.approx(1.1 * 0.3307 + 2.4 * 0.1741)
    assert summary.totals.node_hours.value == pytest.approx(2.0)
    assert any("marenostrum5" in note for note in summary.notes)
    md = (layout.reports_dir / "energy.md").read_text()
    assert "## Sites" in md and "| marenostrum5 | ESP | 1.2 |" in md


def test_energy_json_keeps_schema_1_names_and_adds_the_version(run_config, make_record):
    cfg = run_config()
    layout = RunLayout(cfg.out_dir)
    append_record(layout.energy_dir / "prepare_data.jsonl", make_record("prepare_data", cpu_j=10.0))
    write_report(cfg, query_sacct=False)
    data = json.loads((layout.reports_dir / "energy.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["schema"] == SCHEMA_VERSION
    for key in ("totals", "components", "stages", "jobs", "grids", "training", "slurm", "notes", "sites"):
        assert key in data, key
    assert data["totals"]["it_kwh"].keys() == {"value", "unit", "kind", "method"}
    assert "codecarbon_intensity_g_per_kwh" in data["totals"]  # make_record's CodeCarbon figure
    assert {"num_gpus", "num_nodes", "rule", "gpu_hours", "time_s"} <= data["jobs"][0].keys()
    assert {"tokens", "flops", "energy_it_kwh", "energy_gpu_kwh", "per_stage"} <= data["training"].keys()


def test_reading_checks_the_schema_version(tmp_path, run_config, make_record):
    cfg = run_config()
    layout = RunLayout(cfg.out_dir)
    append_record(layout.energy_dir / "prepare_data.jsonl", make_record("prepare_data", cpu_j=10.0))
    summary = write_report(cfg, query_sacct=False)
    path = layout.reports_dir / "energy.json"
    assert EnergySummary.read(path).totals.it_kwh.value == summary.totals.it_kwh.value
    old = json.loads(path.read_text())
    del old["schema_version"]
    old["schema"] = 1
    path.write_text(json.dumps(old))
    with pytest.raises(DataError, match=f"schema_version None, expected {SCHEMA_VERSION}.*energy_report"):
        EnergySummary.read(path)
    with pytest.raises(DataError, match="no energy summary"):
        EnergySummary.read(tmp_path / "absent.json")


def test_a_retry_at_another_site_counts_there(run_config, make_record):
    """A segment preempted at one site and resumed at another: each invocation at its own site."""
    cfg = run_config()
    layout = RunLayout(cfg.out_dir)
    log = layout.energy_dir / "train-stable-000002.jsonl"
    first = make_record("train-stable-000002", cpu_j=3.6e6, invocation="a1", status="error: PreemptedError")
    append_record(layout.energy_dir / "failed" / log.name, _at(first, "test", "ITA", 1.0))
    retry = make_record("train-stable-000002", cpu_j=7.2e6, invocation="a2", start=9000.0, time_s=7200.0)
    append_record(log, _at(retry, "marenostrum5", "ESP", 1.2))
    summary = write_report(cfg, query_sacct=False)
    (job,) = summary.jobs
    assert job.sites == ["test", "marenostrum5"] and job.invocations == 2
    sites = {s.name: s for s in summary.sites}
    assert sites["test"].it_kwh == pytest.approx(1.0) and sites["marenostrum5"].it_kwh == pytest.approx(2.0)
    assert sites["marenostrum5"].node_hours == pytest.approx(2.0) and sites["test"].jobs == 1
