"""Deduplication within one language: exact (hash of the cleaned text) and near (MinHash + LSH).

Documents are seen in a fixed order (config order of sources, then source order), so which copy of a
duplicate survives is deterministic: always the first.
"""

from __future__ import annotations

import hashlib
import re
import zlib

import numpy as np
from datasketch import MinHash, MinHashLSH

from tessera.data.config import FilterConfig

__all__ = ["Deduplicator", "Sketcher", "shingle_hashes"]

_WORD = re.compile(r"\w+")
# Fixed so that MinHash signatures, and therefore which documents count as near-duplicates, are the same
# in every run and on every machine.
_MINHASH_SEED = 1


_MASK32 = np.uint64(0xFFFFFFFF)
# One odd multiplier per position in a shingle, so that "a b" and "b a" hash differently.
_POSITION_MULTIPLIERS = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646C | 1,
                                  0xFD7046C5, 0xB55A4F09, 0x2545F491, 0x4F6CDD1D], dtype=np.uint64)


def shingle_hashes(text: str, words_per_shingle: int) -> np.ndarray:
    """The distinct 32-bit hashes of the text's lower-cased word n-grams (one shingle if it is shorter).

    Each word is hashed once (crc32, in C) and each n-gram's hash is a position-weighted sum of its
    words' hashes, computed for all n-grams at once: several times faster than hashing every n-gram's
    joined string, which made near-dedup the slowest step of the stage. Deterministic across runs.
    """
    words = _WORD.findall(text.lower())
    word_hashes = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    width = min(words_per_shingle, len(words))
    if width == 0:
        return np.zeros(1, dtype=np.uint64)
    multipliers = np.resize(_POSITION_MULTIPLIERS, width)
    count = len(words) - width + 1
    combined = np.zeros(count, dtype=np.uint64)
    for position in range(width):
        # uint64 arithmetic wraps modulo 2**64; the low 32 bits are a hash of the whole n-gram.
        combined += word_hashes[position:position + count] * multipliers[position]
    return np.unique(combined & _MASK32)


class Sketcher:
    """Text -> the fingerprints dedup compares: a sha256 digest and a MinHash signature.

    Pure per-document work, so it runs in the worker processes; the decisions (`Deduplicator`) need the
    documents seen so far and run in one process, in document order.
    """

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        # Drawing the permutations costs more than hashing a chapter: draw once, share with every sketch.
        self._template = MinHash(num_perm=cfg.minhash_permutations, seed=_MINHASH_SEED, hashfunc=int,
                                 scheme="affine32")

    @staticmethod
    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode()).digest()

    def signature(self, text: str) -> np.ndarray:
        """MinHash values (one per permutation) of the text's shingles."""
        # The shingles are already 32-bit hashes: MinHash only applies its permutations to them.
        sketch = MinHash(num_perm=self.cfg.minhash_permutations, seed=_MINHASH_SEED, hashfunc=int,
                         permutations=self._template.permutations, scheme="affine32")
        sketch.update_batch(shingle_hashes(text, self.cfg.shingle_words))
        return sketch.hashvalues


class Deduplicator:
    """Remembers the documents of one language kept so far and says whether a new one is a copy."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self._digests: set[bytes] = set()
        self._lsh = MinHashLSH(threshold=cfg.near_dup_threshold, num_perm=cfg.minhash_permutations)
        self._sketches: dict[str, MinHash] = {}

    def is_exact_duplicate(self, digest: bytes) -> bool:
        """True if an earlier document had this digest; otherwise remember it."""
        if not self.cfg.dedup_exact:
            return False
        if digest in self._digests:
            return True
        self._digests.add(digest)
        return False

    def is_near_duplicate(self, signature: np.ndarray) -> bool:
        """True if an earlier kept document is a near-copy; otherwise remember this one."""
        if not self.cfg.dedup_near:
            return False
        sketch = MinHash(num_perm=self.cfg.minhash_permutations, seed=_MINHASH_SEED, hashvalues=signature,
                         scheme="affine32")
        # LSH gives candidates; confirm with the signature's Jaccard estimate to cut false positives.
        for key in self._lsh.query(sketch):
            if sketch.jaccard(self._sketches[key]) >= self.cfg.near_dup_threshold:
                return True
        key = str(len(self._sketches))
        self._lsh.insert(key, sketch)
        self._sketches[key] = sketch
        return False
