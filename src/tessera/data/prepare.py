"""`tessera data prepare`: sources -> cleaned, filtered, deduplicated, split shards + manifest.json.

Per language (config order), each source's documents stream through:
    NFC -> control characters -> Gutenberg boilerplate -> quality -> language id -> PII -> exact dedup
    -> near dedup -> split (hash of unit key + seed) -> shard
and every step counts what it did into the source's manifest entry. The per-document steps (up to the
dedup fingerprints) run in `workers` processes; dedup decisions, splitting and writing stay in this one,
in document order, so the output does not depend on the number of workers. Everything is written into a
temporary folder that replaces `data/` only when all of it succeeded, so a bad source leaves no partial
output behind; and all sources are checked to exist before any document is read.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from tessera.config import RunConfig
from tessera.data.config import FilterConfig, SourceConfig
from tessera.data.dedup import Deduplicator, Sketcher
from tessera.data.filters import normalize_nfc, quality_failure, strip_control_chars, strip_gutenberg
from tessera.data.langid import other_language
from tessera.data.manifest import SourceStats, build_manifest, file_digest
from tessera.data.pii import redact_pii
from tessera.data.shards import ShardWriter, record
from tessera.data.sources import RawDocument, input_files, read_documents
from tessera.data.split import assign_split, split_key
from tessera.io import atomic_dir, write_json
from tessera.layout import SPLITS, RunLayout

__all__ = ["prepare_data", "prepare_into", "PrepareResult", "DocumentFilter"]

BATCH_DOCUMENTS = 64
"""Documents per task sent to a worker: large enough to amortise inter-process overhead, small enough
that the batches in flight (two per worker) stay small in memory."""


@dataclass
class PrepareResult:
    """What a prepare run did: the manifest written, and seconds spent per step (for bench/)."""

    manifest: dict
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - start


def _describe_inputs(cfg: RunConfig, source: SourceConfig) -> list[dict]:
    """Input files with size and sha256; the configured spelling for a single `pkg://` file (portable)."""
    files = input_files(cfg, source)
    entries = []
    single_package_file = len(files) == 1 and (source.path or "").startswith("pkg://")
    for file in files:
        shown = source.path if single_package_file else str(file)
        entries.append({"path": shown, "bytes": file.stat().st_size, "sha256": file_digest(file)})
    return entries


@dataclass
class Outcome:
    """What the per-document filters made of one document (computed in a worker process)."""

    key: str
    unit: str | None
    bytes_in: int
    text: str = ""
    """The cleaned, redacted text; empty when the document was dropped."""
    dropped: str | None = None
    """Drop reason (a manifest `dropped` key) of the filters before dedup; None if it passed them."""
    other_language: str | None = None
    cleaned: tuple[str, ...] = ()
    """Clean-up counters (manifest `cleanup` keys) that changed this document."""
    redactions: dict[str, int] = field(default_factory=dict)
    digest: bytes = b""
    signature: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class DocumentFilter:
    """Clean-up, quality, language id, PII redaction and dedup fingerprints of one document at a time.

    Everything here depends only on the document, so it runs in parallel; what depends on earlier
    documents (dedup decisions) and the output order stay in the main process.
    """

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self.sketcher = Sketcher(cfg)

    def __call__(self, document: RawDocument, language: str) -> Outcome:
        out = Outcome(key=document.key, unit=document.unit, bytes_in=len(document.text.encode()))
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            out.seconds[step] = out.seconds.get(step, 0.0) + now - clock
            clock = now

        cleaned = []
        text = normalize_nfc(document.text)
        if text != document.text:
            cleaned.append("nfc_changed")
        lap("nfc")
        stripped = strip_control_chars(text)
        if stripped != text:
            cleaned.append("control_chars_removed")
        lap("control_chars")
        text = strip_gutenberg(stripped)
        if text != stripped:
            cleaned.append("gutenberg_boilerplate_removed")
        lap("gutenberg")
        out.cleaned = tuple(cleaned)
        # Whitespace at the ends carries nothing, and must not make copies look different to dedup.
        text = text.strip()
        if not text:
            out.dropped = "empty"
            return out
        failure = quality_failure(text, self.cfg)
        lap("quality")
        if failure:
            out.dropped = f"quality_{failure}"
            return out
        if self.cfg.language_id:
            identified = other_language(text, language, self.cfg.min_language_confidence)
            lap("language_id")
            if identified:
                out.dropped, out.other_language = "language", identified
                return out
        if self.cfg.redact_pii:
            text, out.redactions = redact_pii(text)
            lap("pii")
        out.text = text
        if self.cfg.dedup_exact:
            out.digest = self.sketcher.digest(text)
            lap("dedup_exact")
        if self.cfg.dedup_near:
            out.signature = self.sketcher.signature(text)
            lap("minhash")
        return out


# Each worker process builds its DocumentFilter once (the executor's initializer), then filters batches.
_WORKER_FILTER: DocumentFilter | None = None


def _init_worker(cfg: FilterConfig) -> None:
    global _WORKER_FILTER
    _WORKER_FILTER = DocumentFilter(cfg)


def _filter_batch(batch: tuple[str, list[RawDocument]]) -> list[Outcome]:
    language, documents = batch
    assert _WORKER_FILTER is not None  # noqa: S101 set by _init_worker: narrows the type, no user input
    return [_WORKER_FILTER(document, language) for document in documents]


def _batches(documents: Iterator[RawDocument], language: str, read_seconds: list[float]
             ) -> Iterator[tuple[str, list[RawDocument]]]:
    while True:
        start = time.perf_counter()
        batch = list(islice(documents, BATCH_DOCUMENTS))
        read_seconds[0] += time.perf_counter() - start
        if not batch:
            return
        yield language, batch


@dataclass
class _Workers:
    pool: ProcessPoolExecutor
    max_in_flight: int
    """Batches submitted ahead of the one being consumed: keeps every worker busy, memory bounded."""


def _outcomes(cfg: RunConfig, source: SourceConfig, workers: _Workers | None, result: PrepareResult
              ) -> Iterator[Outcome]:
    """The source's documents through the per-document filters, in source order (whatever the pool).

    Reading stays in this thread (so its DataError surfaces here) and runs at most `max_in_flight`
    batches ahead of the consumer (mapping a whole source at once would read it all into memory)."""
    read_seconds = [0.0]
    batches = _batches(read_documents(cfg, source), source.language, read_seconds)
    if workers is None:
        in_process = DocumentFilter(cfg.data.filters)
        for language, documents in batches:
            yield from (in_process(document, language) for document in documents)
    else:
        pending: deque[Future] = deque()
        for batch in batches:
            pending.append(workers.pool.submit(_filter_batch, batch))
            if len(pending) >= workers.max_in_flight:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    result.seconds["read"] += read_seconds[0]


def _process_source(cfg: RunConfig, source: SourceConfig, workers: _Workers | None, dedup: Deduplicator,
                    writers: dict[str, ShardWriter], stats: SourceStats, result: PrepareResult) -> None:
    for outcome in _outcomes(cfg, source, workers, result):
        for step, seconds in outcome.seconds.items():
            result.seconds[step] += seconds
        stats.documents_in += 1
        stats.bytes_in += outcome.bytes_in
        for name in outcome.cleaned:
            stats.cleanup[name] += 1
        if outcome.dropped:
            stats.dropped[outcome.dropped] += 1
            if outcome.other_language:
                counts = stats.dropped_language_as
                counts[outcome.other_language] = counts.get(outcome.other_language, 0) + 1
            continue
        with result.timed("dedup_decide"):
            if dedup.is_exact_duplicate(outcome.digest):
                stats.dropped["exact_duplicate"] += 1
                continue
            if outcome.signature is not None and dedup.is_near_duplicate(outcome.signature):
                stats.dropped["near_duplicate"] += 1
                continue
        with result.timed("write"):
            doc_id = f"{source.name}/{outcome.key}"
            split = assign_split(split_key(doc_id, outcome.unit), cfg.run.seed, cfg.data.splits)
            writers[split].write(record(doc_id, source.name, source.language, outcome.unit, outcome.text))
            stats.kept(split, len(outcome.text.encode()))
            # Counted for kept documents only: the manifest describes what is in the shards.
            for kind, count in outcome.redactions.items():
                stats.pii_redactions[kind] += count


def prepare_into(cfg: RunConfig, data_dir: Path, workers: int = 1) -> PrepareResult:
    """Write every language's split shards and manifest.json into `data_dir` (an empty folder).

    With workers > 1 the per-document filters run in that many processes; the output is the same
    bytes whatever the number, because decisions that depend on order stay in this process.
    """
    result = PrepareResult(manifest={})
    # Hash and check every input first: a missing file fails fast, before minutes of filtering.
    with result.timed("hash_inputs"):
        stats = {s.name: SourceStats(inputs=_describe_inputs(cfg, s)) for s in cfg.data.sources}
    # spawn, not fork: the energy meter's sampling thread may be running in this process. An executor,
    # not multiprocessing.Pool: a worker that dies fails the run instead of being respawned forever.
    pool_context = ProcessPoolExecutor(workers, get_context("spawn"), _init_worker, (cfg.data.filters,)) \
        if workers > 1 else nullcontext(None)
    with pool_context as pool:
        pool_workers = _Workers(pool, max_in_flight=2 * workers) if pool is not None else None
        _prepare_languages(cfg, data_dir, pool_workers, stats, result)
    result.manifest = build_manifest(cfg, stats)
    write_json(data_dir / "manifest.json", result.manifest)
    return result


def _prepare_languages(cfg: RunConfig, data_dir: Path, workers: _Workers | None,
                       stats: dict[str, SourceStats], result: PrepareResult) -> None:
    for lang in cfg.data.languages:
        (data_dir / lang).mkdir(parents=True, exist_ok=True)
        dedup = Deduplicator(cfg.data.filters)
        writers = {split: ShardWriter(data_dir / lang / f"{split}.jsonl.zst", cfg.data.zstd_level)
                   for split in SPLITS}
        try:
            for source in cfg.data.sources:
                if source.language == lang:
                    _process_source(cfg, source, workers, dedup, writers, stats[source.name], result)
        finally:
            for writer in writers.values():
                writer.close()


def prepare_data(cfg: RunConfig, workers: int = 1) -> None:
    """The `tessera data prepare` verb: replace `<run>/data/` with freshly prepared shards, atomically."""
    layout = RunLayout(cfg.out_dir)
    with atomic_dir(layout.data_dir) as staging:
        result = prepare_into(cfg, staging, workers)
    for name, source in result.manifest["sources"].items():
        dropped = ", ".join(f"{reason} {n}" for reason, n in source["dropped"].items() if n) or "none"
        redacted = ", ".join(f"{kind} {n}" for kind, n in source["pii_redactions"].items() if n) or "none"
        print(f"{name} ({source['language']}): {source['documents_in']} in, {source['documents_out']} out; "
              f"dropped: {dropped}; PII redacted: {redacted}")
    totals = result.manifest["totals"]
    print(f"data: {totals['documents_in']} documents in, {totals['documents_out']} out "
          f"({totals['bytes_out'] / 1e6:.1f} MB) for {', '.join(cfg.data.languages)} -> {layout.data_dir}")
