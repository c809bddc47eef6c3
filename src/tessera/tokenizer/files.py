"""Reading a tokenizer.json a user or an earlier job left: a DataError naming the file, not a traceback."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from tessera.errors import DataError

__all__ = ["read_tokenizer"]


def read_tokenizer(path: Path, remedy: str) -> Tokenizer:
    """The tokenizer in `path`; a DataError with `remedy` when it is missing or malformed."""
    if not path.is_file():
        raise DataError(f"{path}: missing; {remedy}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception for any malformed file
        raise DataError(f"{path}: not a readable tokenizer.json ({err}); {remedy}") from None
