"""What a dry run can know: the checks a job would otherwise fail on, run once before any job starts.

The workflow (workflow/rules/common.smk) calls `check_run` while Snakemake parses it, with the number of
training ranks the launcher will start; the jobs call the same functions (`engine_spec`, the trainer,
evaluation), so a config that passes here cannot fail there for these reasons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tessera.errors import ConfigError

if TYPE_CHECKING:
    from tessera.config import RunConfig
    from tessera.eval.config import EvalConfig
    from tessera.model.config import ModelConfig
    from tessera.train.config import StageConfig, TrainConfig

__all__ = ["accumulation_steps", "check_stage_fits", "check_eval_context", "check_run"]


def accumulation_steps(train: TrainConfig, stage: StageConfig, world_size: int) -> int:
    """Micro-batches per rank per optimizer step: the stage's batch over micro batch x ranks."""
    per_step = train.micro_batch_size * world_size
    if stage.batch_size % per_step:
        raise ConfigError(
            f"train.stages[{stage.name}].batch_size: {stage.batch_size} is not a multiple of "
            f"train.micro_batch_size ({train.micro_batch_size}) x {world_size} ranks = {per_step}; "
            "change the batch size or the micro batch size"
        )
    return stage.batch_size // per_step


def check_stage_fits(train: TrainConfig, stage: StageConfig, model: ModelConfig, world_size: int) -> None:
    """The stage's sequences fit the model, and its experts split evenly over the expert-parallel ranks."""
    if stage.seq_len > model.max_seq_len:
        raise ConfigError(
            f"train.stages[{stage.name}].seq_len: {stage.seq_len} exceeds the model's max_seq_len "
            f"({model.max_seq_len}); raise model.overrides.max_seq_len or shorten the stage"
        )
    ep = train.expert_parallel_size
    if world_size % ep:
        raise ConfigError(
            f"train.expert_parallel_size: {ep} does not divide the {world_size} training ranks; use a "
            "divisor of the ranks (train.local_processes, or the profile's nodes x tasks_per_node)"
        )
    if model.moe.num_experts % ep:
        raise ConfigError(
            f"train.expert_parallel_size: {ep} does not divide the model's {model.moe.num_experts} experts "
            "(model.overrides.moe.num_experts); use a divisor of both"
        )


def check_eval_context(evaluation: EvalConfig, model: ModelConfig) -> int:
    """The context length evaluation scores with: eval.context_length, at most the model's maximum."""
    context_length = evaluation.context_length or model.max_seq_len
    if context_length > model.max_seq_len:
        raise ConfigError(
            f"eval.context_length: {context_length} exceeds the model's max_seq_len "
            f"({model.max_seq_len}); set it to at most that, or null to use it"
        )
    return context_length


def check_run(cfg: RunConfig, world_size: int) -> None:
    """Every check above, for every stage, with `world_size` training ranks."""
    from tessera.model.config import PRESETS, build_model_config

    if world_size < 1:
        raise ConfigError(f"{world_size} training ranks: the launcher must start at least one")
    # The vocabulary comes from the tokenizer, which may not exist yet; nothing here depends on it.
    model = build_model_config(cfg.model, PRESETS[cfg.model.preset].vocab_size)
    for stage in cfg.train.stages:
        accumulation_steps(cfg.train, stage, world_size)
        check_stage_fits(cfg.train, stage, model, world_size)
    check_eval_context(cfg.eval, model)
