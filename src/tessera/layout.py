"""Where every artefact of a run lives: the one map shared by the Snakefile and the `tessera` verbs.

    results/<run>/
      data/<lang>/<split>/<part>.jsonl.zst, data/manifest.json   one file per prepare shard and split
      data-work/<lang>/<part>/        a shard's filtered candidates and dedup keys (see tessera.data.scatter)
      data-work/<lang>/pairs-<g>.npy, removed.npy    duplicate pairs per band group, the removal list
      tokenizer/tokenizer.json, tokenizer_config.json
      tokens/<lang>/<split>.json      index of the split's token shards (the loader's stem)
      tokens/<lang>/<split>/<part>.bin|.idx|.json    one token file set per shard
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


def _number(value: int | str, digits: int) -> str:
    """A shard or group number zero-padded; a string (a Snakemake wildcard such as "{part}") as it is."""
    return value if isinstance(value, str) else f"{value:0{digits}d}"


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run's artefacts, all under `root` (= `<results_dir>/<run name>`)."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def shard(self, lang: str, split: str, part: int | str) -> Path:
        """Documents of one split from prepare shard `part` of the language (0-based, in plan order)."""
        return self.data_dir / lang / split / f"{_number(part, 5)}.jsonl.zst"

    @property
    def data_work_dir(self) -> Path:
        return self.root / "data-work"

    def shard_work(self, lang: str, part: int | str) -> Path:
        """A prepare shard's intermediate files: candidates, signatures, dedup keys, counts."""
        return self.data_work_dir / lang / _number(part, 5)

    def dedup_pairs(self, lang: str, group: int | str) -> Path:
        """Duplicate pairs found in one group of LSH bands (and exact digests) of a language."""
        return self.data_work_dir / lang / f"pairs-{_number(group, 3)}.npy"

    def dedup_removed(self, lang: str) -> Path:
        """The language's removal list: (document number, reason), sorted by document number."""
        return self.data_work_dir / lang / "removed.npy"

    def shard_counts(self, lang: str, part: int | str) -> Path:
        """What the write step of shard `part` kept, per split, and what dedup removed."""
        return self.data_work_dir / lang / f"{_number(part, 5)}-written.json"

    @property
    def manifest(self) -> Path:
        return self.data_dir / "manifest.json"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    def tokens(self, lang: str, split: str) -> Path:
        """Stem the loader opens: `<stem>.json` indexes the split's token shards (or, written by hand,
        describes a single `.bin`/`.idx` set; see tessera.data.tokens)."""
        return self.root / "tokens" / lang / split

    def token_index(self, lang: str, split: str) -> Path:
        """The split's token index (`tokens(lang, split)` + .json): the file that says it is complete."""
        return self.root / "tokens" / lang / f"{split}.json"

    def token_shard(self, lang: str, split: str, part: int | str) -> Path:
        """Stem of one shard's token file set: `.bin` (tokens), `.idx` (document offsets), `.json`."""
        return self.root / "tokens" / lang / split / _number(part, 5)

    def token_file(self, lang: str, split: str, part: int | str, suffix: str) -> Path:
        """One file of a shard's token file set; `suffix` is one of TOKEN_SUFFIXES."""
        return self.token_shard(lang, split, part).with_suffix(suffix)

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
