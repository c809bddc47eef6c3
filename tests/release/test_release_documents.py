"""The AI Act documents: schemas, the threshold verdicts, and the Markdown people read."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from referencing import Registry, Resource

from tessera.errors import ReleaseError
from tessera.io import write_json
from tessera.layout import RunLayout
from tessera.release.documents import format_value, render_markdown
from tessera.release.validate import SCHEMA_FILES, validate_document
from tests.release.conftest import documents_of


def test_shipped_json_validates_against_the_shipped_schemas_with_plain_jsonschema(built_release):
    # Independent of tessera's validator: the copies in release/ai_act/schemas/ are enough for a reader.
    folder = RunLayout(built_release.out_dir).release_dir / "ai_act"
    schemas = {p.name: json.loads(p.read_text()) for p in (folder / "schemas").glob("*.json")}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    for kind, schema_file in SCHEMA_FILES.items():
        document = json.loads((folder / f"{kind}.json").read_text())
        assert document["$schema"] == schemas[schema_file]["$id"]
        jsonschema.Draft202012Validator(schemas[schema_file], registry=registry).validate(document)


@pytest.fixture
def documents(release_run):
    return documents_of(release_run())


def test_a_missing_field_or_wrong_basis_fails_validation_naming_it(documents):
    broken = copy.deepcopy(documents["training_content_summary"])
    del broken["sections"]["data_processing"]["fields"]["tdm_opt_out"]
    with pytest.raises(ReleaseError, match="sections/data_processing/fields.*'tdm_opt_out' is a required"):
        validate_document(broken, "training_content_summary")
    broken = copy.deepcopy(documents["technical_documentation"])
    broken["sections"]["energy_consumption"]["fields"]["co2e_kg"]["basis"] = "guessed"
    with pytest.raises(ReleaseError, match="co2e_kg"):
        validate_document(broken, "technical_documentation")


PUBLISHED = {"publication_url": "https://huggingface.co/tessera/tessera-test", "monetised": False}


def _conclusions(cfg) -> dict:
    return documents_of(cfg)["compute_thresholds"]["sections"]["conclusions"]["fields"]


def test_small_run_is_far_below_both_thresholds_and_compares_rather_than_claims(documents):
    fields = documents["compute_thresholds"]["sections"]["conclusions"]["fields"]
    assert fields["gpai_indicative"]["value"] is False
    assert "indicative only" in fields["gpai_indicative"]["note"]
    presumption = fields["systemic_risk_presumed"]
    assert presumption["value"] is False and presumption["label"].startswith("Training compute above")
    assert "not a classification" in presumption["note"]
    assert not any("Art. 55" in o for o in fields["obligations"]["value"])
    rows = documents["compute_thresholds"]["sections"]["training_compute"]["fields"]["thresholds"]["rows"]
    assert "indicative" in rows[0]["caveat"]


def test_nothing_published_means_no_open_source_exemption_with_the_reasons(documents):
    # An open licence is not enough: Art. 53(2) needs the weights public and no monetisation.
    exemption = documents["compute_thresholds"]["sections"]["conclusions"]["fields"]["open_source_exemption"]
    assert exemption["value"] is False
    assert "publication_url is null" in exemption["note"]
    assert "release.monetised is not set" in exemption["note"]
    obligations = documents["compute_thresholds"]["sections"]["conclusions"]["fields"]["obligations"]["value"]
    assert any("Annex XII" in o for o in obligations)


def test_a_published_unmonetised_open_model_keeps_the_exemption(release_run):
    conclusions = _conclusions(release_run(**PUBLISHED))
    assert conclusions["open_source_exemption"]["value"] is True
    assert "note" not in conclusions["open_source_exemption"]
    assert not any("Annex XI" in o for o in conclusions["obligations"]["value"])


def test_an_openrail_or_monetised_release_loses_the_open_source_exemption(release_run):
    # OpenRAIL restricts uses, so it is not free and open-source in the sense of Art. 53(2).
    conclusions = _conclusions(release_run(**PUBLISHED, license="openrail"))
    assert conclusions["open_source_exemption"]["value"] is False
    assert "openrail" in conclusions["open_source_exemption"]["note"]
    conclusions = _conclusions(release_run(publication_url=PUBLISHED["publication_url"], monetised=True))
    assert "release.monetised is true" in conclusions["open_source_exemption"]["note"]


def test_training_compute_above_1e25_presumes_systemic_risk(release_run):
    cfg = release_run(**PUBLISHED)
    path = RunLayout(cfg.out_dir).reports_dir / "energy.json"
    energy = json.loads(path.read_text())
    energy["training"]["flops"]["value"] = 3.0e25
    write_json(path, energy)
    doc = documents_of(cfg)["compute_thresholds"]
    validate_document(doc, "compute_thresholds")
    rows = doc["sections"]["training_compute"]["fields"]["thresholds"]["rows"]
    assert [(r["flop"], r["above"]) for r in rows] == [(1e23, True), (1e25, True)]
    assert [r["ratio"] for r in rows] == pytest.approx([300.0, 3.0])
    conclusions = doc["sections"]["conclusions"]["fields"]
    assert conclusions["systemic_risk_presumed"]["value"] is True
    # Systemic risk removes the open-source exemption: Annex XI/XII documentation is owed as well.
    assert conclusions["open_source_exemption"]["value"] is False
    obligations = conclusions["obligations"]["value"]
    assert any("Annex XI" in o for o in obligations) and any("Art. 55" in o for o in obligations)


def test_source_categories_follow_the_template(release_run):
    cfg = release_run(source_categories={"bible_eng_kjv": "scraped"})
    doc = documents_of(cfg)["training_content_summary"]
    sources = doc["sections"]["data_sources"]["fields"]
    used = {r["category"].split(" ")[0]: (r["used"], r["sources"]) for r in sources["categories"]["rows"]}
    assert used["2.1"][0] == "yes" and "bible_eng_kjv" not in used["2.1"][1]
    assert used["2.3"] == ("yes", "bible_eng_kjv")
    assert used["2.5"] == ("no", "")
    assert "bible_eng_kjv" in sources["scraping"]["value"]


def test_markdown_shows_every_section_and_the_figures(documents):
    doc = documents["technical_documentation"]
    md = render_markdown(doc)
    for section in doc["sections"].values():
        assert f"## {section['title']}" in md
    energy = doc["sections"]["energy_consumption"]["fields"]["it_energy_kwh"]
    assert f"| {energy['label']} | {format_value(energy['value'])} kWh | estimated |" in md
    assert "| Field | Value | Basis | Source |" in md


def test_format_value():
    assert format_value(1234567) == "1,234,567"
    assert format_value(0.0123456) == "0.01235"
    assert format_value(True) == "yes"
    assert format_value({"email": 2, "phone": 0}) == "email: 2; phone: 0"
    assert format_value([]) == "none"
    assert format_value(None) == "-"


def test_an_absent_tokenizer_report_is_said_not_hidden(release_run):
    cfg = release_run()
    (RunLayout(cfg.out_dir).reports_dir / "tokenizer.csv").unlink()
    doc = documents_of(cfg)["technical_documentation"]
    validate_document(doc, "technical_documentation")
    tokenizer = doc["sections"]["model_properties"]["fields"]["tokenizer"]
    assert tokenizer["value"] is None and "snakemake tokenizer_report" in tokenizer["note"]
