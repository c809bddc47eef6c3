"""The demo workflow through a real SLURM (scripts/local-slurm.sh), with one training stage preempted.

One run of `snakemake --profile profiles/local-slurm` is shared by the tests. While it runs, the harness
waits until the first stage's training loop is stepping, then shortens that job's time limit
(`scontrol update TimeLimit`): SLURM sends the profile's `--signal=USR1@150` to both ranks, the trainer
saves its state and exits 75, and Snakemake's retry resubmits the job, which resumes. Shortening the
limit once training runs, rather than submitting with a short limit, makes the signal land inside the
loop on a fast or a slow machine alike. The run's final weights are then compared with an
uninterrupted run of the same training (the local launcher, same 2 ranks, same token files).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tessera.config import load
from tessera.layout import RunLayout, checkpoint_steps

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.prefix) / "bin" / "snakemake")
RUN_TIMEOUT_S = 40 * 60
PREEMPTED_STAGE_STEPS = 150
"""SLURM checks time limits about every 30 s: the preempted stage must outlast that on a fast machine."""
STEPS_BEFORE_PREEMPTION = 1
"""Steps logged before the limit is shortened: the loop (and its signal handler) is running."""
LOCAL_PROFILE = yaml.safe_load(
    (REPO / "profiles" / "local-slurm" / "config.yaml").read_text(encoding="utf-8")
)
SIGNAL_LEAD_S = int(re.search(r"USR1@(\d+)", LOCAL_PROFILE["set-resources"]["train"]["slurm_extra"]).group(1))
"""Seconds before the limit that SLURM sends USR1 to training (the profile's `--signal`)."""


@dataclass
class SlurmJob:
    job_id: str
    rule: str
    wildcards: str
    state: str
    exit_code: str
    steps: dict[str, tuple[str, str, str]]
    """step id (`0`, `batch`) -> (tasks, state, exit code)."""


@dataclass
class ClusterRun:
    out: Path
    stages: list[str]
    planned: dict[str, int]
    """rule -> jobs in the dry run's job stats, without the local rules (run by Snakemake itself)."""
    jobs: list[SlurmJob]
    preempted_job: str
    overlay: Path


def _overlay(path: Path, results_dir: Path) -> Path:
    """The demo config with outputs in `results_dir`, a first stage of at least PREEMPTED_STAGE_STEPS
    steps, and one training segment per stage: the preempted job has most of a stage still to train
    when the signal arrives, even on an idle machine where the demo's stage takes half a minute."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    stages = raw["train"]["stages"]
    stages[0]["steps"] = max(stages[0].get("steps") or 0, PREEMPTED_STAGE_STEPS)
    stages[0].pop("tokens", None)
    overlay = {"run": {"name": "slurm-ci", "results_dir": str(results_dir)}, "train": {"stages": stages}}
    path.write_text(yaml.safe_dump(overlay))
    cfg = load([REPO / "config.yaml", path], [])
    overlay["train"]["checkpoint_every"] = max(
        checkpoint_steps(s.steps, cfg.train.checkpoint_every)[-1] for s in cfg.train.stages
    )
    path.write_text(yaml.safe_dump(overlay))
    return path


def _env() -> dict[str, str]:
    """The environment of an activated venv: jobs run `tessera` from PATH (sbatch --export=ALL)."""
    return dict(
        os.environ, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}", PYTHONUNBUFFERED="1"
    )


def _snakemake_args(overlay: Path, *extra: str) -> list[str]:
    return [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(REPO),
        "--configfile",
        str(REPO / "config.yaml"),
        str(overlay),
        *extra,
    ]


def _planned_jobs(overlay: Path) -> dict[str, int]:
    """rule -> jobs, from the dry run's job stats (a dry run cannot tell local rules apart)."""
    dry = subprocess.run(
        _snakemake_args(overlay, "-n", "--profile", str(REPO / "profiles" / "local-slurm")),
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    table = dry.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def _running_job(run_id: str, comment_prefix: str) -> tuple[str, int] | None:
    """(job id, elapsed seconds) of this run's running job whose comment starts with the prefix."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "R", "-n", run_id, "-o", "%i|%k|%M"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        job_id, comment, elapsed = line.split("|")
        if comment.startswith(comment_prefix):
            seconds = 0
            for part in elapsed.replace("-", ":").split(":"):
                seconds = seconds * 60 + int(part)
            return job_id, seconds
    return None


def _shorten_time_limit(job_id: str, elapsed_s: int) -> None:
    """Set the limit 90-150 s ahead (whole minutes): inside the profile's USR1 window, so SLURM signals the
    ranks at its next time-limit check (about every 30 s), leaving them a minute or more to save and exit."""
    limit_min = -(-(elapsed_s + 90) // 60)
    assert limit_min * 60 - elapsed_s < SIGNAL_LEAD_S
    subprocess.run(["scontrol", "update", f"JobId={job_id}", f"TimeLimit={limit_min}"], check=True)


def _sacct_jobs(run_id: str) -> list[SlurmJob]:
    fmt = ["-n", "-P", "-o", "JobID,Comment,State,ExitCode,NTasks"]
    lines = subprocess.run(
        ["sacct", "-X", "--name", run_id, *fmt], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    jobs = []
    for line in lines:
        job_id, comment, state, exit_code, _ = line.split("|")
        match = re.fullmatch(r"rule_(\w+?)(?:_wildcards_(.*))?", comment)
        assert match, f"job {job_id}: comment {comment!r} does not name a rule"
        steps = {}
        for step_line in subprocess.run(
            ["sacct", "-j", job_id, *fmt], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            step_id, _, step_state, step_exit, tasks = step_line.split("|")
            if "." in step_id:
                steps[step_id.split(".", 1)[1]] = (tasks, step_state, step_exit)
        jobs.append(SlurmJob(job_id, match.group(1), match.group(2) or "", state, exit_code, steps))
    return jobs


def _failure(message: str, out: Path, log: Path) -> str:
    logs = "\n".join(f"--- {p}\n{p.read_text()[-2500:]}" for p in sorted(out.glob("logs/*.log")))
    return f"{message}\n--- snakemake\n{log.read_text()[-6000:]}\n{logs}"


@pytest.fixture(scope="module")
def cluster_run(local_slurm, tmp_path_factory) -> ClusterRun:
    tmp = tmp_path_factory.mktemp("slurm-run")
    overlay = _overlay(tmp / "overlay.yaml", tmp / "results")
    cfg = load([REPO / "config.yaml", overlay], [])
    out = cfg.out_dir
    stages = [s.name for s in cfg.train.stages]
    planned = _planned_jobs(overlay)
    first = stages[0]
    metrics = RunLayout(out).state_dir(first) / "metrics.jsonl"

    log = tmp / "snakemake.log"
    with open(log, "w") as log_stream:
        proc = subprocess.Popen(
            _snakemake_args(
                overlay,
                "--profile",
                str(REPO / "profiles" / "local-slurm"),
                "--slurm-logdir",
                str(tmp / "slurm_logs"),
            ),
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
        )
        preempted_job = None
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(_failure(f"workflow still running after {RUN_TIMEOUT_S} s", out, log))
                if preempted_job is None and metrics.exists():
                    steps_done = len(metrics.read_text().splitlines())
                    run_id = re.search(r"SLURM run ID: (\S+)", log.read_text())
                    job = run_id and _running_job(run_id.group(1), f"rule_train_wildcards_{first}_")
                    if job and steps_done >= STEPS_BEFORE_PREEMPTION:
                        preempted_job = job[0]
                        _shorten_time_limit(*job)
                time.sleep(1)
        finally:
            if proc.poll() is None:
                proc.terminate()  # Snakemake cancels its SLURM jobs on SIGTERM
                proc.wait(60)
    if proc.returncode != 0:
        pytest.fail(_failure(f"snakemake exited {proc.returncode}", out, log))
    assert preempted_job is not None, _failure(f"the {first} training job was never seen stepping", out, log)
    log_text = log.read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", log_text).group(1)
    local = set(re.findall(r"^localrule (\w+):", log_text, flags=re.M))
    planned = {rule: n for rule, n in planned.items() if rule not in local}
    return ClusterRun(out, stages, planned, _sacct_jobs(run_id), preempted_job, overlay)


def test_every_rule_was_submitted_with_sbatch(cluster_run: ClusterRun) -> None:
    submitted: dict[str, int] = {}
    for job in cluster_run.jobs:
        submitted[job.rule] = submitted.get(job.rule, 0) + 1
    expected = dict(cluster_run.planned)
    expected["train"] += 1  # the preempted attempt and its retry
    assert submitted == expected
    assert all(j.state == "COMPLETED" for j in cluster_run.jobs if j.job_id != cluster_run.preempted_job)


def test_training_ran_as_two_srun_tasks(cluster_run: ClusterRun) -> None:
    train_jobs = [j for j in cluster_run.jobs if j.rule == "train"]
    assert train_jobs
    for job in train_jobs:
        # Step 0 is the rule's `srun` (the executor runs an mpi rule's shell in the batch step).
        tasks, _, _ = job.steps["0"]
        assert tasks == "2", (job.job_id, job.steps)


def test_preempted_segment_saved_and_was_resumed_by_the_retry(cluster_run: ClusterRun) -> None:
    first = cluster_run.stages[0]
    attempts = sorted(
        (j for j in cluster_run.jobs if j.rule == "train" and j.wildcards.startswith(first)),
        key=lambda j: int(j.job_id),
    )
    assert [j.job_id for j in attempts][0] == cluster_run.preempted_job
    preempted, resumed = attempts
    # The ranks agree to stop, save together and exit 75 before the limit (the job FAILED, it did not
    # TIMEOUT). srun's --kill-on-bad-exit then ends a rank still tearing down with TERM, so the step reads
    # 75:0 or, when one rank was faster, 0:15; the saved state is what the retry must find.
    assert preempted.state == "FAILED", preempted
    assert preempted.steps["0"][2] in {"75:0", "0:15"}, preempted.steps
    assert resumed.state == "COMPLETED"
    log = (cluster_run.out / "logs" / f"train-{first}-{resumed.wildcards.split('_')[-1]}.log").read_text()
    assert re.search(rf"resumed {first} at step [1-9]\d*", log), log[-3000:]


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(cluster_run: ClusterRun, tmp_path) -> None:
    from safetensors.torch import load_file

    # The same training without SLURM and without interruption, on the token files the cluster made.
    reference_overlay = tmp_path / "overlay.yaml"
    raw = yaml.safe_load(cluster_run.overlay.read_text())
    raw["run"]["results_dir"] = str(tmp_path / "results")
    reference_overlay.write_text(yaml.safe_dump(raw))
    reference = load([REPO / "config.yaml", reference_overlay], []).out_dir
    for folder in ("tokens", "tokenizer"):
        shutil.copytree(cluster_run.out / folder, reference / folder)
    cfg = load([REPO / "config.yaml", reference_overlay], [])
    finals = {s.name: checkpoint_steps(s.steps, cfg.train.checkpoint_every)[-1] for s in cfg.train.stages}
    targets = [str(RunLayout(reference).checkpoint(stage, step)) for stage, step in finals.items()]
    result = subprocess.run(
        # Targets after a one-value option: --configfile and --allowed-rules take every value up to the next.
        _snakemake_args(reference_overlay, "--cores", "2", *targets, "--allowed-rules", "train"),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=_env(),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    for stage, step in finals.items():
        ours = load_file(RunLayout(cluster_run.out).checkpoint(stage, step) / "model.safetensors")
        theirs = load_file(RunLayout(reference).checkpoint(stage, step) / "model.safetensors")
        assert ours.keys() == theirs.keys()
        differing = [name for name in ours if not (ours[name] == theirs[name]).all()]
        assert not differing, f"{stage} step {step}: {len(differing)} tensors differ, e.g. {differing[:3]}"
        meta = json.loads((RunLayout(cluster_run.out).checkpoint(stage, step) / "tessera.json").read_text())
        assert meta["step"] == step


def test_budget_counts_the_node_hours_sacct_charged(cluster_run: ClusterRun) -> None:
    """`tessera budget` after the run: every metered job's node-hours come from sacct (elapsed x nodes,
    the preempted attempt included), next to the energy the records measured."""
    budget = subprocess.run(
        [
            str(Path(sys.prefix) / "bin" / "tessera"),
            "--config",
            str(REPO / "config.yaml"),
            "--config",
            str(cluster_run.overlay),
            "budget",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        cwd=REPO,
    )
    assert budget.returncode == 0, budget.stdout + budget.stderr
    spent = re.search(r"^\| spent \(([^)]*)\) \| ([\d,.]+) \| node-h \|$", budget.stdout, flags=re.M)
    assert spent and spent.group(1) == "sacct elapsed x nodes", budget.stdout
    charged = 0.0
    for line in subprocess.run(
        [
            "sacct",
            "-X",
            "-j",
            ",".join(j.job_id for j in cluster_run.jobs),
            "-n",
            "-P",
            "-o",
            "ElapsedRaw,NNodes",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines():
        elapsed, nodes = line.split("|")
        charged += int(elapsed) * int(nodes) / 3600
    # The report and release jobs run unmetered: the metered jobs are most, not all, of what was charged.
    assert 0 < float(spent.group(2).replace(",", "")) <= charged + 0.05
    assert re.search(r"^Energy: [\d.e+-]+ kWh IT from the energy records", budget.stdout, flags=re.M)
