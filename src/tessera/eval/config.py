"""The `eval:` section: what each checkpoint is scored on, and how hard the scorer may work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tessera.errors import ConfigError

__all__ = ["EvalConfig"]


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=list)
    """lm-eval task names: tessera's local tasks (`tessera_xcopa_it`, `tessera_belebele_ita`, ...; see
    `tessera.eval.tasks.LOCAL_TASKS`) or upstream ones (`xcopa_it`, `arc_it`, ...), which need the
    `cache_eval_datasets` rule to have run on a node with internet access."""
    task_data_dir: Path | None = None
    """Folder with xcopa/ and belebele/ JSONL files for the local tasks; absent -> those tasks are skipped
    (noted in the result's "skipped"). A relative path resolves against the working directory."""
    limit: int | None = None
    """At most this many examples per lm-eval task (null = all); a quick look, not a publishable score."""
    num_fewshot: int = 0
    """In-context examples per lm-eval question."""
    batch_size: int = 8
    """Sequences per forward pass, for both the intrinsic scorer and lm-eval."""
    context_length: int | None = None
    """Tokens per scoring window for bits per byte; null = the model's maximum sequence length."""
    max_tokens_per_language: int | None = None
    """Score at most this many test tokens per language (whole documents, in file order); null = all."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the model runs; auto = the job's GPU when there is one."""
    hf_home: Path | None = None
    """Hugging Face cache for upstream task datasets (filled by `cache_eval_datasets` on the login node,
    read offline by compute jobs); null = `<results_dir>/<run>/eval/hf_cache`."""

    def check(self, where: str) -> None:
        for name, value in (("limit", self.limit), ("context_length", self.context_length),
                            ("max_tokens_per_language", self.max_tokens_per_language)):
            if value is not None and value <= 0:
                raise ConfigError(f"{where}.{name}: {value} must be a positive integer or null")
        if self.batch_size <= 0:
            raise ConfigError(f"{where}.batch_size: {self.batch_size} must be a positive integer")
        if self.num_fewshot < 0:
            raise ConfigError(f"{where}.num_fewshot: {self.num_fewshot} must be 0 or more")
        duplicates = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if duplicates:
            raise ConfigError(f"{where}.tasks: {', '.join(duplicates)} listed more than once")
        # tessera's own tasks are known here; an upstream name is checked by lm-eval in the job (its task
        # index takes seconds to build), and one it does not know is listed in the result's `skipped`.
        from tessera.eval.tasks import local_tasks

        local = local_tasks()
        unknown = [t for t in self.tasks if t.startswith("tessera_") and t not in local]
        if unknown:
            raise ConfigError(
                f"{where}.tasks: {', '.join(unknown)} is not one of tessera's tasks; they are "
                f"{', '.join(local)}"
            )
