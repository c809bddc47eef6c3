"""The site profiles, checked through Snakemake and the SLURM executor plugin's own code.

Dry runs show every job's resources without any SLURM. The sbatch test runs the real workflow with the
real plugin up to the submission of one training segment: SLURM's client tools are replaced by stand-ins
on PATH (`sbatch` records its argument vector and refuses the job), so what is checked is the exact
command line Snakemake would send to Leonardo or MareNostrum 5.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tessera.config import load
from tessera.data.sources import cache_root
from tessera.layout import RunLayout, checkpoint_steps

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.prefix) / "bin" / "snakemake")

# Per site: what a training segment must ask SLURM for (4 GPUs per node, one task per GPU, the node's
# cores split across the tasks, the production QOS, USR1 before the time limit), and where the CPU-only
# steps go instead (Leonardo DCGP, MareNostrum 5 GPP), so the GPU budget pays only for GPU work.
SITES = {
    "leonardo": {"partition": "boost_usr_prod", "qos": "normal", "cpus_per_task": 8, "gpu_node_cores": 32,
                 "cpu_partition": "dcgp_usr_prod"},
    "marenostrum": {"partition": "acc", "qos": "acc_ehpc", "cpus_per_task": 20, "gpu_node_cores": 80,
                    "cpu_partition": "gpp"},
}
GPU_RULES = {"train", "evaluate"}
GPUS_PER_NODE = 4
ACCOUNT = "euhpc_a01_042"

FAKE_TOOLS = {
    # Records the argument vector NUL-separated, one submission per line, and refuses the job so that
    # Snakemake stops right after building the call.
    "sbatch": 'printf "%s\\0" "$@" >> "$FAKE_SBATCH_LOG"; echo >> "$FAKE_SBATCH_LOG"\n'
    'echo "sbatch: error: stand-in for tests" >&2; exit 1',
    # The plugin validates the account against the user's associations.
    "sacctmgr": 'echo "$TESSERA_ACCOUNT"',
    "sshare": 'echo "$TESSERA_ACCOUNT"',
    "sacct": "exit 0",
    "squeue": "exit 0",
    "scontrol": "exit 1",
    "sinfo": "exit 1",
    "srun": "exit 1",
}


def _site_profile(site: str) -> dict:
    """The profile as Snakemake reads it (YTE expressions evaluated, with TESSERA_NODES unset)."""
    import yte

    with open(REPO / "profiles" / site / "config.yaml", encoding="utf-8") as stream:
        return yte.process_yaml(stream, require_use_yte=True)


def _profile_args(site: str, overlay: Path) -> list[str]:
    """The site's profile and the demo config with a test overlay, as a user passes them."""
    profile = REPO / "profiles" / site
    return ["--profile", str(profile), "--configfile", str(REPO / "config.yaml"), str(overlay)]


def _check_run(tmp_path: Path) -> tuple[Path, str]:
    """A config overlay that sends outputs to tmp_path, and the first training segment's target."""
    overlay = tmp_path / "overlay.yaml"
    # The workflow refuses a batch that the training ranks cannot split (common.smk checks it with the
    # profile's geometry): one sequence per rank, 512 per step, fits 4 to 512 ranks (1 to 128 nodes).
    demo = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    stages = [{**stage, "batch_size": 512} for stage in demo["train"]["stages"]]
    overlay.write_text(yaml.safe_dump({
        "run": {"name": "profile-check", "results_dir": str(tmp_path)},
        "train": {"micro_batch_size": 1, "stages": stages},
    }))
    cfg = load([REPO / "config.yaml", overlay], [])
    stage = cfg.train.stages[0]
    first_step = checkpoint_steps(stage.steps, cfg.train.checkpoint_every)[0]
    out = cfg.out_dir
    # The training rule's inputs, as empty files: with --allowed-rules train they are source files.
    layout = RunLayout(out)
    for lang in cfg.data.languages:
        for split in ("train", "validation"):
            path = layout.token_index(lang, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    (out / "tokenizer" / "tokenizer.json").touch()
    return overlay, str(out / "train" / stage.name / f"step-{first_step:06d}")


def _snakemake(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(tmp_path: Path, account: str | None) -> dict[str, str]:
    fake_bin = tmp_path / "fake-slurm-bin"
    fake_bin.mkdir(exist_ok=True)
    for name, body in FAKE_TOOLS.items():
        tool = fake_bin / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.pop("TESSERA_ACCOUNT", None)
    env.pop("TESSERA_NODES", None)
    if account is not None:
        env["TESSERA_ACCOUNT"] = account
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    env["FAKE_SBATCH_LOG"] = str(tmp_path / "sbatch.log")
    return env


def _submit_first_segment(tmp_path: Path, site: str, account: str | None, nodes: int | None = None):
    """Run the workflow with the site profile until the plugin calls sbatch for the first segment."""
    overlay, target = _check_run(tmp_path)
    env = _env(tmp_path, account)
    if nodes is not None:
        env["TESSERA_NODES"] = str(nodes)
    args = [
        *_profile_args(site, overlay),
        "--allowed-rules",
        "train",
        "--retries",
        "0",
        "--jobs",
        "1",
        # The failed submission ends the run at the first status check: make that immediate.
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        target,
    ]
    # The working directory is the repository root, as for a user on the login node (the demo config's
    # relative paths point to ../shared); results and SLURM logs go to tmp_path.
    result = _snakemake([*args, "--slurm-logdir", str(tmp_path / "slurm_logs")], env, REPO)
    log = tmp_path / "sbatch.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return result, [line.strip("\0").split("\0") for line in lines if line]


def _option(argv: list[str], short: str) -> str:
    """Value of a two-token option such as `-A acct`."""
    return argv[argv.index(short) + 1]


@pytest.mark.parametrize("site", sorted(SITES))
def test_dry_run_shows_each_jobs_site_resources(site: str, tmp_path: Path) -> None:
    overlay, _ = _check_run(tmp_path)
    env = _env(tmp_path, ACCOUNT)
    result = _snakemake(["-n", *_profile_args(site, overlay)], env, REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = SITES[site]
    jobs = re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", result.stdout, flags=re.M)
    resources = {rule: line for rule, line in jobs}
    data_rules = {"prepare_shard", "dedup_pairs", "dedup_removals", "write_shard", "prepare_data"}
    assert {"train", "evaluate", "train_tokenizer", "tokenize", *data_rules} <= set(resources)
    for rule, line in resources.items():
        if rule == "all":
            continue
        partition = expected["partition"] if rule in GPU_RULES else expected["cpu_partition"]
        assert f"slurm_account={ACCOUNT}" in line, (rule, line)
        assert f"slurm_partition={partition}" in line, (rule, line)
        assert "runtime=" in line and "mem_mb=" in line, (rule, line)
    train = resources["train"]
    assert f"tasks_per_node={GPUS_PER_NODE}" in train and f"gres=gpu:{GPUS_PER_NODE}" in train
    assert f"qos={expected['qos']}" in train
    assert "gpu=1" in resources["evaluate"]


@pytest.mark.parametrize("site", sorted(SITES))
def test_training_sbatch_geometry(site: str, tmp_path: Path) -> None:
    result, calls = _submit_first_segment(tmp_path, site, ACCOUNT)
    assert len(calls) == 1, result.stdout + result.stderr
    argv = calls[0]
    expected = SITES[site]
    profile = _site_profile(site)
    train = profile["set-resources"]["train"]
    node_cores = expected["gpu_node_cores"]
    assert argv[0] == "--parsable"
    assert _option(argv, "-A") == ACCOUNT
    assert _option(argv, "-p") == expected["partition"]
    assert f"--qos={expected['qos']}" in argv
    assert "--nodes=1" in argv
    assert f"--ntasks-per-node={GPUS_PER_NODE}" in argv
    assert f"--gres=gpu:{GPUS_PER_NODE}" in argv
    assert f"--cpus-per-task={expected['cpus_per_task']}" in argv
    assert train["tasks_per_node"] * train["cpus_per_task"] == node_cores
    # One task per GPU, not four trainers per GPU: no --ntasks-per-gpu, no plain --ntasks.
    assert not any(a.startswith(("--ntasks-per-gpu", "--ntasks=", "--gpus")) for a in argv), argv
    assert any(re.fullmatch(r"--signal=USR1@\d+", a) for a in argv), argv
    assert int(_option(argv, "-t")) == train["runtime"]
    # The batch step runs the rule's shell, whose srun must start the same geometry (the executor
    # strips SLURM_NTASKS & co., so srun cannot inherit it).
    mpi = train["mpi"].split()
    assert mpi[0] == "srun"
    assert f"--ntasks-per-node={train['tasks_per_node']}" in mpi
    assert f"--cpus-per-task={train['cpus_per_task']}" in mpi


@pytest.mark.parametrize("site", sorted(SITES))
def test_cpu_jobs_can_bill_another_account(site: str, tmp_path: Path) -> None:
    """Booster/ACC and DCGP/GPP hours are separate budgets: TESSERA_CPU_ACCOUNT bills the CPU jobs."""
    overlay, _ = _check_run(tmp_path)
    env = _env(tmp_path, ACCOUNT) | {"TESSERA_CPU_ACCOUNT": "cpu_budget_7"}
    result = _snakemake(["-n", *_profile_args(site, overlay)], env, REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", result.stdout, flags=re.M)
    for rule, line in jobs:
        if rule != "all":
            account = ACCOUNT if rule in GPU_RULES else "cpu_budget_7"
            assert f"slurm_account={account}," in line, (rule, line)


def test_leonardo_large_runs_switch_to_the_bprod_qos(tmp_path: Path) -> None:
    result, calls = _submit_first_segment(tmp_path, "leonardo", ACCOUNT, nodes=128)
    assert len(calls) == 1, result.stdout + result.stderr
    assert "--nodes=128" in calls[0] and "--qos=boost_qos_bprod" in calls[0]
    assert f"--ntasks-per-node={GPUS_PER_NODE}" in calls[0]


def test_unset_account_stops_before_any_submission(tmp_path: Path) -> None:
    result, calls = _submit_first_segment(tmp_path, "leonardo", None)
    assert result.returncode != 0
    assert calls == []
    assert "export TESSERA_ACCOUNT=" in result.stdout + result.stderr


def test_command_line_config_overrides_are_refused() -> None:
    """Jobs read only the config files, so a `--config key=value` would not reach them."""
    result = _snakemake(["-n", "--config", "seed=7"], dict(os.environ), REPO)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "overlay YAML" in output and "--config seed=7" in output, output


def test_profiles_parse_and_share_one_structure() -> None:
    for site in [*SITES, "local-slurm"]:
        profile = _site_profile(site)
        assert profile["executor"] == "slurm"
        assert profile["retries"] >= 1, "preempted training segments are resumed by a retry"
        train = profile["set-resources"]["train"]
        assert train["tasks_per_gpu"] == 0 and train["gres"] == f"gpu:{train['tasks_per_node']}"
        assert "--signal=USR1@" in train["slurm_extra"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` not installed")
def test_make_dag_renders_the_rule_graph(tmp_path: Path) -> None:
    image = tmp_path / "dag.png"
    # -o: never reinstall the venv from inside a test, even when pyproject.toml is newer than its stamp.
    result = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "dag", f"DAG={image}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("site", sorted(SITES))
def test_site_preset_layers_over_the_demo_config(site: str) -> None:
    cfg = load([REPO / "config.yaml", REPO / "configs" / f"{site}.yaml"], [])
    assert cfg.site.name.startswith(site[:5]) and cfg.site.pue >= 1.0
    assert cfg.site.gpu_type in cfg.energy.gpu_types
    assert cfg.train.precision == "bf16"
    # Experts are sharded inside a node (NVLink), never across the 4-GPU boundary.
    assert GPUS_PER_NODE % cfg.train.expert_parallel_size == 0


def test_hub_downloads_run_on_the_login_node(tmp_path: Path) -> None:
    """Compute nodes are offline: fetching a hub source runs in Snakemake's own process (a local rule),
    never through sbatch. Checked with MareNostrum 5's profile, the strictest site (whose login nodes are
    offline too, so the fetch there is done beforehand and only skipped); the rule is local for any
    profile of the slurm executor."""
    site = "marenostrum"
    overlay, _ = _check_run(tmp_path)
    raw = yaml.safe_load(overlay.read_text())
    demo = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    hub_source = {
        "name": "wikipedia_ita",
        "kind": "hf",
        "hf_name": "wikimedia/wikipedia",
        "hf_config": "20231101.it",
        "language": "ita",
        "license": "CC-BY-4.0",
        "origin": "https://huggingface.co/datasets/wikimedia/wikipedia",
        "tdm_opt_out": "CC BY-SA text; no machine-readable reservation",
    }
    raw["data"] = {"sources": [*demo["data"]["sources"], hub_source]}
    overlay.write_text(yaml.safe_dump(raw))
    cfg = load([REPO / "config.yaml", overlay], [])
    target = cache_root(cfg) / hub_source["name"]
    env = _env(tmp_path, ACCOUNT)
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # the local fetch must fail fast, not download
    quick = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
    only_fetch = ["--allowed-rules", "fetch_source", "--retries", "0", str(target)]
    result = _snakemake([*_profile_args(site, overlay), *quick, *only_fetch], env, REPO)
    assert "localrule fetch_source:" in result.stdout + result.stderr, result.stdout[-3000:]
    assert not (tmp_path / "sbatch.log").exists()


@pytest.mark.parametrize("site", sorted(SITES))
def test_real_corpus_dry_run_scatters_the_data_stage_on_cpus(site: str, tmp_path: Path) -> None:
    """configs/corpus.yaml between the demo and the preset: downloads on the login node, hundreds of
    prepare and tokenize shard jobs on the CPU partition, training and evaluation on the GPU partition."""
    overlay, _ = _check_run(tmp_path)
    env = _env(tmp_path, ACCOUNT)
    configs = [str(REPO / "config.yaml"), str(REPO / "configs" / "corpus.yaml"),
               str(REPO / "configs" / f"{site}.yaml"), str(overlay)]
    profile = ["--profile", str(REPO / "profiles" / site)]
    result = _snakemake(["-n", *profile, "--configfile", *configs], env, REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert int(counts["prepare_shard"]) >= 300 and int(counts["tokenize"]) >= 300, counts
    assert int(counts["write_shard"]) == int(counts["prepare_shard"]) and int(counts["download_source"]) >= 5
    jobs = re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", result.stdout, flags=re.M)
    expected = SITES[site]
    for rule, line in jobs:
        if rule in {"prepare_shard", "dedup_pairs", "write_shard", "tokenize", "train_tokenizer"}:
            assert f"slurm_partition={expected['cpu_partition']}," in line, (rule, line)
        elif rule in GPU_RULES:
            assert f"slurm_partition={expected['partition']}," in line, (rule, line)


def test_real_corpus_downloads_run_on_the_login_node(tmp_path: Path) -> None:
    """The recipe's download rule is local: with its first source served from a file:// URL, fetching it
    runs in Snakemake's own process and never reaches sbatch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    overlay, _ = _check_run(tmp_path)
    recipe = yaml.safe_load((REPO / "configs" / "corpus.yaml").read_text(encoding="utf-8"))
    remote = tmp_path / "remote" / "main" / "part.parquet"
    remote.parent.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["Testo di prova. " * 20], "id": ["a"]}), remote)
    source = recipe["data"]["sources"][0]
    source["download"] = {"url": f"file://{tmp_path}/remote/{{revision}}", "revision": "main",
                          "files": [{"path": "part.parquet"}]}
    raw = yaml.safe_load(overlay.read_text())
    raw["data"] = {**recipe["data"], "cache_dir": str(tmp_path / "sources")}
    overlay.write_text(yaml.safe_dump(raw))
    target = tmp_path / "sources" / source["name"] / "fetched.json"
    quick = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
    # --allowed-rules takes every following word: the target comes after another option.
    only = ["--allowed-rules", "download_source", "--retries", "0", str(target)]
    args = [*_profile_args("leonardo", overlay), *quick, *only]
    result = _snakemake(args, _env(tmp_path, ACCOUNT), REPO)
    assert "localrule download_source:" in result.stdout + result.stderr, result.stderr[-3000:]
    assert result.returncode == 0 and target.exists(), result.stderr[-3000:]
    assert not (tmp_path / "sbatch.log").exists()
