"""Where every artefact of a run lives: the one map shared by the Snakefile and the `tessera` verbs.

    results/<run>/
      data/<lang>/<split>.jsonl.zst, data/manifest.json
      tokenizer/tokenizer.json, tokenizer_config.json
      tokens/<lang>/<split>.bin|.idx|.json
      train/<stage>/step-<NNNNNN>/    published checkpoints (safetensors, tessera.json, tokenizer, metrics)
      state/<stage>/                  resumable engine state: not a Snakemake output, survives failed jobs
      eval/<stage>/step-<NNNNNN>.json
      energy/<job>.jsonl              one energy log per job (see tessera.energy)
      benchmarks/<job>.tsv            Snakemake's benchmark: files
      logs/<job>.log                  every job's output (job names: `job_name`)
      reports/                        tokenizer, eval and energy reports (md, csv, png)
      plan/                           tessera plan (plan.md, plan.json, overlay.yaml), calibration.json
      release/                        the Hugging Face model, model card and AI Act documents
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout", "SPLITS", "TOKEN_SUFFIXES", "checkpoint_steps", "job_name"]

SPLITS = ("train", "validation", "test")
TOKEN_SUFFIXES = (".bin", ".idx", ".json")
"""A token file set: tokens, document offsets, metadata."""


def job_name(rule: str, *parts: str | int) -> str:
    """A job's name in logs/, benchmarks/ and energy/: the rule, then its wildcards (e.g. a stage and a
    zero-padded step), joined by '-'. Parts may be Snakemake patterns such as "{lang}"."""
    return "-".join([rule, *(_step(p) if isinstance(p, int) else p for p in parts)])


def _step(step: int | str) -> str:
    """A step number zero-padded to six digits; a string (a Snakemake wildcard pattern) as it is."""
    return f"{step:06d}" if isinstance(step, int) else step


def checkpoint_steps(stage_steps: int, every: int) -> list[int]:
    """Steps at which a stage publishes a checkpoint: every `every` steps, and always its last step.

    Each published checkpoint ends one training job (a segment), so evaluation of step k runs while
    the segment that leads to the next checkpoint trains.
    """
    if stage_steps <= 0 or every <= 0:
        raise ValueError(f"stage_steps ({stage_steps}) and every ({every}) must be positive")
    steps = list(range(every, stage_steps, every))
    return steps + [stage_steps]


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run's artefacts, all under `root` (= `<results_dir>/<run name>`)."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def shard(self, lang: str, split: str) -> Path:
        return self.data_dir / lang / f"{split}.jsonl.zst"

    @property
    def manifest(self) -> Path:
        return self.data_dir / "manifest.json"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    def tokens(self, lang: str, split: str) -> Path:
        """Stem of a token file set: `.bin` (tokens), `.idx` (document offsets), `.json` (metadata)."""
        return self.root / "tokens" / lang / split

    def token_file(self, lang: str, split: str, suffix: str) -> Path:
        """One file of a token file set; `suffix` is one of TOKEN_SUFFIXES."""
        return self.tokens(lang, split).with_suffix(suffix)

    def checkpoint(self, stage: str, step: int | str) -> Path:
        """A published checkpoint; `step` an int, or a Snakemake pattern ("{step}") in rules."""
        return self.root / "train" / stage / f"step-{_step(step)}"

    def state_dir(self, stage: str) -> Path:
        return self.root / "state" / stage

    def eval_result(self, stage: str, step: int | str) -> Path:
        return self.root / "eval" / stage / f"step-{_step(step)}.json"

    @property
    def energy_dir(self) -> Path:
        return self.root / "energy"

    def energy_log(self, job: str) -> Path:
        """The energy meter's JSONL of one job (see `job_name`); the energy report joins them all."""
        return self.energy_dir / f"{job}.jsonl"

    @property
    def benchmarks_dir(self) -> Path:
        return self.root / "benchmarks"

    def benchmark(self, job: str) -> Path:
        """Snakemake's `benchmark:` file of one job."""
        return self.benchmarks_dir / f"{job}.tsv"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log(self, job: str) -> Path:
        """The stdout and stderr of one job."""
        return self.logs_dir / f"{job}.log"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def report(self, name: str) -> Path:
        return self.reports_dir / name

    @property
    def release_dir(self) -> Path:
        return self.root / "release"

    @property
    def plan_dir(self) -> Path:
        """`tessera plan`'s plan.{md,json} and overlay.yaml, and `tessera calibrate`'s calibration.json."""
        return self.root / "plan"

    @property
    def calibration(self) -> Path:
        return self.plan_dir / "calibration.json"
