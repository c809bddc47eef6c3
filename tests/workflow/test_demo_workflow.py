"""The demo workflow end to end, as `make run` runs it, in a temporary folder.

One real Snakemake run (all rules, local cores) is shared by the tests below; each asserts one promise
of the README: the outputs exist, a second run does nothing, the reports have their rows, the released
model loads in transformers, and the energy report can be regenerated alone.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tessera.config import load
from tessera.layout import checkpoint_steps

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

pytestmark = pytest.mark.slow


def _snakemake(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    # Targets and flags first: anything after --configfile would be read as another config file.
    cmd = [str(SNAKEMAKE), *args, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--configfile", str(workdir / "config.yaml")]
    # Rules call `tessera` by name, as `make run` does with the venv first on PATH.
    env = dict(os.environ, PYTHONUNBUFFERED="1", PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _absolute_paths(raw: dict) -> dict:
    """Relative paths in the demo config are relative to the repository; the run happens elsewhere."""
    for section, key in [("tokenizer", "flores_dir"), ("eval", "task_data_dir")]:
        value = raw.get(section, {}).get(key)
        if value:
            raw[section][key] = str((REPO / value).resolve())
    for name, path in raw.get("tokenizer", {}).get("reference", {}).items():
        if path.endswith(".json"):
            raw["tokenizer"]["reference"][name] = str((REPO / path).resolve())
    for source in raw["data"]["sources"]:
        path = source.get("path")
        if path and "://" not in path:
            source["path"] = str((REPO / path).resolve())
    return raw


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    raw = _absolute_paths(yaml.safe_load((REPO / "config.yaml").read_text()))
    raw["run"]["results_dir"] = str(workdir / "results")
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    result = _snakemake(workdir)
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(workdir.glob("results/*/logs/*.log"))
        )
        pytest.fail(f"demo workflow failed:\n{result.stderr[-6000:]}\n{logs}")
    return workdir


def _out(workdir: Path) -> Path:
    return workdir / "results" / "demo"


def test_data_manifest_and_shards(demo_run):
    manifest = json.loads((_out(demo_run) / "data" / "manifest.json").read_text())
    assert manifest
    assert list((_out(demo_run) / "data").glob("*/train/*.jsonl.zst"))


def test_second_run_does_nothing(demo_run):
    result = _snakemake(demo_run, "-n")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_eval_report_has_a_row_per_checkpoint_and_language(demo_run):
    text = (_out(demo_run) / "reports" / "eval.md").read_text()
    languages = yaml.safe_load((REPO / "config.yaml").read_text())["data"]["sources"]
    for source in languages:
        assert source["language"] in text
    cfg = load([demo_run / "config.yaml"], [])
    published = [
        (stage.name, step)
        for stage in cfg.train.stages
        for step in checkpoint_steps(stage.num_steps, cfg.train.checkpoint_every)
    ]
    expected = {(stage, step, lang) for stage, step in published for lang in cfg.data.languages}
    with (_out(demo_run) / "reports" / "eval.csv").open(newline="") as f:
        rows = [(row["stage"], int(row["step"]), row["language"]) for row in csv.DictReader(f)]
    assert sorted(rows) == sorted(expected)  # each exactly once


def test_energy_report_rows_and_plots(demo_run):
    reports = _out(demo_run) / "reports"
    assert "prepare_data" in (reports / "energy.md").read_text()
    pngs = list(reports.glob("energy_*.png"))
    assert pngs and all(p.stat().st_size > 0 for p in pngs)


def test_energy_report_regenerates_alone(demo_run):
    (_out(demo_run) / "reports" / "energy.md").unlink()
    result = _snakemake(demo_run, "energy_report")
    assert result.returncode == 0, result.stderr
    assert (_out(demo_run) / "reports" / "energy.md").exists()
    ran = re.findall(r"^(?:local)?rule (\w+):", result.stdout + result.stderr, flags=re.MULTILINE)
    assert ran == ["energy_report"], ran


def test_release_loads_in_transformers(demo_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    release = _out(demo_run) / "release"
    model = AutoModelForCausalLM.from_pretrained(release)
    tokenizer = AutoTokenizer.from_pretrained(release)
    ids = tokenizer("Nel mezzo del cammin di nostra vita", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4


def test_release_runs_in_llama_cpp_as_in_transformers(demo_run, tmp_path):
    """The demo release's GGUF files, and an f32 conversion by the same converter: llama.cpp's token ids
    on FLORES devtest (five languages), f32 logits and greedy continuation equal transformers'."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama.cpp's binding: pip install -e '.[llama]'")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tessera.release.gguf import RELEASE_TYPES, convert, gguf_file_name
    from tests.release.llama_parity import (
        FLORES,
        assert_same_logits_and_greedy,
        assert_same_token_ids,
        flores_devtest,
        open_llama,
    )

    release = _out(demo_run) / "release"
    name = load(demo_run / "config.yaml").release.model_name
    checksums = (release / "MANIFEST.sha256").read_text()
    assert all(gguf_file_name(name, outtype) in checksums for outtype in RELEASE_TYPES)
    if not (FLORES / "devtest").is_dir():
        pytest.skip(f"FLORES-200 absent ({FLORES})")
    flores = flores_devtest()
    tokenizer = AutoTokenizer.from_pretrained(release)
    hf = AutoModelForCausalLM.from_pretrained(release, dtype="float32").eval()
    llm = open_llama(llama_cpp, convert(release, tmp_path / "demo-f32.gguf", "f32"))
    try:
        assert_same_token_ids(tokenizer, llm, flores)
        # The demo's few steps leave continuations of one or two tokens (the commonest): equal is the test.
        assert_same_logits_and_greedy(hf, tokenizer, llm, flores)
    finally:
        llm.close()
