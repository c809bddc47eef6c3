"""`tessera data prepare`: every stage of tessera.data.scatter in one process (a pool for the shards).

The same stage functions the workflow runs as separate jobs (workflow/rules/data.smk), in the same
order, so the output is the same bytes whether the stage ran as one command, as Snakemake jobs, with
any number of workers. Here everything is written under a staging folder that replaces `data/` only
when all of it succeeded, so a bad source leaves no partial output behind; and all sources are checked
to exist before any document is read.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tessera.config import RunConfig
from tessera.data.plan import shard_plan
from tessera.data.scatter import filter_shard, find_pairs, find_removals, write_manifest, write_shard
from tessera.data.sources import input_files
from tessera.layout import RunLayout

__all__ = ["prepare_data", "prepare_into", "PrepareResult", "print_summary"]


@dataclass
class PrepareResult:
    """What a prepare run did: the manifest written, and seconds per stage (for bench/)."""

    manifest: dict
    seconds: dict[str, float] = field(default_factory=dict)


def _each(pool: ProcessPoolExecutor | None, function: Callable, calls: Iterable[tuple]) -> None:
    """Run function(*args) for every args, in the pool when there is one; the first error re-raises."""
    calls = list(calls)
    if pool is None:
        for args in calls:
            function(*args)
        return
    for future in [pool.submit(function, *args) for args in calls]:
        future.result()


def prepare_into(cfg: RunConfig, layout: RunLayout, workers: int = 1) -> PrepareResult:
    """Run every data stage into `layout` (data/ and data-work/); shards and bands in `workers` processes."""
    result = PrepareResult(manifest={})
    for source in cfg.data.sources:  # a missing file fails fast, before minutes of filtering
        input_files(cfg, source)
    plan = shard_plan(cfg)
    languages = cfg.data.languages
    # spawn, not fork: the energy meter's sampling thread may be running in this process. An executor,
    # not multiprocessing.Pool: a worker that dies fails the run instead of being respawned forever.
    pool = ProcessPoolExecutor(workers, get_context("spawn")) if workers > 1 else None
    try:
        stages: list[tuple[str, Callable, list[tuple[Any, ...]]]] = [
            ("filter", filter_shard, [(cfg, spec, layout) for spec in plan]),
            ("pairs", find_pairs, [(cfg, lang, g, layout) for lang in languages
                                   for g in range(cfg.data.num_dedup_jobs)]),
            ("removals", find_removals, [(cfg, lang, layout) for lang in languages]),
            ("write", write_shard, [(cfg, spec, layout) for spec in plan]),
        ]
        for name, function, calls in stages:
            start = time.perf_counter()
            _each(pool, function, calls)
            result.seconds[name] = time.perf_counter() - start
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    start = time.perf_counter()
    result.manifest = write_manifest(cfg, layout)
    result.seconds["manifest"] = time.perf_counter() - start
    return result


def prepare_data(cfg: RunConfig, workers: int = 1) -> PrepareResult:
    """Replace `<run>/data/` with freshly prepared shards, atomically (the intermediate files go)."""
    layout = RunLayout(cfg.out_dir)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".prepare.", suffix=".tmp", dir=cfg.out_dir))
    try:
        result = prepare_into(cfg, RunLayout(staging), workers)
        if layout.data_dir.exists():
            shutil.rmtree(layout.data_dir)
        (staging / "data").replace(layout.data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print_summary(cfg, result.manifest, layout.data_dir)
    return result


def print_summary(cfg: RunConfig, manifest: dict, data_dir: Path) -> None:
    for name, source in manifest["sources"].items():
        dropped = ", ".join(f"{reason} {n}" for reason, n in source["dropped"].items() if n) or "none"
        redacted = ", ".join(f"{kind} {n}" for kind, n in source["pii_redactions"].items() if n) or "none"
        print(f"{name} ({source['language']}): {source['documents_in']} in, {source['documents_out']} out; "
              f"dropped: {dropped}; PII redacted: {redacted}")
    totals = manifest["totals"]
    print(f"data: {totals['documents_in']} documents in, {totals['documents_out']} out "
          f"({totals['bytes_out'] / 1e6:.1f} MB) for {', '.join(cfg.data.languages)} -> {data_dir}")
