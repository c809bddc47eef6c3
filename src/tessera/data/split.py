"""Deterministic train/validation/test assignment from a hash of (seed, unit key).

The key is the document's alignment unit when the source is parallel, so a unit (e.g. Genesis 1) lands
in the same split in every language and per-language scores compare like with like; otherwise it is the
document id. The hash is stable across processes and machines (not Python's salted `hash`).
"""

from __future__ import annotations

import hashlib

from tessera.data.config import SplitConfig

__all__ = ["assign_split", "split_key"]


def split_key(doc_id: str, unit: str | None) -> str:
    return f"unit:{unit}" if unit is not None else f"doc:{doc_id}"


def assign_split(key: str, seed: int, cfg: SplitConfig) -> str:
    """'train', 'validation' or 'test' for this key: a uniform draw in [0, 1) fixed by the key and seed."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < cfg.validation:
        return "validation"
    if draw < cfg.validation + cfg.test:
        return "test"
    return "train"
