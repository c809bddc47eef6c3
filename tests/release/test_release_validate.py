"""What stops a release: an empty required key, a source without an allowed licence, stale reports."""

from __future__ import annotations

import json

import pytest

from tessera.cli import main
from tessera.errors import ConfigError, ReleaseError
from tessera.io import write_json
from tessera.layout import RunLayout
from tessera.release.build import build_release


def _edit_json(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    write_json(path, data)


@pytest.mark.parametrize("key", ["provider", "contact", "intended_use", "content_types"])
def test_a_missing_required_field_stops_the_release_naming_it(release_run, key):
    cfg = release_run(**{key: [] if key == "content_types" else ""})
    with pytest.raises(ConfigError, match=rf"^release\.{key}: required to release"):
        build_release(cfg)
    assert not RunLayout(cfg.out_dir).release_dir.exists()


def test_a_source_without_an_allowed_licence_stops_the_release_naming_it(release_run):
    cfg = release_run()
    manifest = RunLayout(cfg.out_dir).manifest
    _edit_json(manifest, lambda m: m["sources"]["bible_fra_segond"].update(license="proprietary"))
    with pytest.raises(
        ReleaseError, match="source 'bible_fra_segond' has licence 'proprietary', which is not allowed"
    ):
        build_release(cfg)
    assert not RunLayout(cfg.out_dir).release_dir.exists()


def test_an_unlicensed_or_unexplained_source_is_named(release_run):
    cfg = release_run()
    manifest = RunLayout(cfg.out_dir).manifest
    _edit_json(manifest, lambda m: m["sources"]["bible_eng_kjv"].update(license=""))
    with pytest.raises(ReleaseError, match="source 'bible_eng_kjv' has no licence"):
        build_release(cfg)
    _edit_json(
        manifest, lambda m: m["sources"]["bible_eng_kjv"].update(license="public-domain", license_basis=None)
    )
    with pytest.raises(
        ReleaseError, match="source 'bible_eng_kjv' claims public-domain without a license_basis"
    ):
        build_release(cfg)
    _edit_json(manifest, lambda m: m["sources"]["bible_eng_kjv"].update(license_basis="old", tdm_opt_out=" "))
    with pytest.raises(ReleaseError, match="source 'bible_eng_kjv' does not say how text-and-data-mining"):
        build_release(cfg)


def test_a_category_for_an_unknown_source_is_refused(release_run):
    cfg = release_run(source_categories={"bible_xyz": "scraped"})
    with pytest.raises(ConfigError, match=r"release\.source_categories\.bible_xyz: no source named"):
        build_release(cfg)


def test_stale_or_incomplete_reports_stop_the_release(release_run):
    cfg = release_run()
    reports = RunLayout(cfg.out_dir).reports_dir
    original = (reports / "eval.json").read_text()
    _edit_json(reports / "eval.json", lambda e: e["final"].update(step=20))
    with pytest.raises(ReleaseError, match="eval.json: its final result is anneal step 20 but the released"):
        build_release(cfg)
    _edit_json(
        reports / "eval.json", lambda e: e.update(final=None, missing=["eval/anneal/step-000040.json"])
    )
    with pytest.raises(ReleaseError, match=r"no final evaluation \(missing: eval/anneal/step-000040.json\)"):
        build_release(cfg)
    (reports / "eval.json").write_text(original)
    (reports / "energy.json").unlink()
    with pytest.raises(
        ReleaseError, match=r"energy.json: no energy summary; build it with `snakemake energy_report`"
    ):
        build_release(cfg)


def test_an_energy_summary_of_an_older_schema_stops_the_release_naming_the_rebuild(release_run):
    # A summary written before sites[].it_kind and the computed training.tokens (schema 2): its labels
    # would not be true, so the release refuses it rather than document them.
    cfg = release_run()
    path = RunLayout(cfg.out_dir).reports_dir / "energy.json"
    _edit_json(path, lambda e: e.update(schema_version=2, schema=2))
    with pytest.raises(
        ReleaseError,
        match=r"energy.json: energy summary schema_version 2, expected 3.*snakemake energy_report",
    ):
        build_release(cfg)
    _edit_json(path, lambda e: e.update(schema_version=3, sites=[{"name": "leonardo"}]))
    with pytest.raises(
        ReleaseError, match=r"energy.json.*sites.*rebuild the energy report.*snakemake energy_report"
    ):
        build_release(cfg)
    assert not RunLayout(cfg.out_dir).release_dir.exists()


def test_cli_prints_one_line_naming_the_field(release_run, capsys):
    cfg = release_run()
    code = main(["--config", str(cfg.source), "--set", 'release.provider=""', "release"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tessera: error: release.provider: required to release")
