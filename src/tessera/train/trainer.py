"""`tessera train --stage S --until-step N`: train one segment of a stage on a DeepSpeed engine.

run_stage: build (process group, loader, model, expert parallelism, engine), restore (this stage's run
state, else the previous stage's final state, else a fresh model), then loop: `train_step` (micro-batches,
backward, clip + AdamW step via the engine), callbacks (metrics, energy, logs), a run state every
`save_state_every` steps, and at `until_step` the published checkpoint `train/<stage>/step-<N>/`.

Preemption: SIGUSR1 (sbatch --signal=USR1@T) or SIGTERM sets a flag; at the end of the current step
every rank learns of it (one all-reduce), the run state is saved and PreemptedError makes the CLI exit
75, so Snakemake's retry resumes. A SIGKILL loses the steps since the last run state, which the rerun
repeats exactly (the loader and the schedule are functions of the step; RNG states are restored).
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from tessera.config import RunConfig
from tessera.errors import CheckpointError, PreemptedError, TesseraError
from tessera.io import sha256_file, write_text
from tessera.layout import RunLayout, checkpoint_steps
from tessera.parallel.dist import all_true, device_for, init_distributed
from tessera.parallel.env import DistEnv
from tessera.preflight import check_stage_fits
from tessera.train.build import (
    METRICS_FILE,
    build_callbacks,
    build_loader,
    build_model_engine,
    first_span,
    initial_meta,
    num_threads,
)
from tessera.train.callbacks import StepRecord
from tessera.train.callbacks.loggers import read_metrics
from tessera.train.checkpoint import RunStateMeta, latest_state, load_state, save_state
from tessera.train.config import StageConfig
from tessera.train.history import LayoutSpan, extend_history
from tessera.train.resume import (
    check_resume,
    data_shift,
    find_source,
    intact_source,
    layout_text,
    take_lock,
)
from tessera.train.schedule import lr_at

__all__ = [
    "run_stage", "Segment", "train_step", "StepResult", "NonFiniteLossError", "PreemptionFlag",
    "cross_entropy",
]

class NonFiniteLossError(TesseraError):
    """Too many consecutive steps had a non-finite loss; the message names the last good checkpoint."""


class PreemptionFlag:
    """Set by SIGUSR1/SIGTERM; the loop checks it between steps (a handler must not save mid-step)."""

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __enter__(self) -> PreemptionFlag:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def cross_entropy(logits_BTV: torch.Tensor, targets_BT: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits_BTV.flatten(0, 1).float(), targets_BT.flatten())


@dataclass
class StepResult:
    loss: float
    """Mean cross-entropy over the step's micro-batches and ranks (NaN if any was non-finite)."""
    aux_loss: float
    grad_norm: float | None
    applied: bool
    """Whether the optimizer updated the weights (DeepSpeed drops updates with non-finite gradients)."""
    nonfinite: bool
    """A loss or the gradient norm was non-finite on some rank."""
    moe_stats: list[Any]


def train_step(engine, batches, lr: float, device: torch.device) -> StepResult:
    """One optimizer step: forward/backward every micro-batch (DeepSpeed accumulates, then clips and
    steps at the last), with the learning rate `lr`. A non-finite loss on any rank skips the update:
    its NaN/inf gradients make DeepSpeed's overflow check drop the step and zero the gradients."""
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
    sums_3 = torch.zeros(3, dtype=torch.float64, device=device)  # ce, aux, non-finite micro-batches
    out = None
    for inputs_BT, targets_BT in batches:
        out = engine(inputs_BT.to(device, non_blocking=True))
        ce = cross_entropy(out.logits_BTV, targets_BT.to(device, non_blocking=True))
        loss = ce + out.aux_loss.float()
        engine.backward(loss)
        engine.step()
        detached = torch.stack([ce.detach(), out.aux_loss.detach().float()]).double()
        sums_3[:2] += torch.nan_to_num(detached, nan=0.0, posinf=0.0, neginf=0.0)
        sums_3[2] += (~torch.isfinite(loss.detach())).double()
    micro = engine.gradient_accumulation_steps()
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(sums_3)
    ranks = dist.get_world_size() if dist.is_initialized() else 1
    ce_sum, aux_sum, nonfinite = sums_3.tolist()
    ce_mean, aux_mean = ce_sum / (micro * ranks), aux_sum / (micro * ranks)
    applied = engine.was_step_applied()
    norm = engine.get_global_grad_norm()
    norm = float(norm) if norm is not None else None
    return StepResult(
        loss=ce_mean if nonfinite == 0 else float("nan"), aux_loss=aux_mean,
        grad_norm=norm if applied else None, applied=applied, nonfinite=nonfinite > 0 or not applied,
        moe_stats=out.moe_stats if out is not None else [],
    )


class Segment:
    """One job's share of a stage, up to `until_step`: everything built once, then `train()`."""

    def __init__(self, cfg: RunConfig, stage: StageConfig, until_step: int, meter) -> None:
        from tessera.model.config import build_model_config, train_flops_per_token
        from tessera.parallel.deepspeed import engine_spec

        self.cfg, self.stage, self.tcfg = cfg, stage, cfg.train
        self.layout = RunLayout(cfg.out_dir)
        self.num_steps, self.until_step = stage.num_steps, until_step
        self.state_dir = self.layout.state_dir(stage.name)
        torch.set_num_threads(num_threads(self.tcfg))
        self.env = DistEnv.from_environ()
        self.device = device_for(self.env)
        self.spec = engine_spec(self.tcfg, stage, self.env.world_size, self.device)

        tokenizer_file = self.layout.tokenizer_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise CheckpointError(f"{tokenizer_file}: tokenizer not found; run the tokenizer stage first")
        self.loader = build_loader(cfg, stage, self.layout, self.env, self.spec)
        self.model_cfg = build_model_config(cfg.model, self.loader.vocab_size)
        check_stage_fits(self.tcfg, stage, self.model_cfg, self.env.world_size)  # as the workflow did
        self.tokenizer_sha256 = sha256_file(tokenizer_file)
        self.meta = initial_meta(cfg, stage, self.model_cfg, self.spec, self.env, self.device,
                                 self.tokenizer_sha256)
        self.span = first_span(stage, self.meta)
        self.history: list[LayoutSpan] = []
        self.resume_notes: dict[str, str] = {}
        """layout_change ("old -> new") and resume_changes for the first step's record after a resume."""
        # Refuse an incompatible resume before the slow part (process group, model, engine).
        self.source = find_source(self.layout, self.tcfg, stage)
        if self.source is not None:
            self._check_resume(self.source)

        self.env, self.device = init_distributed(self.env)
        self.lock, notes = take_lock(self.state_dir, self.env.is_main, self.device)
        try:
            self._use_intact_source(notes)
        except BaseException:
            self.release()
            raise
        self.engine, self.balancing_routers = build_model_engine(cfg, stage, self.model_cfg, self.spec,
                                                                 self.device)
        if self.spec.zero_stage != self.tcfg.zero_stage:
            self._say(f"one rank: ZeRO stage {self.tcfg.zero_stage} has nothing to shard, running stage 0")
        self.callbacks = build_callbacks(
            cfg, self.env, self.device, self.state_dir, until_step,
            train_flops_per_token(self.model_cfg, stage.seq_len), meter, self._sum_over_ranks,
        )

    def _use_intact_source(self, notes: list[str]) -> None:
        if self.source is not None:
            self.source, note = intact_source(self.source, self.stage.name)
            if note is not None:  # fell back to an older state: its recipe is checked again
                notes.append(note)
                self._check_resume(self.source)
        for note in notes:
            self._say(note)

    def release(self) -> None:
        """Give up the stage lock (rank 0 holds it)."""
        if self.env.is_main:
            self.lock.release()

    def _sum_over_ranks(self, values: list[float]) -> list[float]:
        summed = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return summed.tolist()

    # --- restore ------------------------------------------------------------------------------------

    def _check_resume(self, source: tuple[Path, RunStateMeta]) -> None:
        """Refuse what may not change; note what may (before the engine is built)."""
        changes = check_resume(source, self.meta, self.stage)
        directory, saved = source
        if saved.stage == self.stage.name:
            self.meta.data_shift = data_shift(directory, saved, self.stage.batch_size)
        self.span.resume_changes = sorted(changes)
        for key, (old, new) in sorted(changes.items()):
            self._say(f"resume_changes: {key} changes from {old!r} to {new!r} (allowed by the stage config)")

    def restore(self) -> None:
        """Load the resume source into the engine: continue this stage, or begin it from the last one."""
        if self.source is None:
            self._say(f"{self.stage.name}: starting from freshly initialised weights")
            return
        directory, saved = self.source
        load_state(directory, saved, self.engine)
        self.meta.tokens_seen = saved.tokens_seen
        self.history = [LayoutSpan.from_dict(h) for h in saved.history]
        if saved.stage == self.stage.name:
            self.meta.step, self.meta.nonfinite_in_a_row = saved.step, saved.nonfinite_in_a_row
            self.meta.samples_seen = saved.samples_seen  # data_shift: set by _check_resume
            self._say(f"resumed {self.stage.name} at step {saved.step} from {directory}")
            before, after = layout_text(saved), layout_text(self.meta)
            if before != after:
                self.resume_notes["layout_change"] = f"{before} -> {after}"
                self._say(f"new parallel layout: {before} -> {after}")
            if self.span.resume_changes:
                self.resume_notes["resume_changes"] = ",".join(self.span.resume_changes)
        else:
            # Weights and optimizer moments carry over; step, schedule and data order are the new stage's.
            self._say(f"{self.stage.name}: starting from {saved.stage}'s final state {directory}")

    # --- the loop -----------------------------------------------------------------------------------

    def train(self) -> Path:
        step, until_step = self.meta.step, self.until_step
        if step > until_step:
            raise CheckpointError(
                f"{self.state_dir}: the run state is at step {step}, past --until-step {until_step}; the "
                f"checkpoint of step {until_step} cannot be re-created from it. Delete {self.state_dir} "
                "to retrain the stage"
            )
        publish_steps = set(checkpoint_steps(self.num_steps, self.tcfg.checkpoint_every))
        for callback in self.callbacks:
            callback.on_start(self.stage.name, step, self.num_steps)
        try:
            with PreemptionFlag() as flag:
                while step < until_step:
                    step = self.step(step).step
                    # Every rank must agree to stop: the signal may reach only some of them.
                    preempted = not all_true(flag.signal is None, self.device)
                    if step % self.tcfg.save_state_every == 0 or step == until_step or preempted:
                        save_state(self.state_dir, self.meta, self.engine, keep=self.tcfg.keep_states)
                    if step in publish_steps and step < until_step:  # a job spanning several checkpoints
                        self.publish(step)
                    if preempted and step < until_step:
                        raise PreemptedError(
                            f"stage {self.stage.name}: signal received; run state saved at step {step} in "
                            f"{self.state_dir}. Rerun the same command to resume"
                        )
        finally:
            for callback in self.callbacks:
                callback.on_end()
        return self.publish(until_step)

    def step(self, step: int) -> StepRecord:
        """Train step `step` (0-based) and run the callbacks on its record; no saving."""
        record = self._train_step(step)
        self.meta.step = record.step
        self.history = extend_history(self.history, self.span, record.step)
        self.meta.history = [span.to_dict() for span in self.history]
        if self.env.is_main:
            self.lock.heartbeat()
        for callback in self.callbacks:
            callback.on_step_end(record)
        self._guard_nonfinite(record)
        return record

    def _train_step(self, step: int) -> StepRecord:
        t0 = time.perf_counter()
        lr = lr_at(self.stage.lr, step, self.num_steps)
        at = step + self.meta.data_shift
        batches = (self.loader.batch(at, micro) for micro in range(self.spec.grad_accum_steps))
        result = train_step(self.engine, batches, lr, self.device)
        layout = {"world_size": self.meta.world_size, "expert_parallel_size": self.meta.expert_parallel_size,
                  "zero_stage": self.meta.zero_stage}
        layout.update(self.resume_notes)  # the first step after a resume: what changed
        self.resume_notes = {}
        if self.balancing_routers:
            self._update_router_biases(result.applied)
        self.meta.nonfinite_in_a_row = self.meta.nonfinite_in_a_row + 1 if result.nonfinite else 0
        self.meta.tokens_seen += self.stage.tokens_per_step
        self.meta.samples_seen += self.stage.batch_size
        return StepRecord(
            stage=self.stage.name, step=step + 1, num_steps=self.num_steps, tokens_seen=self.meta.tokens_seen,
            step_tokens=self.stage.tokens_per_step, step_time_s=time.perf_counter() - t0,
            metrics={"loss": result.loss, "aux_loss": result.aux_loss, "lr": lr,
                     "grad_norm": result.grad_norm,
                     "skipped": not result.applied, "nonfinite_steps": self.meta.nonfinite_in_a_row,
                     **layout},
            moe_stats=result.moe_stats,
        )

    def _update_router_biases(self, applied: bool) -> None:
        """Auxiliary-loss-free balancing: sum each router's load over ranks, then step its bias. After a
        skipped step the load is dropped instead, so the count always restarts at a step boundary (where
        run states are saved without it)."""
        if not applied:
            for router in self.balancing_routers:
                router.load_E.zero_()
            return
        if self.env.world_size > 1:
            # One collective for all layers (every MoE layer has the same number of experts).
            loads_LE = torch.stack([router.load_E for router in self.balancing_routers])
            dist.all_reduce(loads_LE)
            for router, load_E in zip(self.balancing_routers, loads_LE, strict=True):
                router.load_E.copy_(load_E)
        for router in self.balancing_routers:
            router.update_bias()

    def _guard_nonfinite(self, record: StepRecord) -> None:
        if self.meta.nonfinite_in_a_row < self.tcfg.max_nonfinite_steps:
            return
        published = [s for s in checkpoint_steps(self.num_steps, self.tcfg.checkpoint_every)
                     if s <= record.step and self.layout.checkpoint(self.stage.name, s).is_dir()]
        last_good = (self.layout.checkpoint(self.stage.name, published[-1]) if published
                     else "none in this stage (restart from the previous stage's final checkpoint)")
        found = latest_state(self.state_dir)
        raise NonFiniteLossError(
            f"stage {self.stage.name}: {self.meta.nonfinite_in_a_row} steps in a row (to step {record.step}) "
            f"had a non-finite loss and were skipped (train.max_nonfinite_steps = "
            f"{self.tcfg.max_nonfinite_steps}). Last good checkpoint: {last_good}; last run state: "
            f"{found[0] if found else 'none'}. Lower the learning rate or inspect the data of these steps, "
            f"then delete the run states saved after the bad point ({self.state_dir}/step-*): the stage "
            "resumes from the newest one left (none left: from step 1)"
        )

    # --- publish ------------------------------------------------------------------------------------

    def publish(self, step: int) -> Path:
        """Write the consolidated checkpoint `train/<stage>/step-<N>/` with this segment's metrics."""
        from tessera.model.checkpoint import model_from_state, save_checkpoint
        from tessera.parallel.expert_parallel import gather_full_state_dict

        full_state = gather_full_state_dict(self.engine.module)  # collective: every rank
        out = self.layout.checkpoint(self.stage.name, step)
        if self.env.is_main:
            plain = model_from_state(
                self.model_cfg, {k: v.cpu() for k, v in full_state.items()}, "cpu",
                f"stage {self.stage.name} step {step}: the gathered weights do not match the model config",
            )
            save_checkpoint(out, plain, {
                "stage": self.stage.name, "step": step, "tokens_seen": self.meta.tokens_seen,
                "stage_steps": self.num_steps, "run": self.cfg.run.name,
                "tokenizer_sha256": self.tokenizer_sha256, "site": self.meta.site,
                "history": [span.to_dict() for span in self.history],
            }, tokenizer_dir=self.layout.tokenizer_dir)
            earlier = [s for s in checkpoint_steps(self.num_steps, self.tcfg.checkpoint_every) if s < step]
            first = earlier[-1] if earlier else 0
            records = read_metrics(self.state_dir / METRICS_FILE)
            lines = [r for r in records if first < r.get("step", 0) <= step]
            write_text(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in lines))
            self._say(f"published {out}")
        if dist.is_initialized():
            dist.barrier()
        return out

    def _say(self, message: str) -> None:
        if self.env.is_main:
            print(f"tessera train: {message}", flush=True)


def run_stage(cfg: RunConfig, stage: str, until_step: int | None = None, meter=None) -> Path:
    """Train `stage` up to `until_step` (default: its last step) and publish that step's checkpoint.

    Resumes from the stage's run state when there is one, so rerunning a killed or preempted job
    continues it; returns the published checkpoint folder.
    """
    spec = cfg.train.stage(stage)
    until = spec.num_steps if until_step is None else until_step
    if not 1 <= until <= spec.num_steps:
        raise CheckpointError(f"--until-step {until}: stage {stage} has steps 1..{spec.num_steps}")
    segment = Segment(cfg, spec, until, meter)
    try:
        segment.restore()
        return segment.train()
    finally:
        segment.release()
