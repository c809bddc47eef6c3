"""Run state: everything a restarted job needs to continue bit for bit, in `state/<stage>/`.

    state/<stage>/
      latest                 "step-000040": the newest complete state (replaced atomically)
      step-000040/meta.json  stage, step, tokens_seen, world/EP/ZeRO layout, model config, tokenizer hash
      step-000040/rank-00000.pt  this rank's model (its expert shard), ZeRO optimizer partition, RNG states
      metrics.jsonl          the stage's per-step log (the trainer truncates it to the resumed step)

`state/` is not a Snakemake output: Snakemake deletes the outputs of a failed job, and this must survive
it. A state directory is built under a temporary name and renamed whole, then `latest` is replaced; a job
killed mid-save leaves the previous state as `latest`. The data loader is a pure function of the step,
and the learning rate of the step, so the step restores both.

Resuming needs the same ranks, expert-parallel size and ZeRO stage (the optimizer partitions follow them)
and the same model shape and tokenizer; anything else is refused with a CheckpointError.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tessera.errors import CheckpointError
from tessera.io import write_json, write_text
from tessera.parallel.dist import barrier

__all__ = [
    "RunStateMeta", "save_state", "load_state", "latest_state", "check_compatible", "rng_state",
    "set_rng_state",
]

LATEST = "latest"
INIT_ONLY_FIELDS = {"init_std"}
"""ModelConfig fields that only shape a fresh initialisation: changing them does not block a resume."""
META = "meta.json"


@dataclass
class RunStateMeta:
    stage: str
    step: int
    """Optimizer steps done in this stage."""
    tokens_seen: int
    """Training tokens seen by the model since the first stage began."""
    world_size: int
    expert_parallel_size: int
    zero_stage: int
    model: dict[str, Any]
    """The ModelConfig as a mapping."""
    tokenizer_sha256: str
    nonfinite_in_a_row: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rank_file(directory: Path, rank: int) -> Path:
    return directory / f"rank-{rank:05d}.pt"


def _step_name(step: int) -> str:
    return f"step-{step:06d}"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _optimizer_state(engine) -> Any:
    return engine.optimizer.state_dict()


def _load_optimizer_state(engine, saved: Any, world_size: int) -> None:
    from deepspeed.runtime.bf16_optimizer import BF16_Optimizer
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    if isinstance(engine.optimizer, DeepSpeedZeroOptimizer | BF16_Optimizer):
        # Both read their own partition at the data-parallel rank's index (the others only for elastic
        # resharding, which the same-layout rule above excludes); the fp32 master copy is restored exactly.
        partitions: list[Any] = [None] * world_size
        partitions[dist.get_rank(group=engine.optimizer.dp_process_group)] = saved
        engine.optimizer.load_state_dict(partitions, load_optimizer_states=True, load_from_fp32_weights=True)
    else:
        engine.optimizer.load_state_dict(saved)


def save_state(state_dir: Path, meta: RunStateMeta, engine, keep: int = 2) -> Path:
    """Write this step's run state (collective: every rank calls it) and point `latest` at it."""
    state_dir = Path(state_dir)
    final = state_dir / _step_name(meta.step)
    tmp = state_dir / f".{final.name}.tmp"
    rank = _rank()
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    payload = {"model": engine.module.state_dict(), "optimizer": _optimizer_state(engine), "rng": rng_state()}
    torch.save(payload, _rank_file(tmp, rank))
    barrier()
    if rank == 0:
        missing = [r for r in range(meta.world_size) if not _rank_file(tmp, r).is_file()]
        assert not missing, f"ranks {missing} wrote no state"  # noqa: S101 barrier passed: a filesystem bug
        write_json(tmp / META, meta.to_dict())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_text(state_dir / LATEST, final.name + "\n")
        _prune(state_dir, keep)
    barrier()
    return final


def _prune(state_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete states (never the one `latest` names)."""
    latest = (state_dir / LATEST).read_text().strip()
    states = sorted(p for p in state_dir.glob("step-*") if p.is_dir())
    for old in states[:-keep]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)


def latest_state(state_dir: Path) -> tuple[Path, RunStateMeta] | None:
    """The newest complete run state of a stage, or None when the stage has not saved one yet."""
    pointer = Path(state_dir) / LATEST
    if not pointer.is_file():
        return None
    directory = Path(state_dir) / pointer.read_text().strip()
    try:
        raw = json.loads((directory / META).read_text(encoding="utf-8"))
        return directory, RunStateMeta(**raw)
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise CheckpointError(
            f"{directory}: run state unreadable ({err}); delete {pointer} to restart the stage from its "
            "previous published checkpoint"
        ) from None


def check_compatible(directory: Path, saved: RunStateMeta, expected: RunStateMeta) -> None:
    """Refuse to resume into a different model, tokenizer or parallel layout, naming what changed."""
    keys = (set(saved.model) | set(expected.model)) - INIT_ONLY_FIELDS
    changed = sorted(k for k in keys if saved.model.get(k) != expected.model.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.model.get(k)!r} -> {expected.model.get(k)!r}" for k in changed)
        raise CheckpointError(
            f"{directory}: the run state was trained with another model shape ({detail}); restore the "
            "model config it was saved with, or start a new run (run.name)"
        )
    if saved.tokenizer_sha256 != expected.tokenizer_sha256:
        raise CheckpointError(
            f"{directory}: the run state was trained with another tokenizer (sha256 "
            f"{saved.tokenizer_sha256[:12]} -> {expected.tokenizer_sha256[:12]}); token ids would mean other "
            "words. Restore that tokenizer, or start a new run (run.name)"
        )
    layout = ("world_size", "expert_parallel_size", "zero_stage")
    changed = [f"{k}: {getattr(saved, k)} -> {getattr(expected, k)}" for k in layout
               if getattr(saved, k) != getattr(expected, k)]
    if changed:
        raise CheckpointError(
            f"{directory}: the run state's parallel layout differs ({', '.join(changed)}); the optimizer "
            "partitions follow it. Resume with the same number of ranks, train.expert_parallel_size and "
            "train.zero_stage"
        )


def load_state(directory: Path, saved: RunStateMeta, engine) -> None:
    """Restore model, optimizer and RNG of this rank from `directory` (the caller has run check_compatible,
    before building the engine)."""
    path = _rank_file(directory, _rank())
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise CheckpointError(
            f"{path}: cannot read the run state ({err}); delete {directory.parent / LATEST} to restart "
            "the stage from its previous published checkpoint"
        ) from None
    engine.module.load_state_dict(payload["model"])
    _load_optimizer_state(engine, payload["optimizer"], saved.world_size)
    set_rng_state(payload["rng"])
