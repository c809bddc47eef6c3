"""Shard files: zstandard-compressed JSON lines, one document per line (see docs/architecture.md).

Writing is deterministic: a fixed compression level, no frame content size or timestamps, keys in a
fixed order, so the same documents give byte-identical files.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

from tessera.errors import DataError

__all__ = ["ShardWriter", "read_shard", "record"]


def record(doc_id: str, source: str, lang: str, unit: str | None, text: str) -> dict[str, Any]:
    """One shard line, with the keys in the documented order."""
    return {"id": doc_id, "source": source, "lang": lang, "unit": unit, "text": text}


class ShardWriter:
    """Streams documents into one `.jsonl.zst` file; counts documents and UTF-8 text bytes."""

    def __init__(self, path: Path, level: int) -> None:
        self.path = path
        self.documents = 0
        self.text_bytes = 0
        self._file = open(path, "wb")
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._stream = compressor.stream_writer(self._file, closefd=False)

    def write(self, line: dict[str, Any]) -> None:
        self._stream.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
        self.documents += 1
        self.text_bytes += len(line["text"].encode())

    def close(self) -> None:
        # Closing ends the frame: an empty split is still a valid (empty) zstd file.
        self._stream.close()
        self._file.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


READ_CHUNK = 1 << 20
"""Compressed bytes read at a time."""


def read_shard(path: str | Path) -> Iterator[dict[str, Any]]:
    """The documents of one shard, in file order. A damaged file, or one cut short (its zstd frame never
    ends: a stream reader would stop quietly at the cut), raises a DataError naming it."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    decoder = codecs.getincrementaldecoder("utf-8")()
    remedy = "rerun the data stage (`tessera data prepare`, or delete the file and let Snakemake rebuild it)"
    pending = ""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(READ_CHUNK):
                *lines, pending = (pending + decoder.decode(decompressor.decompress(chunk))).split("\n")
                yield from (json.loads(line) for line in lines if line.strip())
        if not decompressor.eof:
            raise DataError(f"{path}: truncated (its zstd frame does not end); {remedy}")
        pending += decoder.decode(b"", final=True)
        if pending.strip():
            yield json.loads(pending)
    except (zstandard.ZstdError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable ({type(err).__name__}: {err}); {remedy}") from None
