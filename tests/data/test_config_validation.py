"""Validation of the `data:` section (tessera.data.config) and of the stage mixtures against it, both
through `tessera.config.load` and through the workflow, which must stop before any job runs.

(Named test_config_validation.py: tests/model/test_config.py already owns the module name test_config.)
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tessera.config import load
from tessera.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _break(raw: dict, change: str) -> dict:
    raw = copy.deepcopy(raw)
    raw["run"]["results_dir"] = "results"
    source = raw["data"]["sources"][0]
    if change == "unknown_key":
        source["colour"] = "red"
    elif change == "negative_count":
        source["max_documents"] = -3
    elif change == "unknown_language":
        source["language"] = "xyz"
    elif change == "licence":
        source["license"] = "CC-BY-NC-4.0"
    return raw


# What each bad value must produce: the dotted key and the allowed values.
EXPECTED = {
    "unknown_key": r"data\.sources\[0\]: unknown key\(s\) colour; allowed keys: name, kind, language",
    "negative_count": r"data\.sources\[0\]\.max_documents: -3 must be a positive integer",
    "unknown_language": r"data\.sources\[0\]\.language: 'xyz' is not a known ISO 639-3 code; "
                        r"allowed values: ita, eng, fra",
    "licence": r"data\.sources\[0\]\.license: 'CC-BY-NC-4.0' \(source bible_ita_diodati\) is not in "
               r"data\.allowed_licenses; allowed values: public-domain, CC0-1.0, CC-BY-4.0",
}


def test_demo_config_is_valid():
    cfg = load(REPO / "config.yaml")
    assert cfg.data.languages == ["ita", "eng", "fra", "spa", "deu"]
    assert all(s.license_basis for s in cfg.data.sources)


@pytest.mark.parametrize("change", sorted(EXPECTED))
def test_load_names_key_and_allowed_values(change, demo_raw, tmp_path):
    with pytest.raises(ConfigError, match=EXPECTED[change]):
        load(_write(tmp_path, _break(demo_raw, change)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("query"), r"sources\[0\]\.query: required for kind sqlite"),
        (lambda s: s.update(text_field="body"), r"sources\[0\]\.text_field: not used by kind sqlite"),
        (lambda s: s.pop("license_basis"), r"sources\[0\]\.license_basis: required when license is public"),
        (lambda s: s.update(kind="csv"), r"sources\[0\]\.kind: 'csv' is not allowed; allowed values: sqlite"),
    ],
)
def test_source_kind_rules(edit, message, demo_raw, tmp_path):
    raw = copy.deepcopy(demo_raw)
    edit(raw["data"]["sources"][0])
    with pytest.raises(ConfigError, match=message):
        load(_write(tmp_path, raw))


def test_duplicate_names_and_split_shares(demo_raw, tmp_path):
    raw = copy.deepcopy(demo_raw)
    raw["data"]["sources"][1]["name"] = raw["data"]["sources"][0]["name"]
    with pytest.raises(ConfigError, match=r"sources\[1\]\.name: 'bible_ita_diodati' is used by an earlier"):
        load(_write(tmp_path, raw))
    raw = copy.deepcopy(demo_raw)
    raw["data"]["splits"] = {"validation": 0.6, "test": 0.5}
    with pytest.raises(ConfigError, match=r"data\.splits: validation \+ test = 1\.1 leaves no training data"):
        load(_write(tmp_path, raw))


def test_stage_mixture_must_name_languages_with_sources(demo_raw, tmp_path):
    raw = copy.deepcopy(demo_raw)
    raw["train"]["stages"][0]["mixture"] = {"ita": 0.5, "por": 0.5}
    message = (r"train\.stages\[\w+\]\.mixture: language\(s\) por have no data source; "
               r"languages with sources: deu, eng, fra, ita, spa")
    with pytest.raises(ConfigError, match=message):
        load(_write(tmp_path, raw))


# One case through Snakemake (each costs a workflow parse of seconds); all four go through load() above,
# which is the same from_mapping call the Snakefile makes.
@pytest.mark.parametrize("change", ["licence"])
def test_workflow_stops_before_any_job(change, demo_raw, tmp_path):
    config = _write(tmp_path, _break(demo_raw, change))
    result = subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile", str(config),
         "-n"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "ConfigError" in output
    assert re.search(EXPECTED[change], output), output[-2000:]
    assert "Job stats" not in output and not (tmp_path / "results").exists()


def test_demo_data_section_fits_the_schema_and_the_schema_rejects_unknown_keys(demo_raw):
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    jsonschema.validate(demo_raw, schema)
    raw = copy.deepcopy(demo_raw)
    raw["data"]["filters"]["min_char"] = 10  # a typo the schema must catch too
    with pytest.raises(jsonschema.ValidationError, match="min_char"):
        jsonschema.validate(raw, schema)
