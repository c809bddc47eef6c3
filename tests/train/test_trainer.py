"""Training end to end through `tessera train`, in subprocesses (each one a real launch):

- one rank, stage s1 then s2: the reference every other run is compared with;
- two ranks (gloo, launched as srun would: SLURM variables only) under ZeRO-2, and under stage 0, with
  expert parallel size 2: the loss falls and the weights match the one-rank run of the same global
  batches;
- SIGUSR1 (state saved, exit 75, rerun resumes), then SIGKILL at a random step and a rerun: weights and
  loss curve bitwise identical to the reference;
- non-finite losses: skipped updates, counted, K in a row stop with the last good checkpoint named;
- a resume with another model shape or tokenizer is refused;
- bf16 (DeepSpeed's BF16_Optimizer on one rank) resumes bitwise too.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tessera.cli import EXIT_PREEMPTED
from tessera.io import sha256_file
from tessera.layout import RunLayout
from tessera.train.callbacks.loggers import read_metrics
from tests.train.mini_run import REPO, TEST_ENV, make_mini_run, run_tessera, srun_like, tessera_cmd

pytestmark = pytest.mark.slow


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def _losses(layout: RunLayout, stage: str = "s1") -> list[float]:
    return [r["loss"] for r in read_metrics(layout.state_dir(stage) / "metrics.jsonl")]


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def _latest_step(layout: RunLayout, stage: str = "s1") -> int:
    return json.loads((layout.state_dir(stage) / (layout.state_dir(stage) / "latest").read_text().strip()
                       / "meta.json").read_text())["step"]


def _start(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(tessera_cmd(config, *args), cwd=REPO, env=TEST_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc: subprocess.Popen, metrics: Path, step: int, timeout: float = 120) -> int:
    """Poll the run's metrics.jsonl until it has logged `step`; returns the last step logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_metrics(metrics)
        if records and records[-1]["step"] >= step:
            return records[-1]["step"]
        if proc.poll() is not None:
            raise AssertionError(f"exit {proc.returncode} before step {step}: {proc.stderr.read()}")
        time.sleep(0.002)
    proc.kill()
    raise AssertionError(f"step {step} not reached in {timeout} s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> RunLayout:
    """One uninterrupted single-rank run of s1, then s2."""
    config, layout = make_mini_run(tmp_path_factory.mktemp("reference"))
    proc = run_tessera(config, "train", "--stage", "s1")
    assert "published" in proc.stdout and "step 24/24" in proc.stdout
    run_tessera(config, "--energy-out", str(layout.root / "energy" / "s2.jsonl"), "train", "--stage", "s2")
    return layout


def test_stage_publishes_checkpoints_and_chains_into_the_next(reference):
    layout = reference
    for step in (12, 24):
        meta = json.loads((layout.checkpoint("s1", step) / "tessera.json").read_text())
        assert (meta["stage"], meta["step"], meta["tokens_seen"]) == ("s1", step, step * 8 * 64)
        assert (layout.checkpoint("s1", step) / "tokenizer.json").is_file()
        segment = read_metrics(layout.checkpoint("s1", step) / "metrics.jsonl")
        assert [r["step"] for r in segment] == list(range(step - 11, step + 1))  # this segment's steps
    record = read_metrics(layout.state_dir("s1") / "metrics.jsonl")[-1]
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "step_time_s", "moe_load_imbalance",
                "moe_router_entropy", "tokens_seen"):
        assert record[key] is not None, key
    # s2 starts from s1's final state: tokens keep counting, and its decay ends at exactly zero.
    s2 = read_metrics(layout.state_dir("s2") / "metrics.jsonl")
    assert s2[0]["tokens_seen"] == 25 * 8 * 64 and s2[-1]["lr"] == 0.0
    assert s2[0]["loss"] < _losses(layout)[0]  # not a fresh model
    assert (layout.checkpoint("s2", 4) / "model.safetensors").is_file()
    # The history of s2's checkpoint carries s1's span too (one layout: one span per stage).
    history = json.loads((layout.checkpoint("s2", 4) / "tessera.json").read_text())["history"]
    assert [(h["stage"], h["first_step"], h["last_step"], h["world_size"], h["site"]) for h in history] == [
        ("s1", 1, 24, 1, "laptop"), ("s2", 1, 4, 1, "laptop")]
    # With the job's energy meter (--energy-out), every step has its joules.
    assert all(r["energy_j"] is not None and r["energy_j"] >= 0 for r in s2)
    assert (layout.root / "energy" / "s2.jsonl").is_file()


@pytest.mark.parametrize("zero_stage", [2, 0])
def test_two_ranks_expert_parallel_match_one_rank(reference, tmp_path, zero_stage):
    """ZeRO-2 (DeepSpeed's optimizer) and stage 0 (ClippedAdamW, whose norm sums the experts' squares
    over the EP group) against the one-rank reference, which runs stage 0."""
    config, layout = make_mini_run(tmp_path, expert_parallel_size=2, zero_stage=zero_stage)
    ranks = srun_like(config, "train", "--stage", "s1", ntasks=2, logs=tmp_path)
    codes = [rank.wait(timeout=240) for rank in ranks]
    log = (tmp_path / "rank0.log").read_text()
    assert codes == [0, 0], log[-3000:] + (tmp_path / "rank1.log").read_text()[-3000:]
    assert "step 24/24" in log
    losses = _losses(layout)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5, losses  # it learns
    # Each rank wrote its own part of the state: two of the four experts (debug preset) each...
    state = layout.state_dir("s1") / "step-000024"
    index = json.loads((state / "meta.json").read_text())["index"]
    experts = {f"layers.1.mlp.experts.gate_up_proj/{e}:master": f"rank-0000{e // 2}.safetensors"
               for e in range(4)}
    assert {k: index[k] for k in experts} == experts
    # ...yet the same global batches give the one-rank model (up to summation order).
    ours, ref = _weights(layout.checkpoint("s1", 24)), _weights(reference.checkpoint("s1", 24))
    assert ours.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(ours[name], ref[name], rtol=0, atol=2e-4, msg=name)
    assert losses == pytest.approx(_losses(reference), abs=1e-4)
    # The weights barely depend on the clip coefficient: the norms check ClippedAdamW's sum of the
    # experts' squares over the EP group (stage 0) and ZeRO-2's own norm.
    grad_norms = [r["grad_norm"] for r in read_metrics(layout.state_dir("s1") / "metrics.jsonl")]
    reference_norms = [r["grad_norm"] for r in read_metrics(reference.state_dir("s1") / "metrics.jsonl")]
    assert grad_norms == pytest.approx(reference_norms, rel=1e-4)


def test_preempted_then_killed_run_ends_bitwise_identical(reference, tmp_path):
    """SIGUSR1: state saved, exit 75, the rerun resumes; then SIGKILL at a random later step, and the
    next rerun finishes: weights and loss curve as if nothing had happened."""
    config, layout = make_mini_run(tmp_path)
    metrics = layout.state_dir("s1") / "metrics.jsonl"
    proc = _start(config, "train", "--stage", "s1")
    _wait_for_step(proc, metrics, 3)
    proc.send_signal(signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, stderr[-2000:]
    saved = _latest_step(layout)
    assert 3 <= saved < 24 and f"run state saved at step {saved}" in stderr
    assert [r["step"] for r in read_metrics(metrics)][-1] == saved

    kill_at = random.Random().randint(saved + 1, max(saved + 1, 18))
    proc = _start(config, "train", "--stage", "s1")
    _wait_for_step(proc, metrics, kill_at)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _latest_step(layout) < 24

    rerun = run_tessera(config, "train", "--stage", "s1")
    assert "resumed s1 at step" in rerun.stdout
    _assert_bitwise_equal(_weights(layout.checkpoint("s1", 24)), _weights(reference.checkpoint("s1", 24)))
    assert _losses(layout) == _losses(reference), f"preempted at step {saved}, killed at step {kill_at}"


def test_nonfinite_losses_skip_updates_then_stop_naming_the_last_good_checkpoint(reference, tmp_path):
    # Poison the weights of the step-12 run state (as a diverged run would be): every later loss is NaN.
    run_dir = tmp_path / "results" / "mini"
    shutil.copytree(reference.root, run_dir)
    layout = RunLayout(run_dir)
    config, _ = make_mini_run(tmp_path)  # same config; rewrites identical token files
    state = layout.state_dir("s1") / "step-000024"
    payload = load_file(str(state / "rank-00000.safetensors"))
    with safe_open(str(state / "rank-00000.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    payload["layers.0.self_attn.q_proj.weight:master"].fill_(float("nan"))
    save_file(payload, str(state / "rank-00000.safetensors"), metadata=metadata)
    meta = json.loads((state / "meta.json").read_text())
    files = {"rank-00000.safetensors": sha256_file(state / "rank-00000.safetensors")}
    (state / "meta.json").write_text(json.dumps({**meta, "step": 12, "tokens_seen": 12 * 8 * 64,
                                                 "files": files}))
    shutil.move(state, layout.state_dir("s1") / "step-000012")
    (layout.state_dir("s1") / "latest").write_text("step-000012\n")
    shutil.rmtree(layout.checkpoint("s1", 24))
    poisoned = {k.removesuffix(":master"): v for k, v in payload.items() if k.endswith(":master")}

    proc = run_tessera(config, "--set", "train.max_nonfinite_steps=3", "--set", "train.save_state_every=1",
                       "train", "--stage", "s1", check=False)
    assert proc.returncode == 1
    assert "3 steps in a row (to step 15) had a non-finite loss" in proc.stderr
    assert f"Last good checkpoint: {layout.checkpoint('s1', 12)}" in proc.stderr
    records = read_metrics(layout.state_dir("s1") / "metrics.jsonl")[12:]
    assert [(r["step"], r["skipped"], r["nonfinite_steps"]) for r in records] == [
        (13, True, 1), (14, True, 2), (15, True, 3)]
    # The skipped updates left the weights as they were.
    after = load_file(str(layout.state_dir("s1") / "step-000014" / "rank-00000.safetensors"))
    after = {k.removesuffix(":master"): v for k, v in after.items() if k.endswith(":master")}
    for name, tensor in poisoned.items():
        torch.testing.assert_close(after[name], tensor, rtol=0, atol=0, equal_nan=True, msg=name)


def test_resume_with_another_model_or_tokenizer_is_refused(reference, tmp_path):
    config, layout = make_mini_run(tmp_path)
    shutil.copytree(reference.state_dir("s1"), layout.state_dir("s1"))
    proc = run_tessera(config, "--set", "model.overrides.num_layers=3", "train", "--stage", "s1", check=False)
    assert proc.returncode == 1
    assert "another model shape (num_layers: 2 -> 3)" in proc.stderr
    (layout.tokenizer_dir / "tokenizer.json").write_text('{"model": "retrained"}')
    proc = run_tessera(config, "train", "--stage", "s1", check=False)
    assert proc.returncode == 1
    assert "another tokenizer" in proc.stderr and "start a new run" in proc.stderr


def test_activation_checkpointing_trains_the_same(reference, tmp_path):
    """Recomputing each block in the backward pass changes memory, not the numbers."""
    config, layout = make_mini_run(tmp_path)
    shutil.copytree(reference.state_dir("s1"), layout.state_dir("s1"))
    run_tessera(config, "--set", "train.activation_checkpointing=true", "train", "--stage", "s2")
    assert _losses(layout, "s2") == _losses(reference, "s2")


def test_bf16_engine_resumes_bitwise(tmp_path):
    """bf16 on one rank is DeepSpeed's BF16_Optimizer (what a single GPU runs): a run stopped at its
    step-12 checkpoint and continued ends exactly as one that ran straight through."""
    straight, straight_layout = make_mini_run(tmp_path / "straight", precision="bf16")
    split, split_layout = make_mini_run(tmp_path / "split", precision="bf16")
    run_tessera(straight, "train", "--stage", "s1")
    run_tessera(split, "train", "--stage", "s1", "--until-step", "12")
    assert "resumed s1 at step 12" in run_tessera(split, "train", "--stage", "s1").stdout
    _assert_bitwise_equal(_weights(split_layout.checkpoint("s1", 24)),
                          _weights(straight_layout.checkpoint("s1", 24)))
    losses = _losses(straight_layout)
    assert _losses(split_layout) == losses and losses[-1] < losses[0] - 1.0
