"""workflow/rules/data.smk through Snakemake: hub sources are fetched by the fetch_source localrule before
prepare_data, and editing a local source file reruns prepare_data alone. (That a second run does nothing
is tests/workflow's check of the whole demo.)"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

ITALIAN = ("Quel ramo del lago di Como, che volge a mezzogiorno, tra due catene non interrotte di monti, "
           "tutto a seni e a golfi, a seconda dello sporgere e del rientrare di quelli, vien, quasi a un "
           "tratto, a ristringersi, e a prender corso e figura di fiume.")
ENGLISH = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
           "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of "
           "Light, it was the season of Darkness.")


def _snakemake(workdir: Path, *flags: str) -> subprocess.CompletedProcess:
    # The target comes first: --configfile takes every following word as a file.
    cmd = [str(SNAKEMAKE), "prepare_data", *flags, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", "1", "--configfile", str(workdir / "config.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two jobs (one imports datasets) and two workflow parses: ~15 s on an idle 2-core VM
def test_fetch_then_prepare_then_rerun_on_edit(tmp_path, demo_raw):
    import datasets

    hub = tmp_path / "hub_dataset"
    datasets.Dataset.from_list([{"text": ENGLISH, "id": "e1"}]).save_to_disk(str(hub))
    text_file = tmp_path / "manzoni.txt"
    text_file.write_text(ITALIAN)
    common = {"license": "public-domain", "license_basis": "test", "origin": "test", "tdm_opt_out": "test"}
    raw = copy.deepcopy(demo_raw)
    raw["run"] = {"name": "rules", "results_dir": str(tmp_path / "results")}
    raw["data"] = {
        "sources": [
            {"name": "manzoni", "kind": "text", "path": str(text_file), "language": "ita", **common},
            {"name": "hub_eng", "kind": "hf", "hf_name": str(hub), "id_field": "id", "language": "eng",
             **common},
        ],
        "splits": {"validation": 0.0, "test": 0.0},
        "filters": {"min_chars": 50},
    }
    for stage in raw["train"]["stages"]:
        stage["mixture"] = {"ita": 1.0}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env_out = tmp_path / "results" / "rules"

    result = _snakemake(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule fetch_source" in result.stderr and "localrule fetch_source" in result.stderr
    assert (env_out / "sources" / "hub_eng").is_dir()
    manifest = json.loads((env_out / "data" / "manifest.json").read_text())
    assert manifest["sources"]["hub_eng"]["documents_out"] == 1
    assert manifest["sources"]["manzoni"]["documents_out"] == 1

    # Editing a source file makes prepare_data outdated (its inputs are the source files).
    os.utime(text_file, (text_file.stat().st_atime, text_file.stat().st_mtime + 10))
    edited = _snakemake(tmp_path, "-n")
    assert "prepare_data" in edited.stdout and "fetch_source" not in edited.stdout, edited.stdout
