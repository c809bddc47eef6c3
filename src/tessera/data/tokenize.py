"""Shards -> token files: `tessera tokenize --language L --part K` encodes one prepare shard's splits,
`tessera tokenize --language L --index` indexes a language's shards per split (tessera.data.tokens).

Streaming in bounded memory: a reader thread decompresses and parses the shard into batches of about
BATCH_BYTES of text, at most QUEUE_BATCHES ahead; an encoder thread encodes each batch with the
tokenizers library (Rust, all `num_threads` cores, without the GIL) while the calling thread appends the
previous batch's ids to the output, so reading, encoding and writing overlap. Memory is a few batches
whatever the shard's size; the output is in document order, so it is the same for any thread count.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tokenizers import Tokenizer

from tessera.config import RunConfig
from tessera.data.batches import batched_by_size
from tessera.data.plan import find_shard, language_parts
from tessera.data.shards import read_shard
from tessera.data.tokens import suffixed, write_token_file, write_token_index
from tessera.errors import DataError
from tessera.io import sha256_file
from tessera.layout import SPLITS, RunLayout
from tessera.tokenizer.files import read_tokenizer

__all__ = ["require_shard", "tokenize_shard", "index_tokens", "load_tokenizer", "encode_file",
           "encode_documents", "set_num_threads", "BATCH_BYTES"]

log = logging.getLogger(__name__)

BATCH_BYTES = 2_000_000
"""Text per encode call: large enough to keep every core busy, small enough that a few batches in flight
(with the tokenizer's per-token bookkeeping, ~20x the text) stay within tens of MB."""
QUEUE_BATCHES = 2


def require_shard(path: Path) -> Path:
    """`path`, or a DataError saying which stage makes it."""
    if not path.exists():
        raise DataError(
            f"{path}: shard is missing; run `tessera data prepare` (or the workflow's data rules) first"
        )
    return path


def set_num_threads(num_threads: int | None) -> int:
    """Cores the tokenizers library may use: `num_threads`, else this process's CPU affinity (what SLURM or
    Snakemake granted). Takes effect only before the library's first parallel call in the process."""
    threads = num_threads or len(os.sched_getaffinity(0))
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    return threads


def _prefetch(batches: Iterator[list[str]], depth: int) -> Iterator[list[str]]:
    """Run `batches` in a thread, `depth` batches ahead; its exceptions re-raise here."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        slots.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(done)
        except BaseException as err:  # handed to the consumer, which raises it
            slots.put(err)

    thread = threading.Thread(target=produce, name="shard-reader", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def encode_documents(
    tokenizer: Tokenizer, texts: Iterable[str], batch_bytes: int | None = None
) -> Iterator[tuple[list[list[int]], int]]:
    """(token ids of each document, UTF-8 bytes of the batch) for consecutive batches of `texts`.

    Batch i+1 is encoding (Rust threads, no GIL) while the caller converts and writes batch i, so the
    cores never wait for the Python side."""

    def encode(batch: list[str]) -> tuple[list[list[int]], int]:
        encodings = tokenizer.encode_batch_fast(batch, add_special_tokens=False)
        return [e.ids for e in encodings], sum(len(t.encode("utf-8")) for t in batch)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode") as encoder:
        pending: Future | None = None
        for batch in _prefetch(batched_by_size(texts, batch_bytes or BATCH_BYTES), QUEUE_BATCHES):
            submitted = encoder.submit(encode, batch)
            if pending is not None:
                yield pending.result()
            pending = submitted
        if pending is not None:
            yield pending.result()


def load_tokenizer(cfg: RunConfig, layout: RunLayout) -> tuple[Tokenizer, dict]:
    """The run's tokenizer and the metadata every token file of it carries."""
    tokenizer_json = layout.tokenizer_dir / "tokenizer.json"
    if not tokenizer_json.exists():
        raise DataError(f"{tokenizer_json}: missing; run `tessera tokenizer train` first")
    tokenizer = read_tokenizer(tokenizer_json, "run `tessera tokenizer train` first")
    eos = cfg.tokenizer.special_tokens[1]
    eos_id = tokenizer.token_to_id(eos)
    if eos_id is None:
        raise DataError(f"{tokenizer_json}: has no {eos} token; retrain it with `tessera tokenizer train`")
    meta = {"vocab_size": tokenizer.get_vocab_size(), "tokenizer_sha256": sha256_file(tokenizer_json),
            "eos_id": eos_id}
    return tokenizer, meta


def encode_file(tokenizer: Tokenizer, shard: Path, stem: Path, meta: dict) -> None:
    """Encode one shard file into the token file set `stem` (meta: `load_tokenizer`'s, language, split)."""
    texts = (doc["text"] for doc in read_shard(require_shard(shard)))
    try:
        with write_token_file(stem, meta) as writer:
            for documents, num_bytes in encode_documents(tokenizer, texts):
                writer.add_documents(documents)
                writer.num_bytes += num_bytes
    except KeyError as err:  # read_shard names a damaged file itself
        raise DataError(
            f"{shard}: a document without {err} (not a data-stage shard); rerun the data stage"
        ) from None
    log.info("%s: %d documents, %d tokens", suffixed(stem, ".bin"), writer.num_documents, writer.num_tokens)


def tokenize_shard(cfg: RunConfig, language: str, part: int, num_threads: int | None = None) -> None:
    """Encode every split of prepare shard `part` of `language` into its token file sets
    (`RunLayout.token_shard`); memory is a few batches whatever the shard's size."""
    find_shard(cfg, language, part)  # names the parts there are
    layout = RunLayout(cfg.out_dir)
    set_num_threads(num_threads)
    tokenizer, common = load_tokenizer(cfg, layout)
    for split in SPLITS:
        meta = {**common, "language": language, "split": split}
        shard, stem = layout.shard(language, split, part), layout.token_shard(language, split, part)
        encode_file(tokenizer, shard, stem, meta)


def index_tokens(cfg: RunConfig, language: str) -> None:
    """Write each split's index over the language's token shards (`RunLayout.tokens`): what the loader
    and the evaluation open."""
    layout = RunLayout(cfg.out_dir)
    parts = [spec.part for spec in language_parts(cfg, language)]
    if not parts:
        raise DataError(f"language {language!r} has no data source; languages with one: "
                        f"{', '.join(cfg.data.languages)}")
    for split in SPLITS:
        meta = write_token_index(layout.tokens(language, split),
                                 [layout.token_shard(language, split, part) for part in parts])
        log.info("%s: %d shards, %d tokens", layout.tokens(language, split), len(parts), meta["num_tokens"])
