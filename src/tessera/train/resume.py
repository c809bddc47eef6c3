"""Where a segment resumes from, and whether it may: the source state (this stage's newest, else the
previous stage's final one), its compatibility and recipe checks, its sha256 check with fallback to the
newest intact state, and the stage lock. The trainer calls these; they hold no state of their own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tessera.errors import CheckpointError
from tessera.layout import RunLayout
from tessera.parallel.dist import all_true
from tessera.train.checkpoint import (
    RunStateMeta,
    check_compatible,
    latest_state,
    resumable_states,
    verify_state,
)
from tessera.train.config import StageConfig, TrainConfig
from tessera.train.lock import StageLock
from tessera.train.resume_policy import check_resume_changes

__all__ = ["find_source", "check_resume", "intact_source", "take_lock", "layout_text", "num_nodes",
           "data_shift"]

Source = tuple[Path, RunStateMeta]


def find_source(layout: RunLayout, tcfg: TrainConfig, stage: StageConfig) -> Source | None:
    """This stage's latest run state; else the previous stage's final one; None for a fresh start."""
    found = latest_state(layout.state_dir(stage.name))
    if found is not None:
        return found
    previous = tcfg.previous_stage(stage.name)
    if previous is None:
        return None
    found = latest_state(layout.state_dir(previous.name))
    if found is None or found[1].step != previous.num_steps:
        at = f"step {found[1].step}" if found else "no run state"
        raise CheckpointError(
            f"{layout.state_dir(previous.name)}: stage {previous.name} is not finished ({at} of "
            f"{previous.num_steps}); train it first (its last checkpoint is this stage's input)"
        )
    return found


def check_resume(source: Source, current: RunStateMeta, stage: StageConfig) -> dict[str, tuple[Any, Any]]:
    """Same model and tokenizer; within a stage, the stage's recipe unchanged unless allowed. Returns
    the allowed changes (key -> (saved, current))."""
    directory, saved = source
    check_compatible(directory, saved, current)
    if saved.stage != stage.name:
        return {}
    return check_resume_changes(directory, stage.name, saved.stage_config, current.stage_config,
                                stage.resume_changes)


def intact_source(source: Source, stage: str) -> tuple[Source, str | None]:
    """The newest state whose files match their sha256 (collective: all ranks hash a share), and a note
    naming the damaged newer ones it skipped and what happens now; CheckpointError if none is intact.
    Only a state of the same stage falls back: a previous stage's final state has no substitute."""
    directory, saved = source
    continuing = saved.stage == stage
    candidates = resumable_states(directory.parent) if continuing else [source]
    skipped = []
    for directory, saved in candidates:
        problems = [str(saved)] if isinstance(saved, CheckpointError) else verify_state(directory, saved)
        if not problems:
            note = None
            if skipped:
                note = (f"skipping damaged run states ({'; '.join(skipped)}); resuming from {directory} at "
                        f"step {saved.step}: steps {saved.step + 1} on are retrained")
            return (directory, saved), note
        skipped.append(f"{directory.name}: {', '.join(problems)}")
    state_dir = directory.parent
    if continuing:
        remedy = f"delete {state_dir} to train stage {stage} again from step 1"
    else:  # the previous stage's final state: retrain its end from its newest intact state
        remedy = (f"delete {directory} and run stage {saved.stage}'s last segment again (it resumes from "
                  "its newest intact state)")
    raise CheckpointError(
        f"{state_dir}: no intact run state ({'; '.join(skipped)}). Copy the state again from its source "
        f"(docs/slurm.md, Moving a run), or {remedy}"
    )


def data_shift(directory: Path, saved: RunStateMeta, batch_size: int) -> int:
    """The loader step offset that continues the data where `saved` stopped with `batch_size`-sample
    steps (the loader's sample n of step k is k x batch + ...): the saved shift while the batch size is
    unchanged; after a change, the step whose first sample is the first one not yet seen."""
    if saved.stage_config.get("batch_size", batch_size) == batch_size:
        return saved.data_shift
    if saved.samples_seen % batch_size:
        raise CheckpointError(
            f"{directory}: the {saved.samples_seen} samples seen by step {saved.step} are not a whole number "
            f"of batches of {batch_size}: the data could not continue without skipping or repeating samples. "
            f"Resume from a step where they are, or pick a batch size that divides {saved.samples_seen}"
        )
    return saved.samples_seen // batch_size - saved.step


def take_lock(state_dir: Path, is_main: bool, device: torch.device) -> tuple[StageLock, list[str]]:
    """Rank 0 locks the stage for this job; every rank learns whether it could (collective)."""
    lock, refusal, notes = StageLock(state_dir), None, []
    if is_main:
        try:
            notes = lock.acquire()
        except CheckpointError as err:
            refusal = err
    if not all_true(refusal is None, device):
        raise refusal or CheckpointError(f"{lock.path}: rank 0 could not lock the stage (see its log)")
    return lock, notes


def num_nodes() -> int:
    """Nodes of the job step (an srun may use fewer than the job), else one (local launches)."""
    env = os.environ
    count = env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
    return int(count or 1)


def layout_text(meta: RunStateMeta) -> str:
    ranks = f"{meta.world_size} rank{'s' if meta.world_size > 1 else ''}"
    gpu = f" {meta.gpu_type}" if meta.gpu_type else ""
    return (f"{ranks} on {meta.num_nodes} node(s) at {meta.site or 'unknown site'}{gpu}, "
            f"EP {meta.expert_parallel_size}, ZeRO-{meta.zero_stage}")
