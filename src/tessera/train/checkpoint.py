"""Run state: everything a restarted job needs to continue, in `state/<stage>/`, readable by any layout.

    state/<stage>/
      latest                        "step-000040": the newest complete state (replaced atomically)
      step-000040/meta.json         stage, step, tokens, Adam step, layout, model, tokenizer hash, stage
                                    config, history, index (tensor key -> file), files (sha256 each)
      step-000040/rank-00000.safetensors   the units this rank wrote + its RNG states
      metrics.jsonl                 the stage's per-step log (the trainer truncates it to the resumed step)

Layout-independent: a unit is a dense parameter or one expert's slice of a stacked expert parameter
(`tessera.parallel.full_state`); for each, `<unit>:master`, `<unit>:exp_avg`, `<unit>:exp_avg_sq` hold the
full fp32 master weights and AdamW moments. Units are dealt to the ranks holding them, balanced by
bytes, and each rank writes its own file in parallel; no rank holds more than its part plus one
parameter's full tensors. A reader on any world size, expert-parallel size or ZeRO stage reads the keys
of its own parameters lazily (`safe_open`) and copies its fragment. Nothing is unpickled: tensors are
safetensors, RNG states and the rest JSON.

A state directory is built under a temporary name and renamed whole, then `latest` is replaced; a job
killed mid-save leaves the previous state as `latest`. Every file's sha256 is in meta.json and checked
before loading; a damaged state is skipped for the newest intact older one (`resumable_states`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tessera.errors import CheckpointError
from tessera.integrity import damaged_files, file_hashes
from tessera.io import write_json, write_text
from tessera.parallel.dist import barrier
from tessera.parallel.full_state import (
    MOMENTS,
    ParamSlot,
    adam_step,
    buffers,
    link_optimizer_states,
    param_slots,
    read_full,
    set_adam_step,
    write_full,
)
from tessera.train.rng import rng_json, rng_tensors, set_rng

__all__ = ["RunStateMeta", "save_state", "load_state", "resumable_states", "latest_state",
           "check_compatible", "verify_state", "FORMAT"]

LATEST = "latest"
INIT_ONLY_FIELDS = {"init_std"}
"""ModelConfig fields that only shape a fresh initialisation: changing them does not block a resume."""
META = "meta.json"
FORMAT = 2
"""1: per-rank torch pickles of one layout (refused: they would be unpickled); 2: this format."""


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
    stage_config: dict[str, Any] = field(default_factory=dict)
    """The StageConfig as a mapping (batch size, seq_len, mixture, lr): a resume compares it."""
    site: str = ""
    gpu_type: str | None = None
    num_nodes: int = 1
    adam_step: int = 0
    samples_seen: int = 0
    """Global samples this stage has consumed (the data position; the loader numbers samples globally)."""
    data_shift: int = 0
    """Loader step = step + data_shift: nonzero after an allowed batch_size change, so that the next
    sample is the first one not yet seen (tessera.train.resume.data_shift)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """LayoutSpan mappings (tessera.train.history)."""
    index: dict[str, str] = field(default_factory=dict)
    """Tensor key -> the file holding it."""
    files: dict[str, str] = field(default_factory=dict)
    """File name -> sha256."""
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _rank_file(rank: int) -> str:
    return f"rank-{rank:05d}.safetensors"


def _step_name(step: int) -> str:
    return f"step-{step:06d}"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def _expert_holdings(slots: list[ParamSlot]) -> list[tuple[int, int]]:
    """(first expert, experts held) of every rank (one all-gather; every EP layer is sharded alike)."""
    mine = next(((s.first_expert, s.param.shape[0]) for s in slots if s.first_expert is not None), (0, 0))
    if _world() == 1:
        return [mine]
    device = slots[0].param.device  # NCCL gathers CUDA tensors only
    parts = [torch.zeros(2, dtype=torch.int64, device=device) for _ in range(_world())]
    dist.all_gather(parts, torch.tensor(mine, dtype=torch.int64, device=device))
    return [(int(p[0]), int(p[1])) for p in parts]


def writers(slots: list[ParamSlot]) -> dict[str, int]:
    """unit -> the rank that writes it: among the ranks holding it, the one with the fewest bytes so far
    (the same answer on every rank: it depends on the layout only)."""
    holdings = _expert_holdings(slots)
    num_experts = max(first + n for first, n in holdings)
    load = [0] * len(holdings)
    owner = {}
    for slot in slots:
        if slot.first_expert is None:
            units, per_unit = [(slot.name, None)], slot.param.numel()
        else:
            units, per_unit = [(f"{slot.name}/{e}", e) for e in range(num_experts)], slot.param[0].numel()
        for unit, expert in units:
            holders = [r for r, (first, n) in enumerate(holdings)
                       if expert is None or first <= expert < first + n]
            chosen = min(holders, key=lambda r: (load[r], r))
            load[chosen] += per_unit
            owner[unit] = chosen
    return owner


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
    slots = param_slots(engine.module)
    owner = writers(slots)
    link_optimizer_states(engine)
    part: dict[str, torch.Tensor] = {}
    for slot in slots:
        full = read_full(engine, slot)  # collective under ZeRO: every rank of the parameter's group
        for j, unit in enumerate(slot.units):
            if owner[unit] != rank:
                continue
            for key, tensor in full.items():
                mine = tensor if slot.first_expert is None else tensor[j]
                part[f"{unit}:{key}"] = mine.detach().to("cpu", copy=True).contiguous()
        del full
    if rank == 0:
        part.update({f"buffer:{name}": t.detach().cpu().contiguous() for name, t in buffers(engine.module)})
    part.update(rng_tensors())
    name = _rank_file(rank)
    save_file(part, str(tmp / name), metadata={"rng": rng_json()})
    del part
    write_json(tmp / f".{name}.sha256.json", file_hashes(tmp, [name]))  # hashed in parallel, by its writer
    meta.adam_step = adam_step(engine)
    barrier()
    if rank == 0:
        _finish(tmp, final, meta, state_dir, keep)
    barrier()
    return final


def _finish(tmp: Path, final: Path, meta: RunStateMeta, state_dir: Path, keep: int) -> None:
    """Rank 0: merge the ranks' hashes and key lists into meta.json, rename, point `latest`, prune."""
    meta.files, meta.index = {}, {}
    for rank in range(meta.world_size):
        name = _rank_file(rank)
        sidecar = tmp / f".{name}.sha256.json"
        meta.files.update(json.loads(sidecar.read_text(encoding="utf-8")))
        sidecar.unlink()
        with safe_open(str(tmp / name), framework="pt") as handle:  # the header only
            meta.index.update({key: name for key in handle.keys() if not key.startswith("rng.")})
    write_json(tmp / META, meta.to_dict())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text(state_dir / LATEST, final.name + "\n")
    _prune(state_dir, keep)


def _prune(state_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete states (never the one `latest` names)."""
    latest = (state_dir / LATEST).read_text().strip()
    states = sorted(p for p in state_dir.glob("step-*") if p.is_dir())
    for old in states[:-keep]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)


def read_meta(directory: Path) -> RunStateMeta:
    path = Path(directory) / META
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise CheckpointError(
                f"{path}: run state of an older tessera (per-rank pickles, which are never loaded: "
                "unpickling runs code)"
            )
        return RunStateMeta(**raw)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, TypeError) as err:
        raise CheckpointError(f"{path}: run state unreadable ({err})") from None


def resumable_states(state_dir: Path) -> list[tuple[Path, RunStateMeta | CheckpointError]]:
    """The stage's complete states, newest first (the one `latest` names first; without `latest`, the
    newest step folder): each with its meta, or the error that makes it unusable. Empty when the stage
    has none. (Folders are renamed into place whole, so every `step-*` folder is complete.)"""
    state_dir = Path(state_dir)
    pointer = state_dir / LATEST
    named = state_dir / _latest_name(pointer) if pointer.is_file() else None
    latest = [named] if named is not None and named.is_dir() else []  # a deleted one is just gone
    others = sorted((p for p in state_dir.glob("step-*") if p.is_dir() and p not in latest), reverse=True)
    found: list[tuple[Path, RunStateMeta | CheckpointError]] = []
    for directory in [*latest, *others]:
        try:
            found.append((directory, read_meta(directory)))
        except CheckpointError as err:
            found.append((directory, err))
    return found


def _latest_name(pointer: Path) -> str:
    """The state folder `latest` names: one `step-NNNNNN` inside the stage's folder, never a path."""
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    if not re.fullmatch(r"step-\d{6}", name):
        raise CheckpointError(
            f"{pointer}: names {name[:80]!r}, not a state folder of this stage (step-NNNNNN); delete "
            f"{pointer} to resume from the newest complete state folder beside it"
        )
    return name


def latest_state(state_dir: Path) -> tuple[Path, RunStateMeta] | None:
    """The newest readable state of a stage (no file hashing), or None when it has saved none;
    CheckpointError when it has states but none is readable (never a silent fresh start)."""
    found = resumable_states(state_dir)
    for directory, meta in found:
        if isinstance(meta, RunStateMeta):
            return directory, meta
    if not found:
        return None
    reasons = "; ".join(str(err) for _, err in found)
    raise CheckpointError(
        f"{state_dir}: no usable run state ({reasons}). Delete {state_dir} to train the stage again from "
        "step 1 (from the previous stage's final state, if any)"
    )


def verify_state(directory: Path, meta: RunStateMeta) -> list[str]:
    """Damaged files of a state, the ranks sharing the hashing (collective: every rank calls it)."""
    names = sorted(meta.files)
    mine = {n: meta.files[n] for n in names[_rank()::_world()]}
    problems = damaged_files(directory, mine)
    if _world() == 1:
        return problems
    gathered: list[list[str]] = [[] for _ in range(_world())]
    dist.all_gather_object(gathered, problems)  # in memory, between our own ranks
    return [p for part in gathered for p in part]


def check_compatible(directory: Path, saved: RunStateMeta, expected: RunStateMeta) -> None:
    """Refuse to resume into a different model or tokenizer, naming what changed (any parallel layout
    can read the state; stage-config changes are `tessera.train.resume_policy`'s)."""
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


class _Reader:
    """Lazy reads of single tensors from the state's files (each opened once)."""

    def __init__(self, directory: Path, index: dict[str, str]) -> None:
        self.directory, self.index, self.handles = directory, index, {}

    def get(self, key: str) -> torch.Tensor:
        name = self.index.get(key)
        if name is None:
            raise CheckpointError(f"{self.directory}: the run state has no tensor {key!r}; it is incomplete")
        if name not in self.handles:
            self.handles[name] = safe_open(str(self.directory / name), framework="pt")
        return self.handles[name].get_tensor(key)

    def unit(self, slot: ParamSlot) -> dict[str, torch.Tensor]:
        keys = ("master", *MOMENTS)
        if slot.first_expert is None:
            return {k: self.get(f"{slot.name}:{k}") for k in keys}
        return {k: torch.stack([self.get(f"{unit}:{k}") for unit in slot.units]) for k in keys}


def load_state(directory: Path, saved: RunStateMeta, engine) -> None:
    """Restore model, optimizer and (where the rank existed) RNG of this rank from `directory`, whatever
    layout wrote it (the caller has run check_compatible and verify_state)."""
    try:
        reader = _Reader(directory, saved.index)
        set_adam_step(engine, saved.adam_step)
        for slot in param_slots(engine.module):
            write_full(engine, slot, reader.unit(slot))
        with torch.no_grad():
            for name, tensor in buffers(engine.module):
                tensor.copy_(reader.get(f"buffer:{name}"))
        # RNG: each rank its own where it existed; a rank the old layout lacked keeps its fresh seed
        # (training draws no random numbers; this keeps same-layout resumes exact for code that would).
        rank_file = directory / _rank_file(_rank())
        if rank_file.is_file():
            with safe_open(str(rank_file), framework="pt") as handle:
                tensors = {k: handle.get_tensor(k) for k in handle.keys() if k.startswith("rng.")}
                set_rng(tensors, handle.metadata()["rng"])
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{directory}: cannot read the run state ({err}); it passed its sha256 check, so it was "
            f"written by an incompatible tessera version. Delete {directory} to resume from the state "
            "before it (or, if it is the only one, from step 1)"
        ) from None
