"""`tessera data prepare`: sources -> cleaned, filtered, deduplicated, split shards + manifest.json.

Per language (config order), each source's documents stream through:
    NFC -> control characters -> Gutenberg boilerplate -> quality -> language id -> PII -> exact dedup
    -> near dedup -> split (hash of unit key + seed) -> shard
and every step counts what it did into the source's manifest entry. Everything is written into a
temporary folder that replaces `data/` only when all of it succeeded, so a bad source leaves no partial
output behind; and all sources are checked to exist before any document is read.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tessera.config import RunConfig
from tessera.data.config import SourceConfig
from tessera.data.dedup import Deduplicator
from tessera.data.filters import normalize_nfc, quality_failure, strip_control_chars, strip_gutenberg
from tessera.data.langid import identify
from tessera.data.manifest import SourceStats, build_manifest, file_digest
from tessera.data.pii import redact_pii
from tessera.data.shards import ShardWriter, record
from tessera.data.sources import RawDocument, input_files, read_documents
from tessera.data.split import assign_split, split_key
from tessera.io import atomic_dir, write_json
from tessera.layout import SPLITS, RunLayout

__all__ = ["prepare_data", "prepare_into", "PrepareResult"]


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


def _process_source(cfg: RunConfig, source: SourceConfig, dedup: Deduplicator,
                    writers: dict[str, ShardWriter], stats: SourceStats, result: PrepareResult) -> None:
    filters = cfg.data.filters
    documents = read_documents(cfg, source)
    while True:
        with result.timed("read"):
            document: RawDocument | None = next(documents, None)
        if document is None:
            return
        stats.documents_in += 1
        stats.bytes_in += len(document.text.encode())
        text = document.text
        with result.timed("nfc"):
            normalized = normalize_nfc(text)
            stats.cleanup["nfc_changed"] += normalized != text
        with result.timed("control_chars"):
            text = strip_control_chars(normalized)
            stats.cleanup["control_chars_removed"] += text != normalized
        with result.timed("gutenberg"):
            stripped = strip_gutenberg(text)
            stats.cleanup["gutenberg_boilerplate_removed"] += stripped != text
        # Whitespace at the ends carries nothing, and must not make copies look different to dedup.
        text = stripped.strip()
        if not text:
            stats.dropped["empty"] += 1
            continue
        with result.timed("quality"):
            failure = quality_failure(text, filters)
        if failure:
            stats.dropped[f"quality_{failure}"] += 1
            continue
        if filters.language_id:
            with result.timed("language_id"):
                language, probability = identify(text)
            if language != source.language and probability >= filters.min_language_confidence:
                stats.dropped["language"] += 1
                stats.dropped_language_as[language] = stats.dropped_language_as.get(language, 0) + 1
                continue
        redactions: dict[str, int] = {}
        if filters.redact_pii:
            with result.timed("pii"):
                text, redactions = redact_pii(text)
        with result.timed("dedup_exact"):
            duplicate = dedup.is_exact_duplicate(text)
        if duplicate:
            stats.dropped["exact_duplicate"] += 1
            continue
        with result.timed("dedup_near"):
            duplicate = dedup.is_near_duplicate(text)
        if duplicate:
            stats.dropped["near_duplicate"] += 1
            continue
        with result.timed("write"):
            doc_id = f"{source.name}/{document.key}"
            split = assign_split(split_key(doc_id, document.unit), cfg.run.seed, cfg.data.splits)
            writers[split].write(record(doc_id, source.name, source.language, document.unit, text))
            stats.kept(split, len(text.encode()))
            # Counted for kept documents only: the manifest describes what is in the shards.
            for kind, count in redactions.items():
                stats.pii_redactions[kind] += count


def prepare_into(cfg: RunConfig, data_dir: Path) -> PrepareResult:
    """Write every language's split shards and manifest.json into `data_dir` (an empty folder)."""
    result = PrepareResult(manifest={})
    # Hash and check every input first: a missing file fails fast, before minutes of filtering.
    with result.timed("hash_inputs"):
        stats = {s.name: SourceStats(inputs=_describe_inputs(cfg, s)) for s in cfg.data.sources}
    for lang in cfg.data.languages:
        (data_dir / lang).mkdir(parents=True, exist_ok=True)
        dedup = Deduplicator(cfg.data.filters)
        writers = {split: ShardWriter(data_dir / lang / f"{split}.jsonl.zst", cfg.data.zstd_level)
                   for split in SPLITS}
        try:
            for source in cfg.data.sources:
                if source.language == lang:
                    _process_source(cfg, source, dedup, writers, stats[source.name], result)
        finally:
            for writer in writers.values():
                writer.close()
    result.manifest = build_manifest(cfg, stats)
    write_json(data_dir / "manifest.json", result.manifest)
    return result


def prepare_data(cfg: RunConfig) -> None:
    """The `tessera data prepare` verb: replace `<run>/data/` with freshly prepared shards, atomically."""
    layout = RunLayout(cfg.out_dir)
    with atomic_dir(layout.data_dir) as staging:
        result = prepare_into(cfg, staging)
    for name, source in result.manifest["sources"].items():
        dropped = ", ".join(f"{reason} {n}" for reason, n in source["dropped"].items() if n) or "none"
        redacted = ", ".join(f"{kind} {n}" for kind, n in source["pii_redactions"].items() if n) or "none"
        print(f"{name} ({source['language']}): {source['documents_in']} in, {source['documents_out']} out; "
              f"dropped: {dropped}; PII redacted: {redacted}")
    totals = result.manifest["totals"]
    print(f"data: {totals['documents_in']} documents in, {totals['documents_out']} out "
          f"({totals['bytes_out'] / 1e6:.1f} MB) for {', '.join(cfg.data.languages)} -> {layout.data_dir}")
