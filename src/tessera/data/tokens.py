"""Token files: one language/split of the corpus as flat token ids, memory-mapped and validated on open.

A token file set has one stem (`RunLayout.tokens(lang, split)`) and three files:
    <stem>.bin   little-endian uint16 (vocab <= 65536) or uint32 ids, documents concatenated, EOS after each
    <stem>.idx   int64 offsets of document starts in .bin: num_documents + 1 entries, first 0, last num_tokens
    <stem>.json  {"dtype", "num_tokens", "num_documents", "num_bytes", "vocab_size", "tokenizer_sha256",
                  "eos_id", "language", "split"}
The .json is written last (tessera.data.tokenize), so it is the record of what .bin and .idx must hold:
`open_token_file` checks their sizes and end offsets against it and raises DataError naming the file.

A split prepared in many shards has one token file set per shard (`RunLayout.token_shard`) and an index
at the split's stem: `<stem>.json` with the same keys (counts summed) plus `"shards"`, the shard stems
relative to the index's folder, in document order. `open_token_file` on an index gives a `TokenShards`,
which reads the shards as one stream (same attributes as a TokenFile, plus `read(start, length)`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tessera.errors import DataError
from tessera.io import atomic_path, write_json

__all__ = [
    "TokenFile",
    "TokenShards",
    "write_token_index",
    "TokenFileWriter",
    "open_token_file",
    "write_token_file",
    "dtype_for_vocab",
    "suffixed",
    "META_KEYS",
]

META_KEYS = (
    "dtype",
    "num_tokens",
    "num_documents",
    "num_bytes",
    "vocab_size",
    "tokenizer_sha256",
    "eos_id",
    "language",
    "split",
)
_DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
_REMEDY = "rerun `tessera tokenize` for it (or delete it and let Snakemake rebuild it)"


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """The narrowest id type that holds every id: uint16 halves disk and page-cache use for vocab <= 65536."""
    return _DTYPES["uint16"] if vocab_size <= 1 << 16 else _DTYPES["uint32"]


def suffixed(stem: Path, suffix: str) -> Path:
    """`stem` + suffix without Path.with_suffix's notion of an existing suffix (stems may contain dots)."""
    return stem.parent / f"{stem.name}{suffix}"


@dataclass(frozen=True)
class TokenFile:
    """An opened, validated token file set; `tokens` and `offsets` are read-only memory maps."""

    stem: Path
    meta: dict[str, Any]
    tokens: np.ndarray
    offsets: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])

    @property
    def num_documents(self) -> int:
        return int(self.meta["num_documents"])

    def document(self, i: int) -> np.ndarray:
        """Token ids of document `i`, including its trailing EOS."""
        return self.tokens[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream."""
        return self.tokens[start : start + length]


@dataclass(frozen=True)
class TokenShards:
    """Several shards' token file sets read as one stream, in the index's order (O(log shards) per read)."""

    stem: Path
    meta: dict[str, Any]
    shards: tuple[TokenFile, ...]
    token_starts: np.ndarray
    """Position of each shard's first token in the stream, and the total at the end."""
    document_starts: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int(self.token_starts[-1])

    @property
    def num_documents(self) -> int:
        return int(self.document_starts[-1])

    def document(self, i: int) -> np.ndarray:
        shard = int(np.searchsorted(self.document_starts, i, side="right")) - 1
        return self.shards[shard].document(i - int(self.document_starts[shard]))

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream, across shard boundaries when they fall inside."""
        pieces = []
        shard = int(np.searchsorted(self.token_starts, start, side="right")) - 1
        while length > 0 and shard < len(self.shards):
            offset = start - int(self.token_starts[shard])
            piece = self.shards[shard].tokens[offset : offset + length]
            pieces.append(piece)
            start, length, shard = start + len(piece), length - len(piece), shard + 1
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _starts(counts: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def _open_shards(stem: Path, meta: dict[str, Any]) -> TokenShards:
    shards = tuple(open_token_file(stem.parent / name) for name in meta["shards"])
    for shard in shards:
        if shard.meta["tokenizer_sha256"] != meta["tokenizer_sha256"]:
            raise DataError(f"{shard.stem}.json: from another tokenizer than its index {stem}.json; "
                            f"{_REMEDY}")
    token_starts = _starts([s.num_tokens for s in shards])
    if int(token_starts[-1]) != int(meta["num_tokens"]):
        raise DataError(f"{stem}.json: indexes {meta['num_tokens']} tokens, its shards hold "
                        f"{int(token_starts[-1])}: a shard was rewritten after the index; {_REMEDY}")
    return TokenShards(stem, meta, shards, token_starts, _starts([s.num_documents for s in shards]))


def write_token_index(stem: str | Path, shard_stems: list[Path]) -> dict[str, Any]:
    """Write `<stem>.json` indexing the shards' token file sets (opened and checked first)."""
    stem = Path(stem)
    shards = [open_token_file(s) for s in shard_stems]
    first = shards[0].meta
    meta = {key: first[key] for key in META_KEYS}
    for key in ("num_tokens", "num_documents", "num_bytes"):
        meta[key] = sum(int(s.meta[key]) for s in shards)
    for shard in shards:
        for key in ("dtype", "vocab_size", "tokenizer_sha256", "eos_id"):
            if shard.meta[key] != first[key]:
                raise DataError(f"{shard.stem}.json: {key} {shard.meta[key]!r} differs from "
                                f"{shards[0].stem}.json's {first[key]!r}; {_REMEDY}")
    meta["shards"] = [Path(s).relative_to(stem.parent).as_posix() for s in shard_stems]
    write_json(suffixed(stem, ".json"), meta)
    return meta


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: token metadata is missing; {_REMEDY}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: token metadata is not valid JSON ({err}); {_REMEDY}") from None
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise DataError(f"{path}: token metadata lacks {', '.join(missing)}; {_REMEDY}")
    if meta["dtype"] not in _DTYPES:
        raise DataError(f"{path}: dtype {meta['dtype']!r} is not one of {', '.join(_DTYPES)}; {_REMEDY}")
    return meta


def open_token_file(stem: str | Path) -> TokenFile | TokenShards:
    """Memory-map `<stem>.bin`/`.idx` after checking them against `<stem>.json` (O(1): sizes, end offsets);
    or, when `<stem>.json` is a shard index, every shard it lists."""
    stem = Path(stem)
    meta = _read_meta(suffixed(stem, ".json"))
    if "shards" in meta:
        return _open_shards(stem, meta)
    bin_path, idx_path = suffixed(stem, ".bin"), suffixed(stem, ".idx")
    dtype = _DTYPES[meta["dtype"]]
    num_tokens, num_documents = int(meta["num_tokens"]), int(meta["num_documents"])
    for path, expected in ((bin_path, num_tokens * dtype.itemsize), (idx_path, (num_documents + 1) * 8)):
        if not path.exists():
            raise DataError(f"{path}: missing; {_REMEDY}")
        size = path.stat().st_size
        if size != expected:
            raise DataError(
                f"{path}: {size} bytes, but its metadata ({num_tokens} tokens, {num_documents} documents) "
                f"needs {expected}: the file is truncated or from another run; {_REMEDY}"
            )
    # np.memmap cannot map an empty file; an empty split is legal (a language with no validation text).
    tokens = np.memmap(bin_path, dtype=dtype, mode="r") if num_tokens else np.empty(0, dtype)
    offsets = np.memmap(idx_path, dtype="<i8", mode="r")
    if offsets[0] != 0 or offsets[-1] != num_tokens:
        raise DataError(
            f"{idx_path}: document offsets run from {int(offsets[0])} to {int(offsets[-1])}, but "
            f"{bin_path.name} holds {num_tokens} tokens (expected 0 to {num_tokens}); {_REMEDY}"
        )
    if num_tokens and int(tokens[-1]) != int(meta["eos_id"]):
        raise DataError(
            f"{bin_path}: does not end with EOS id {meta['eos_id']}: the file is corrupt; {_REMEDY}"
        )
    return TokenFile(stem=stem, meta=meta, tokens=tokens, offsets=offsets)


class TokenFileWriter:
    """Appends documents to the temporary .bin/.idx of a token file set; memory stays bounded by one batch."""

    def __init__(self, bin_file, idx_file, dtype: np.dtype, eos_id: int) -> None:
        self._bin, self._idx, self.dtype, self.eos_id = bin_file, idx_file, dtype, eos_id
        self.num_tokens = 0
        self.num_documents = 0
        self.num_bytes = 0
        """UTF-8 bytes of the text behind the tokens (bits per byte need it); the caller adds them."""
        self._idx.write(np.zeros(1, dtype="<i8").tobytes())

    def add_documents(self, documents: list[list[int]]) -> None:
        """Write each document's ids followed by EOS, and their end offsets."""
        if not documents:
            return
        lengths = np.fromiter((len(d) + 1 for d in documents), dtype=np.int64, count=len(documents))
        flat = np.empty(int(lengths.sum()), dtype=self.dtype)
        ends = np.cumsum(lengths)
        flat[ends - 1] = self.eos_id
        start = 0
        for doc, end in zip(documents, ends.tolist(), strict=True):
            flat[start : end - 1] = doc
            start = end
        self._bin.write(flat.tobytes())
        self._idx.write((ends + self.num_tokens).astype("<i8").tobytes())
        self.num_tokens += int(lengths.sum())
        self.num_documents += len(documents)


@contextlib.contextmanager
def write_token_file(stem: str | Path, meta: dict[str, Any]) -> Iterator[TokenFileWriter]:
    """Write a token file set atomically: .bin and .idx appear together on success, then the .json that
    vouches for them; on error the previous set (if any) is left as it was. `meta` gives everything but
    the counts, which the writer fills in."""
    stem = Path(stem)
    dtype = dtype_for_vocab(int(meta["vocab_size"]))
    with (
        atomic_path(suffixed(stem, ".bin")) as bin_tmp,
        atomic_path(suffixed(stem, ".idx")) as idx_tmp,
        open(bin_tmp, "wb") as bin_file,
        open(idx_tmp, "wb") as idx_file,
    ):
        writer = TokenFileWriter(bin_file, idx_file, dtype, int(meta["eos_id"]))
        yield writer
        # Written in full: from here the old metadata must not vouch for the files replacing its own.
        suffixed(stem, ".json").unlink(missing_ok=True)
    full = {
        **meta,
        "dtype": dtype.name,
        "num_tokens": writer.num_tokens,
        "num_documents": writer.num_documents,
        "num_bytes": writer.num_bytes,
    }
    write_json(suffixed(stem, ".json"), {k: full[k] for k in META_KEYS})
