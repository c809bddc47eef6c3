"""Deduplication within one language: exact (hash of the cleaned text) and near (MinHash + LSH).

Documents are seen in a fixed order (config order of sources, then source order), so which copy of a
duplicate survives is deterministic: always the first.
"""

from __future__ import annotations

import hashlib
import re

from datasketch import MinHash, MinHashLSH

from tessera.data.config import FilterConfig

__all__ = ["Deduplicator", "shingles"]

_WORD = re.compile(r"\w+")
# Fixed so that MinHash signatures, and therefore which documents count as near-duplicates, are the same
# in every run and on every machine.
_MINHASH_SEED = 1


def shingles(text: str, words_per_shingle: int) -> set[bytes]:
    """Lower-cased word n-grams; a text shorter than n words is one shingle."""
    words = _WORD.findall(text.lower())
    if len(words) <= words_per_shingle:
        return {" ".join(words).encode()}
    last = len(words) - words_per_shingle
    return {" ".join(words[i:i + words_per_shingle]).encode() for i in range(last + 1)}


class Deduplicator:
    """Remembers the documents of one language kept so far; `check` says whether a new one is a copy."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self._hashes: set[bytes] = set()
        self._lsh = MinHashLSH(threshold=cfg.near_dup_threshold, num_perm=cfg.minhash_permutations)
        self._signatures: dict[str, MinHash] = {}

    def is_exact_duplicate(self, text: str) -> bool:
        if not self.cfg.dedup_exact:
            return False
        digest = hashlib.sha256(text.encode()).digest()
        if digest in self._hashes:
            return True
        self._hashes.add(digest)
        return False

    def is_near_duplicate(self, text: str) -> bool:
        """True if an earlier kept document is a near-copy; otherwise remember this one."""
        if not self.cfg.dedup_near:
            return False
        signature = MinHash(num_perm=self.cfg.minhash_permutations, seed=_MINHASH_SEED)
        signature.update_batch(sorted(shingles(text, self.cfg.shingle_words)))
        # LSH gives candidates; confirm with the signature's Jaccard estimate to cut false positives.
        for key in self._lsh.query(signature):
            if signature.jaccard(self._signatures[key]) >= self.cfg.near_dup_threshold:
                return True
        key = str(len(self._signatures))
        self._lsh.insert(key, signature)
        self._signatures[key] = signature
        return False
