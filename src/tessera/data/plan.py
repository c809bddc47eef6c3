"""The shard plan: which slice of which source each `prepare_shard` job reads, fixed by the config alone.

Shards are numbered per language (`part`, 0-based) in config order of the sources, then slice order, so
a language's parts list its documents in source order. Every document also gets a global number
    doc = shard_number << 32 | position among the shard's candidates
where `shard_number` counts shards over all languages in plan order: sorting by it is sorting by
(source order, document order), which makes "the first copy survives" a rule on numbers, the same for
any number of shards or jobs. The Snakefile expands its rules over this plan at parse time, so the DAG
(and a dry run) shows every job before any source is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tessera.config import RunConfig
from tessera.data.config import SourceConfig
from tessera.errors import DataError
from tessera.layout import RunLayout

__all__ = ["ShardSpec", "shard_plan", "language_parts", "find_shard", "split_shards", "DOC_SHIFT"]

DOC_SHIFT = 32
"""Bits of a document number that hold its position in the shard (up to 4e9 documents per shard)."""


@dataclass(frozen=True)
class ShardSpec:
    """One prepare shard: slice `index` of `num_slices` of `source`, part `part` of its language."""

    language: str
    part: int
    source: SourceConfig
    index: int
    number: int
    """Position in the whole plan: the high bits of the shard's document numbers."""

    @property
    def num_slices(self) -> int:
        return self.source.num_shards

    @property
    def first_doc(self) -> int:
        return self.number << DOC_SHIFT


def shard_plan(cfg: RunConfig) -> list[ShardSpec]:
    """Every prepare shard: languages in config order, their sources in config order, slices in order."""
    plan: list[ShardSpec] = []
    for lang in cfg.data.languages:
        part = 0
        for source in cfg.data.sources:
            if source.language != lang:
                continue
            for index in range(source.num_shards):
                plan.append(ShardSpec(lang, part, source, index, len(plan)))
                part += 1
    return plan


def language_parts(cfg: RunConfig, lang: str) -> list[ShardSpec]:
    """The shards of one language, in part order."""
    return [spec for spec in shard_plan(cfg) if spec.language == lang]


def find_shard(cfg: RunConfig, lang: str, part: int) -> ShardSpec:
    """The shard `part` of `lang`, or a DataError naming the parts there are."""
    parts = language_parts(cfg, lang)
    if not 0 <= part < len(parts):
        have = f"shards 0 to {len(parts) - 1} (data.sources[].num_shards)" if parts else "no data source"
        raise DataError(f"language {lang!r} has no shard {part}: it has {have}")
    return parts[part]


def split_shards(cfg: RunConfig, lang: str, split: str) -> list[Path]:
    """The prepared files of one language/split, in document order (what the tokenizer reads)."""
    layout = RunLayout(cfg.out_dir)
    return [layout.shard(lang, split, spec.part) for spec in language_parts(cfg, lang)]
