"""A run trained at Leonardo and continued at MareNostrum 5: the technical documentation and the model card
list the energy of each site (IT kWh, PUE, kWh at the wall, grid, CO2e), and the totals are their sums."""

from __future__ import annotations

import json

import pytest

from tessera.energy.summary import EnergySummary
from tessera.errors import ReleaseError
from tessera.layout import RunLayout
from tessera.release.build import build_release
from tessera.release.validate import validate_document
from tests.release.conftest import LEONARDO, write_energy
from tests.release.test_release_consistency import Expected, _sites, numbers

# As configs/marenostrum.yaml: the site the anneal stage ran at.
MARENOSTRUM = {"name": "marenostrum5", "country": "ESP", "pue": 1.2, "gpu_type": "H100-64GB"}


@pytest.fixture
def two_site_run(release_run):
    cfg = release_run()
    write_energy(cfg, lambda job: MARENOSTRUM if job.startswith("train-anneal-") else LEONARDO)
    build_release(cfg)
    return cfg


def _released(cfg) -> tuple[dict, str, EnergySummary]:
    layout = RunLayout(cfg.out_dir)
    tech = json.loads((layout.release_dir / "ai_act" / "technical_documentation.json").read_text())
    card = (layout.release_dir / "README.md").read_text()
    return tech, card, EnergySummary.read(layout.reports_dir / "energy.json")


def test_the_documents_list_each_site_and_the_totals_are_their_sums(two_site_run):
    tech, _, summary = _released(two_site_run)
    validate_document(tech, "technical_documentation")
    energy = tech["sections"]["energy_consumption"]["fields"]
    rows = {r["site"]: r for r in energy["sites"]["rows"]}
    assert list(rows) == ["leonardo", "marenostrum5"]
    assert (rows["leonardo"]["country"], rows["leonardo"]["pue"]) == ("ITA", 1.1)
    assert (rows["marenostrum5"]["country"], rows["marenostrum5"]["pue"]) == ("ESP", 1.2)
    assert rows["leonardo"]["grid_g_per_kwh"] == two_site_run.energy.grid_intensity["ITA"]
    assert rows["marenostrum5"]["grid_g_per_kwh"] == two_site_run.energy.grid_intensity["ESP"]
    for row in rows.values():
        assert row["it_kwh"] > 0
        assert row["facility_kwh"] == pytest.approx(row["it_kwh"] * row["pue"])
        assert row["co2e_kg"] == pytest.approx(row["facility_kwh"] * row["grid_g_per_kwh"] / 1e3)
    for total, column in (
        ("it_energy_kwh", "it_kwh"),
        ("facility_energy_kwh", "facility_kwh"),
        ("co2e_kg", "co2e_kg"),
    ):
        assert energy[total]["value"] == pytest.approx(sum(r[column] for r in rows.values())), total
    assert sum(r["node_hours"] for r in rows.values()) == pytest.approx(summary.totals.node_hours.value)
    hardware = tech["sections"]["computational_resources"]["fields"]["hardware"]
    assert hardware["value"].startswith("A100-64GB") and "H100-64GB" in hardware["value"]
    assert "at marenostrum5" in hardware["value"] and hardware["basis"] == "declared"
    site = tech["sections"]["computational_resources"]["fields"]["site"]
    assert site["value"].startswith("leonardo, marenostrum5") and site["basis"] == "measured"
    assert "reports/energy.json: sites" in site["source"]


def test_each_site_figure_has_its_true_basis(two_site_run):
    tech, _, summary = _released(two_site_run)
    columns = {
        c["name"]: c["basis"] for c in tech["sections"]["energy_consumption"]["fields"]["sites"]["columns"]
    }
    # GPU energy from NVML, CPU and memory CodeCarbon's estimate: each site's IT energy is partly estimated.
    assert {s.it_kind for s in summary.sites} == {"estimated+measured"}
    assert columns["it_kwh"] == "estimated"
    assert columns["facility_kwh"] == columns["co2e_kg"] == "estimated"  # x PUE, x annual grid average
    assert columns["pue"] == columns["grid_g_per_kwh"] == "declared"
    expected = Expected()
    _sites(expected, summary)
    found = {path: (value, basis) for path, value, basis in numbers({"technical_documentation": tech})}
    for path, (value, basis) in expected.figures.items():
        assert found[path][0] == pytest.approx(value, rel=1e-12), path
        assert found[path][1] == basis, path


def test_the_model_card_shows_both_sites(two_site_run):
    _, card, _ = _released(two_site_run)
    table = card[card.index("**Energy and emissions per site**") :].split("\n\n")[1]
    assert "| leonardo | ITA |" in table and "| marenostrum5 | ESP |" in table


def test_a_single_site_card_keeps_the_totals_only(built_release):
    card = (RunLayout(built_release.out_dir).release_dir / "README.md").read_text()
    assert "Energy and emissions per site" not in card
    tech = json.loads(
        (RunLayout(built_release.out_dir).release_dir / "ai_act" / "technical_documentation.json").read_text()
    )
    assert [r["site"] for r in tech["sections"]["energy_consumption"]["fields"]["sites"]["rows"]] == [
        "leonardo"
    ]


def test_the_schema_requires_the_site_columns_when_the_table_is_there(two_site_run):
    tech, _, _ = _released(two_site_run)
    for row in tech["sections"]["energy_consumption"]["fields"]["sites"]["rows"]:
        del row["co2e_kg"]
    with pytest.raises(ReleaseError, match="co2e_kg"):
        validate_document(tech, "technical_documentation")
