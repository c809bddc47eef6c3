"""The `train:` section: engine settings shared by all stages, and the ordered stages.

A stage is one segment of the learning-rate schedule (warmup-stable-decay): `stable` warms up then holds
the peak rate; `anneal` decays it to zero, usually on a higher-quality mixture. Each stage starts from the
previous stage's final weights and optimizer state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from tessera.errors import ConfigError
from tessera.names import check_name
from tessera.train.resume_policy import RESUMABLE_KEYS

__all__ = ["TrainConfig", "StageConfig", "LRSegment"]


@dataclass
class LRSegment:
    """The learning rate over one stage: linear warmup, a constant plateau, then an optional decay."""

    peak: float = 3e-3
    """Learning rate after warmup (the plateau)."""
    warmup_steps: int = 0
    """Linear warmup from 0 to `peak` over these first steps of the stage."""
    decay: Literal["none", "linear", "cosine", "sqrt"] = "none"
    """Shape of the decay at the end of the stage ('none' = hold `peak` to the end)."""
    decay_steps: int | None = None
    """Steps at the end of the stage over which the rate decays (null = every step after warmup)."""
    final: float = 0.0
    """Learning rate reached at the stage's last step when decaying (0 = decay to zero)."""

    def check(self, where: str) -> None:
        if self.peak <= 0:
            raise ConfigError(f"{where}.peak: {self.peak} must be positive")
        if self.warmup_steps < 0:
            raise ConfigError(f"{where}.warmup_steps: {self.warmup_steps} must be >= 0")
        if self.decay_steps is not None and self.decay_steps <= 0:
            raise ConfigError(f"{where}.decay_steps: {self.decay_steps} must be positive or null")
        if not 0 <= self.final <= self.peak:
            raise ConfigError(f"{where}.final: {self.final} must lie in [0, peak={self.peak}]")


@dataclass
class StageConfig:
    name: str
    """Stage name (stable, anneal, ...); a Snakemake rule chain per stage."""
    seq_len: int
    """Tokens per training sequence."""
    batch_size: int
    """Sequences per optimizer step, over all data-parallel ranks (= micro batch x ranks x accumulation)."""
    mixture: dict[str, float]
    """Sampling weight per language (normalised); languages must have data sources."""
    steps: int | None = None
    """Optimizer steps in this stage; give `steps` or `tokens`, not both."""
    tokens: int | None = None
    """Training tokens in this stage, rounded up to whole steps of batch_size x seq_len tokens."""
    lr: LRSegment = field(default_factory=LRSegment)
    """This stage's learning-rate segment."""
    resume_changes: list[str] = field(default_factory=list)
    """Keys (batch_size, seq_len, mixture, lr, steps, tokens) a resume of this stage may find changed
    from its run state; any other change is refused (see tessera.train.resume_policy)."""

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def num_steps(self) -> int:
        """Optimizer steps of the stage, from `steps` or from `tokens`."""
        if self.steps is not None:
            return self.steps
        assert self.tokens is not None  # noqa: S101 check() guarantees one of them
        return math.ceil(self.tokens / self.tokens_per_step)

    def check(self, where: str) -> None:
        check_name(self.name, f"{where}.name")
        if (self.steps is None) == (self.tokens is None):
            raise ConfigError(f"{where}: give exactly one of steps or tokens (the stage's length)")
        if self.steps is not None and self.steps <= 0:
            raise ConfigError(f"{where}.steps: {self.steps} must be positive")
        if self.tokens is not None and self.tokens <= 0:
            raise ConfigError(f"{where}.tokens: {self.tokens} must be positive")
        if self.seq_len <= 0 or self.batch_size <= 0:
            raise ConfigError(
                f"{where}: seq_len ({self.seq_len}) and batch_size ({self.batch_size}) must be positive"
            )
        if not self.mixture or any(w < 0 for w in self.mixture.values()) or sum(self.mixture.values()) <= 0:
            raise ConfigError(f"{where}.mixture: give non-negative weights per language with a positive sum")
        unknown = [k for k in self.resume_changes if k not in RESUMABLE_KEYS]
        if unknown:
            raise ConfigError(
                f"{where}.resume_changes: {', '.join(unknown)} cannot be allowed; give some of "
                f"{', '.join(RESUMABLE_KEYS)} (the model shape never changes in a resume)"
            )
        decay_steps = self.lr.decay_steps or 0
        if self.lr.warmup_steps + decay_steps > self.num_steps:
            raise ConfigError(
                f"{where}.lr: warmup_steps ({self.lr.warmup_steps}) + decay_steps ({decay_steps}) exceed the "
                f"stage's {self.num_steps} steps"
            )


@dataclass
class TrainConfig:
    stages: list[StageConfig] = field(default_factory=list)
    """Stages in order; each starts from the previous one's final state."""
    micro_batch_size: int = 4
    """Sequences per rank per forward/backward; gradient accumulation makes up the stage's batch_size."""
    zero_stage: Literal[0, 1, 2] = 2
    """DeepSpeed ZeRO stage over the data-parallel ranks: 0 replicates optimizer state (plain data
    parallelism: fastest while it fits), 1 shards optimizer state, 2 also gradients. A single rank runs
    stage 0 whatever is set: there is nothing to shard. (3 does not support DeepSpeed MoE groups.)"""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """'auto' = bf16 on CUDA GPUs that support it, fp32 elsewhere (CPU bf16 matmuls are slow)."""
    expert_parallel_size: int = 1
    """Ranks the routed experts of each MoE layer are sharded over (all-to-all); divides the world size."""
    activation_checkpointing: bool = False
    """Recompute each transformer block in the backward pass to save activation memory."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 = no clipping)."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay (not applied to norms, biases and embeddings)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    checkpoint_every: int = 50
    """Publish a consolidated checkpoint (and end the training job's segment) every N steps."""
    save_state_every: int = 10
    """Save the resumable run state every N steps (also at every published checkpoint and on signals)."""
    keep_states: int = 2
    """Run states kept per stage (older ones are deleted once a newer one is complete)."""
    max_nonfinite_steps: int = 3
    """Stop with an error after this many consecutive steps with a non-finite loss (each is skipped)."""
    log_every: int = 10
    """Print a progress line with ETA every N steps (every step goes to metrics.jsonl)."""
    tensorboard: bool = False
    """Also write TensorBoard event files to state/<stage>/tensorboard."""
    local_processes: int = 1
    """Ranks torchrun starts when the workflow runs without SLURM (gloo on CPU)."""
    num_threads: int | None = None
    """torch threads per rank (null = cores / local ranks); fixed threads make CPU runs repeatable."""

    def check(self, where: str) -> None:
        names = [s.name for s in self.stages]
        if not names:
            raise ConfigError(f"{where}.stages: list at least one stage")
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.stages: stage names must be unique, got {names}")
        positive = ("micro_batch_size", "expert_parallel_size", "checkpoint_every", "save_state_every",
                    "keep_states", "max_nonfinite_steps", "log_every", "local_processes")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)} must be positive")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError(f"{where}: grad_clip and weight_decay must be >= 0")
        if not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(
                f"{where}.betas: {list(self.betas)}: AdamW's betas lie in [0, 1), e.g. [0.9, 0.95]"
            )
        if self.eps <= 0:
            raise ConfigError(f"{where}.eps: {self.eps} must be positive, e.g. 1e-8")
        if self.num_threads is not None and self.num_threads <= 0:
            raise ConfigError(f"{where}.num_threads: {self.num_threads} must be positive or null")
        for stage in self.stages:
            if stage.batch_size % self.micro_batch_size:
                raise ConfigError(
                    f"{where}.stages[{stage.name}].batch_size: {stage.batch_size} is not a multiple of "
                    f"{where}.micro_batch_size ({self.micro_batch_size})"
                )

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        names = ", ".join(s.name for s in self.stages)
        raise ConfigError(f"train.stages: no stage named {name!r}; stages: {names}")

    def previous_stage(self, name: str) -> StageConfig | None:
        index = [s.name for s in self.stages].index(self.stage(name).name)
        return self.stages[index - 1] if index > 0 else None
