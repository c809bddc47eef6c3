"""The data stage as separate jobs over files, each bounded by one shard (datatrove's stage split):

    filter_shard (per shard)      documents -> candidates.jsonl.zst, signatures, digests, dedup keys
    find_pairs   (per language and band group)   keys of every shard -> confirmed duplicate pairs
    find_removals (per language)  pairs -> clusters -> removal list; stops if a source lost everything
    write_shard  (per shard)      candidates minus removals -> split shards, what was kept
    write_manifest (once)         every shard's counts -> data/manifest.json

Files between stages (`RunLayout.shard_work` and friends) are the contract; Snakemake runs each stage
function as a job (workflow/rules/data.smk) and `tessera.data.prepare` runs them in one process. Dedup
keys are stored per shard sorted by (key band, partition, key), with `offsets` giving each segment, so
a pairs job reads one partition of one band from every shard at a time: its memory is the corpus over
(partitions x bands), and the number of partitions is the language's number of shards.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from tessera.config import RunConfig
from tessera.data.batches import batched_by_size
from tessera.data.config import SourceConfig
from tessera.data.dedup import (
    EXACT,
    NEAR,
    band_keys,
    candidate_pairs,
    cluster_removals,
    jaccard_rows,
    lsh_shape,
)
from tessera.data.document_filter import DocumentFilter, Outcome
from tessera.data.manifest import SourceStats, build_manifest, file_digest
from tessera.data.plan import DOC_SHIFT, ShardSpec, language_parts
from tessera.data.shards import ShardWriter, read_shard, record
from tessera.data.sources import FETCHED, cache_dir, input_files, read_slice
from tessera.data.split import assign_split, split_key
from tessera.errors import DataError
from tessera.io import atomic_dir, atomic_path, write_json
from tessera.layout import SPLITS, RunLayout

__all__ = ["filter_shard", "find_pairs", "find_removals", "write_shard", "write_manifest", "WORK_FILES",
           "PAIR_DTYPE"]

WORK_FILES = ("candidates.jsonl.zst", "signatures.npy", "digests.npy", "keys.npy", "offsets.npy",
              "counts.json")
"""What `filter_shard` leaves in `RunLayout.shard_work(lang, part)`."""
KEY_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u8")])
PAIR_DTYPE = np.dtype([("first", "<u8"), ("other", "<u8"), ("kind", "u1")])
REMOVED_DTYPE = np.dtype([("doc", "<u8"), ("reason", "u1")])
_REASONS = {EXACT: "exact_duplicate", NEAR: "near_duplicate"}
_LOCAL_MASK = np.uint64((1 << DOC_SHIFT) - 1)
FILTER_BATCH_DOCUMENTS, FILTER_BATCH_CHARS = 1024, 8_000_000
"""A shard job filters at most this many documents and characters at once (language id walks a batch
together): a few MB of web pages, or a handful of books."""


def _count_outcome(stats: SourceStats, outcome: Outcome) -> None:
    stats.documents_in += 1
    stats.bytes_in += outcome.bytes_in
    for name in outcome.cleaned:
        stats.cleanup[name] += 1
    if outcome.dropped:
        stats.dropped[outcome.dropped] += 1
        if outcome.other_language:
            counts = stats.dropped_language_as
            counts[outcome.other_language] = counts.get(outcome.other_language, 0) + 1


def _dedup_keys(cfg: RunConfig, signatures: np.ndarray, digests: np.ndarray, first_doc: int,
                partitions: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys sorted by (key band, partition, key, doc) and the start of each (band, partition) segment.
    Bands 0..B-1 are the LSH bands of the signatures, band B the exact digests' first 8 bytes."""
    filters = cfg.data.filters
    bands, rows = lsh_shape(filters)
    n = len(digests)
    docs = np.arange(first_doc, first_doc + n, dtype=np.uint64)
    per_band = [band_keys(signatures, bands, rows) if filters.dedup_near else np.empty((0, n), np.uint64)]
    if filters.dedup_exact:
        per_band.append(digests[:, 0][None, :])
    keys = np.concatenate(per_band) if n else np.empty((0, 0), np.uint64)
    band_of = np.concatenate([np.arange(bands) if filters.dedup_near else np.empty(0, np.int64),
                              [bands] if filters.dedup_exact else []]).astype(np.int64)
    band = np.repeat(band_of, n)
    flat = keys.reshape(-1)
    segment = band * partitions + (flat % np.uint64(partitions)).astype(np.int64)
    doc = np.tile(docs, len(band_of))
    order = np.lexsort((doc, flat, segment))
    out = np.empty(len(flat), dtype=KEY_DTYPE)
    out["key"], out["doc"] = flat[order], doc[order]
    counts = np.bincount(segment, minlength=(bands + 1) * partitions)
    return out, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _candidate(spec: ShardSpec, outcome: Outcome) -> dict:
    line = record(f"{spec.source.name}/{outcome.key}", spec.source.name, spec.language, outcome.unit,
                  outcome.text)
    return {**line, "pii": {k: n for k, n in outcome.redactions.items() if n}}


def filter_shard(cfg: RunConfig, spec: ShardSpec, layout: RunLayout) -> None:
    """Per-document steps over one shard's documents; writes the shard's work folder atomically."""
    document_filter = DocumentFilter(cfg.data.filters)
    stats = SourceStats(inputs=[])
    signatures, digests = [], []
    perms = cfg.data.filters.minhash_permutations
    with atomic_dir(layout.shard_work(spec.language, spec.part)) as work:
        with ShardWriter(work / WORK_FILES[0], cfg.data.zstd_level) as writer:
            documents = read_slice(cfg, spec.source, spec.index, spec.num_slices)
            for batch in batched_by_size(documents, FILTER_BATCH_CHARS, lambda d: len(d.text),
                                         FILTER_BATCH_DOCUMENTS):
                for outcome in document_filter(batch, spec.language):
                    _count_outcome(stats, outcome)
                    if not outcome.dropped:
                        writer.write(_candidate(spec, outcome))
                        signatures.append(outcome.signature if outcome.signature is not None else
                                          np.zeros(perms, np.uint32))
                        digests.append(np.frombuffer(outcome.digest.ljust(32, b"\0")[:16], dtype="<u8"))
        signature_rows = np.array(signatures, dtype=np.uint32).reshape(-1, perms)
        digest_rows = np.array(digests, dtype="<u8").reshape(-1, 2)
        keys, offsets = _dedup_keys(cfg, signature_rows, digest_rows, spec.first_doc,
                                    len(language_parts(cfg, spec.language)))
        for name, array in zip(WORK_FILES[1:5], (signature_rows, digest_rows, keys, offsets), strict=True):
            np.save(work / name, array)
        write_json(work / WORK_FILES[5], {"source": spec.source.name, "candidates": writer.documents,
                                          **stats.counts()})


class _ShardArrays:
    """Memory maps of one language's shard arrays, addressed by document number."""

    def __init__(self, cfg: RunConfig, lang: str, layout: RunLayout, name: str) -> None:
        self.arrays = {spec.number: np.load(layout.shard_work(lang, spec.part) / name, mmap_mode="r")
                       for spec in language_parts(cfg, lang)}

    def rows(self, docs: np.ndarray) -> np.ndarray:
        shard, local = (docs >> np.uint64(DOC_SHIFT)).astype(np.int64), (docs & _LOCAL_MASK).astype(np.int64)
        width = next(iter(self.arrays.values())).shape[1]
        out = np.empty((len(docs), width), dtype=next(iter(self.arrays.values())).dtype)
        for number in np.unique(shard).tolist():
            here = shard == number
            out[here] = self.arrays[number][local[here]]
        return out


def _parts(cfg: RunConfig, lang: str) -> list[ShardSpec]:
    parts = language_parts(cfg, lang)
    if not parts:
        raise DataError(f"language {lang!r} has no data source; languages: {', '.join(cfg.data.languages)}")
    return parts


def find_pairs(cfg: RunConfig, lang: str, group: int, layout: RunLayout) -> Path:
    """Confirmed duplicate pairs among the key bands b with b % num_dedup_jobs == group."""
    if not 0 <= group < cfg.data.num_dedup_jobs:
        raise DataError(f"dedup group {group} is outside 0..{cfg.data.num_dedup_jobs - 1} "
                        "(data.num_dedup_jobs)")
    parts = _parts(cfg, lang)
    bands, _ = lsh_shape(cfg.data.filters)
    threshold = cfg.data.filters.near_dup_threshold
    keys = [np.load(layout.shard_work(lang, s.part) / "keys.npy", mmap_mode="r") for s in parts]
    offsets = [np.load(layout.shard_work(lang, s.part) / "offsets.npy") for s in parts]
    signatures = _ShardArrays(cfg, lang, layout, "signatures.npy")
    digests = _ShardArrays(cfg, lang, layout, "digests.npy")
    found = []
    for band in range(group, bands + 1, cfg.data.num_dedup_jobs):
        for partition in range(len(parts)):
            segment = band * len(parts) + partition
            chunk = np.concatenate([k[o[segment]:o[segment + 1]] for k, o in zip(keys, offsets, strict=True)])
            first, other = candidate_pairs(chunk["key"], chunk["doc"])
            if band == bands:  # exact: the whole 16-byte digest must agree
                keep = (digests.rows(first) == digests.rows(other)).all(axis=1)
            else:
                keep = jaccard_rows(signatures.rows(first), signatures.rows(other)) >= threshold
            pairs = np.empty(int(keep.sum()), dtype=PAIR_DTYPE)
            pairs["first"], pairs["other"] = first[keep], other[keep]
            pairs["kind"] = EXACT if band == bands else NEAR
            found.append(pairs)
    pairs = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=PAIR_DTYPE)
    path = layout.dedup_pairs(lang, group)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, pairs)
    return path


def _all_dropped(name: str, counts: Counter, stats: SourceStats) -> DataError:
    reasons = {reason: n for reason, n in {**stats.dropped, **counts}.items() if n}
    worst = max(reasons, key=lambda reason: reasons[reason]) if reasons else "none"
    listing = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    also = f" (identified as {stats.dropped_language_as})" if stats.dropped_language_as else ""
    return DataError(
        f"source {name}: all {stats.documents_in} documents were dropped, most by the {worst} filter "
        f"({listing}){also}; nothing was written and the previous data/ is untouched. Check the source "
        "(its language, path, fields) or relax data.filters"
    )


def find_removals(cfg: RunConfig, lang: str, layout: RunLayout) -> Path:
    """Clusters of the language's confirmed pairs -> removal list (all but each cluster's first). Stops
    with a DataError when a source of the language has no document left, before anything is written."""
    _parts(cfg, lang)
    groups = range(cfg.data.num_dedup_jobs)
    pairs = np.concatenate([np.load(layout.dedup_pairs(lang, g)) for g in groups])
    docs, reasons = cluster_removals(pairs["first"], pairs["other"], pairs["kind"])
    removed = np.empty(len(docs), dtype=REMOVED_DTYPE)
    removed["doc"], removed["reason"] = docs, reasons
    shard_of = (docs >> np.uint64(DOC_SHIFT)).astype(np.int64)
    totals: dict[str, SourceStats] = {}
    left: Counter = Counter()
    removed_by: dict[str, Counter] = {}
    for spec in language_parts(cfg, lang):
        counts = json.loads((layout.shard_work(lang, spec.part) / "counts.json").read_text())
        name = spec.source.name
        totals.setdefault(name, SourceStats(inputs=[])).add(
            {k: v for k, v in counts.items() if k not in ("source", "candidates")})
        mine = reasons[shard_of == spec.number]
        by = removed_by.setdefault(name, Counter())
        by.update({_REASONS[code]: int((mine == code).sum()) for code in (EXACT, NEAR)})
        left[name] += counts["candidates"] - len(mine)
    for name, stats in totals.items():
        if left[name] == 0:
            raise _all_dropped(name, removed_by[name], stats)
    path = layout.dedup_removed(lang)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, removed)
    return path


def write_shard(cfg: RunConfig, spec: ShardSpec, layout: RunLayout) -> None:
    """The shard's candidates minus the removal list, into one file per split; counts what it kept."""
    # Memory-mapped: a binary search reads a few pages and this shard's slice, not the language's list.
    removed = np.load(layout.dedup_removed(spec.language), mmap_mode="r")
    lo, hi = np.searchsorted(removed["doc"], [spec.first_doc, spec.first_doc + (1 << DOC_SHIFT)])
    mine = np.array(removed[lo:hi])
    reason_of = dict(zip((mine["doc"] & _LOCAL_MASK).tolist(), mine["reason"].tolist(), strict=True))
    stats = SourceStats(inputs=[])
    work = layout.shard_work(spec.language, spec.part)
    with contextlib.ExitStack() as stack:
        paths = {split: stack.enter_context(atomic_path(layout.shard(spec.language, split, spec.part)))
                 for split in SPLITS}
        writers = {split: stack.enter_context(ShardWriter(path, cfg.data.zstd_level))
                   for split, path in paths.items()}
        for position, line in enumerate(read_shard(work / WORK_FILES[0])):
            if position in reason_of:
                stats.dropped[_REASONS[reason_of[position]]] += 1
                continue
            split = assign_split(split_key(line["id"], line["unit"]), cfg.run.seed, cfg.data.splits)
            pii = line.pop("pii")
            writers[split].write(line)
            stats.kept(split, len(line["text"].encode()))
            stats.add({"pii_redactions": pii})
    write_json(layout.shard_counts(spec.language, spec.part),
               {"source": spec.source.name, "dropped": {k: stats.dropped[k] for k in _REASONS.values()},
                "pii_redactions": stats.pii_redactions, "splits": stats.splits})


def _describe_download(cfg: RunConfig, source: SourceConfig) -> list[dict]:
    """A download's files with the size and sha256 `tessera data fetch` verified (a terabyte is not hashed
    twice; `input_files` checked that the sizes still match)."""
    input_files(cfg, source)
    record = json.loads((cache_dir(cfg, source) / FETCHED).read_text(encoding="utf-8"))
    return [{"path": f["path"], "bytes": f["size"], "sha256": f["sha256"], "revision": record["revision"],
             **({"commit": record["commit"]} if "commit" in record else {})} for f in record["files"]]


def _describe_inputs(cfg: RunConfig, source: SourceConfig) -> list[dict]:
    """Input files with size and sha256; the configured spelling for a single `pkg://` file (portable)."""
    if source.download is not None:
        return _describe_download(cfg, source)
    files = input_files(cfg, source)
    single_package_file = len(files) == 1 and (source.path or "").startswith("pkg://")
    return [{"path": source.path if single_package_file else str(file), "bytes": file.stat().st_size,
             "sha256": file_digest(file)} for file in files]


def write_manifest(cfg: RunConfig, layout: RunLayout) -> dict:
    """Merge every shard's counts (filters, then dedup and splits) into data/manifest.json."""
    stats = {s.name: SourceStats(inputs=_describe_inputs(cfg, s)) for s in cfg.data.sources}
    for lang in cfg.data.languages:
        for spec in language_parts(cfg, lang):
            filtered = layout.shard_work(lang, spec.part) / WORK_FILES[5]
            for path in (filtered, layout.shard_counts(lang, spec.part)):
                counts = json.loads(path.read_text(encoding="utf-8"))
                stats[counts.pop("source")].add({k: v for k, v in counts.items() if k != "candidates"})
    manifest = build_manifest(cfg, stats)
    write_json(layout.manifest, manifest)
    return manifest
