"""Deduplication within one language: exact (hash of the cleaned text) and near (MinHash + LSH), as
array operations over files, so that it runs as many jobs (tessera.data.scatter) with bounded memory.

The fingerprints (`Sketcher`) are per document. Each document then gets one key per LSH band (a hash of
its signature's values in that band) and one exact key (the first 8 bytes of its digest). Documents
sharing a key in any band are candidate pairs; a pair is confirmed by the full digest (exact) or by the
signatures' Jaccard estimate (near). Confirmed pairs join documents into clusters; in each cluster the
document with the smallest number (the first in config order of sources, then source order) survives.
"""

from __future__ import annotations

import hashlib
import re
import zlib

import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tessera.data.config import FilterConfig

__all__ = ["Sketcher", "shingle_hashes", "lsh_shape", "band_keys", "candidate_pairs", "jaccard_rows",
           "cluster_removals", "EXACT", "NEAR"]

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


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (datasketch's pre-mix of every input hash in its affine32 scheme)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class Sketcher:
    """Text -> the fingerprints dedup compares: a sha256 digest and a MinHash signature (per document, so
    it runs in the shard jobs)."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        # datasketch draws the permutations (its seeded affine32 scheme); the signature applies them in
        # numpy, the values MinHash.update_batch would give without its per-value Python loop
        # (tests/data/test_dedup.py holds them equal).
        template = MinHash(num_perm=cfg.minhash_permutations, seed=_MINHASH_SEED, hashfunc=int,
                           scheme="affine32")
        self._a, self._b = (np.asarray(p, dtype=np.uint32) for p in template.permutations)

    @staticmethod
    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode()).digest()

    def signature(self, text: str) -> np.ndarray:
        """MinHash values (one per permutation, uint32) of the text's shingles."""
        mixed = _fmix32(shingle_hashes(text, self.cfg.shingle_words).astype(np.uint32))
        return (mixed[:, None] * self._a + self._b).min(axis=0)


EXACT, NEAR = 1, 2
"""Pair kinds and removal reasons (manifest `exact_duplicate`, `near_duplicate`)."""

_FNV_PRIME = np.uint64(0x100000001B3)


def lsh_shape(cfg: FilterConfig) -> tuple[int, int]:
    """(bands, rows per band) that best separate Jaccard above/below the threshold (datasketch's choice
    for MinHashLSH, equal weight on false positives and negatives); bands x rows <= permutations."""
    return _optimal_param(cfg.near_dup_threshold, cfg.minhash_permutations, 0.5, 0.5)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n) uint64: one hash per band of each signature row (n, permutations) uint32. Equal bands
    give equal keys; unequal ones collide with probability ~2**-64 (and confirmation catches that)."""
    keys = np.empty((bands, len(signatures)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            h = np.full(len(signatures), band + 1, dtype=np.uint64)
            for column in range(band * rows, (band + 1) * rows):
                h = (h ^ signatures[:, column].astype(np.uint64)) * _FNV_PRIME
            keys[band] = _mix64(h)
    return keys


def candidate_pairs(keys: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, other) document numbers for every document sharing its key with a smaller-numbered one:
    each bucket pairs its members with its first member."""
    order = np.lexsort((docs, keys))
    keys, docs = keys[order], docs[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else \
        np.empty(0, dtype=np.int64)
    first = np.repeat(docs[starts], np.diff(np.append(starts, len(keys))))
    member = first != docs
    return first[member], docs[member]


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard estimates of signature rows a[i] and b[i]: the share of permutations whose minimum agrees."""
    return (a == b).mean(axis=1) if len(a) else np.empty(0)


def cluster_removals(first: np.ndarray, other: np.ndarray, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(documents to remove, reason) from confirmed pairs: all but the smallest number of each connected
    cluster go; the reason is EXACT when the document is an exact copy of another, else NEAR."""
    if not len(first):
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.uint8)
    nodes = np.unique(np.concatenate([first, other]))
    a, b = np.searchsorted(nodes, first), np.searchsorted(nodes, other)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(graph, directed=False)
    smallest = np.full(label.max() + 1, len(nodes), dtype=np.int64)
    np.minimum.at(smallest, label, np.arange(len(nodes)))
    removed = smallest[label] != np.arange(len(nodes))
    exact_copies = np.zeros(len(nodes), dtype=bool)
    exact_copies[b[kind == EXACT]] = True
    reason = np.where(exact_copies, EXACT, NEAR).astype(np.uint8)
    return nodes[removed], reason[removed]
