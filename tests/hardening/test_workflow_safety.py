"""What the workflow guarantees whatever the config says: one rule for names that become folders, values
that reach a shell line only quoted, `tessera` found without an activated venv, and every metered job in the
energy report."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tessera.errors import ConfigError
from tessera.names import NAME_PATTERN, check_name
from tests.hardening.conftest import REPO, mini_config, run_tool


@pytest.mark.parametrize("name", ["demo", "stable", "bible_ita_diodati", "run-2.1", "x" * 64])
def test_usable_names(name: str) -> None:
    assert check_name(name, "run.name") == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a\\b", "a..b", "a b", "a\n", "x" * 65, 3])
def test_names_that_would_escape_or_hide_are_refused(name) -> None:
    with pytest.raises(ConfigError, match=r"run\.name: .* is not a usable name"):
        check_name(name, "run.name")


def test_the_schema_spells_the_same_name_rule() -> None:
    schema_file = REPO / "workflow" / "schemas" / "config.schema.yaml"
    props = yaml.safe_load(schema_file.read_text(encoding="utf-8"))["properties"]

    def item_name(section: str, key: str) -> str:
        return props[section]["properties"][key]["items"]["properties"]["name"]["pattern"]

    patterns = {
        "run.name": props["run"]["properties"]["name"]["pattern"],
        "train.stages[].name": item_name("train", "stages"),
        "data.sources[].name": item_name("data", "sources"),
    }
    assert patterns == dict.fromkeys(patterns, NAME_PATTERN)


def _workspace(root: Path) -> Path:
    """A workdir whose path, and whose results_dir, carry a space and a command substitution: a value
    pasted unquoted into a shell line would run `touch`."""
    workdir = root / "work dir $(touch PWNED-workdir)"
    workdir.mkdir()
    raw = mini_config(workdir)
    raw["run"]["results_dir"] = str(workdir / "r `touch PWNED-tick` $(touch PWNED-results)")
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return workdir


def test_a_rule_runs_without_an_activated_venv_and_no_value_runs_as_shell(tmp_path: Path) -> None:
    """`<venv>/bin/snakemake` with a PATH that lacks the venv: the job still finds `tessera` (common.smk puts
    the interpreter's bin first), and the paths with `$(...)` reach it as plain arguments. The eval report
    job is given unreadable results, so it fails in tessera, with tessera's own message."""
    workdir = _workspace(tmp_path)
    raw = yaml.safe_load((workdir / "config.yaml").read_text())
    out = Path(raw["run"]["results_dir"]) / raw["run"]["name"]
    for stage in raw["train"]["stages"]:
        result = out / "eval" / stage["name"] / f"step-{stage['steps']:06d}.json"
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_text("{not json")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    target = str(out / "reports" / "eval.md")
    # The target before --allowed-rules, which takes every word after it as a rule name.
    outcome = run_tool("snakemake", ["-d", str(workdir), "--cores", "1", target, "--allowed-rules",
                                     "eval_report"], workdir, env)
    log = (out / "logs" / "eval_report.log").read_text()
    assert "command not found" not in log and "tessera: error:" in log, log
    assert outcome.returncode != 0  # the job failed on purpose, after tessera started
    assert not list(tmp_path.rglob("PWNED*")), "a config value ran as shell"


def test_dry_run_shows_each_value_as_one_shell_word(tmp_path: Path) -> None:
    """Read back as a POSIX shell reads it, every job's --energy-out and --config is the exact path."""
    workdir = _workspace(tmp_path)
    outcome = run_tool("snakemake", ["-d", str(workdir), "-n", "-p", "--forceall"], workdir)
    assert outcome.returncode == 0, outcome.output[-3000:]
    results_dir = yaml.safe_load((workdir / "config.yaml").read_text())["run"]["results_dir"]
    commands = [line for line in outcome.output.splitlines() if "--energy-out" in line]
    assert len(commands) > 5
    for line in commands:
        words = shlex.split(line.split("Shell command:")[-1])
        assert words[words.index("--energy-out") + 1].startswith(f"{results_dir}/h/energy/"), line
        assert words[words.index("--config") + 1] == str((workdir / "config.yaml").resolve()), line
    assert not list(tmp_path.rglob("PWNED*"))


def test_every_metered_job_is_an_energy_report_input(tmp_path: Path) -> None:
    """The metered rules are those that declare an `energy` output: every job that writes an energy log
    (`--energy-out` in its shell line) is an input of the energy report, none listed by hand."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(mini_config(workdir), sort_keys=False))
    dry = run_tool("snakemake", ["-d", str(workdir), "-n", "-p", "--forceall", "energy_report"], workdir)
    assert dry.returncode == 0, dry.output[-3000:]
    metered = set(re.findall(r"--energy-out (\S+)", dry.output))
    dag = run_tool("snakemake", ["-d", str(workdir), "--forceall", "--dag", "dot", "energy_report"], workdir)
    labels = dict(re.findall(r"^\s*(\d+)\[label = \"([^\"\\]+)", dag.output, flags=re.M))
    report = next(node for node, label in labels.items() if label == "energy_report")
    into_report = re.findall(rf"^\s*(\d+) -> {report}\b", dag.output, flags=re.M)
    assert len(metered) == len(into_report) > 0, (sorted(metered), into_report)
    assert {labels[node] for node in into_report} == {
        "prepare_shard", "dedup_pairs", "dedup_removals", "write_shard", "prepare_data",
        "train_tokenizer", "tokenizer_report", "tokenize", "train", "evaluate", "eval_report",
    }
