"""workflow/rules/eval.smk, by Snakemake dry runs: one GPU job per published checkpoint, and the login-node
dataset cache only when upstream lm-eval tasks are configured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _dry_run(repo_root: Path, workdir: Path, eval_section: dict) -> str:
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    raw["run"]["results_dir"] = str(workdir / "results")
    raw["eval"] = eval_section
    for source in raw["data"]["sources"]:  # the run happens in workdir; local sources stay where they are
        path = source.get("path")
        if path and "://" not in path:
            source["path"] = str((repo_root / path).resolve())
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    result = subprocess.run(
        [str(SNAKEMAKE), "-s", str(repo_root / "Snakefile"), "-d", str(workdir), "-n",
         "--configfile", str(workdir / "config.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.fixture(scope="module")
def published_count(repo_root) -> int:
    from tessera.config import load
    from tessera.layout import checkpoint_steps

    cfg = load(repo_root / "config.yaml")
    return sum(len(checkpoint_steps(s.num_steps, cfg.train.checkpoint_every)) for s in cfg.train.stages)


def test_every_checkpoint_is_evaluated_on_one_gpu(repo_root, tmp_path, published_count):
    output = _dry_run(repo_root, tmp_path, {"tasks": ["tessera_xcopa_it"]})
    counts = _job_counts(output)
    assert counts["evaluate"] == published_count and counts["eval_report"] == 1
    assert "cache_eval_datasets" not in counts
    evaluate_jobs = [block for block in output.split("rule ")[1:] if block.startswith("evaluate:")]
    assert len(evaluate_jobs) == published_count
    assert all("gpu=1" in block.split("resources:")[1].splitlines()[0] for block in evaluate_jobs)


def test_upstream_tasks_add_the_login_node_cache(repo_root, tmp_path):
    output = _dry_run(repo_root, tmp_path, {"tasks": ["tessera_xcopa_it", "xcopa_it"]})
    assert _job_counts(output)["cache_eval_datasets"] == 1
    # Every evaluation waits for the cache: compute nodes cannot download.
    evaluate_jobs = [block for block in output.split("rule ")[1:] if block.startswith("evaluate:")]
    assert evaluate_jobs and all("tessera-eval-datasets.json" in block.split("output:")[0]
                                 for block in evaluate_jobs)
