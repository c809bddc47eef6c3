"""Training data loader: memory-mapped token files -> packed fixed-length sequences, a pure function of step.

Every sequence the run will ever see has a global sample number
    n = ((step * grad_accum_steps + micro_step) * world_size + rank) * micro_batch_size + row
and everything about it is computed from n and the seed alone, so the loader has no state: resuming at
step k costs nothing (no replay), and ranks are disjoint because their sample numbers are.

n -> language. The sample stream is cut into blocks of MIXTURE_BLOCK slots; each block holds every
language a fixed number of times (largest-remainder apportionment of the mixture weights), in an order
shuffled per block. The mixture is therefore exact in every block of 4096 sequences, not just in
expectation, and the number of earlier samples of the same language (its ordinal m) is O(1) to compute.

(language, m) -> window. A language's token stream is cut into windows of seq_len + 1 tokens that
overlap by one (the last input token's target), ignoring document boundaries: documents are packed
back to back with EOS between them, so no position is padding. Epoch e = m // num_windows visits every
window once, in the order of a keyed pseudo-random permutation (a Feistel network over the window
range, O(1) memory whatever the corpus size), with a fresh key per epoch. A language with little data
repeats (a new order each epoch); one with much data is never exhausted in a short stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from tessera.data.tokens import TokenFile, TokenShards, open_token_file
from tessera.errors import DataError

__all__ = [
    "TokenLoader",
    "MIXTURE_BLOCK",
    "apportion",
    "block_languages",
    "sequences_per_language",
    "stage_seed",
]

MIXTURE_BLOCK = 4096
"""Samples per mixture block: the mixture is exact in each block, so weights resolve to 1/4096."""

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_FEISTEL_ROUNDS = 6


def apportion(weights: Mapping[str, float], total: int) -> dict[str, int]:
    """Split `total` slots by `weights` (largest remainder); every positive weight gets at least one slot."""
    positive = {k: float(w) for k, w in weights.items() if w > 0}
    if not positive:
        raise ValueError(f"mixture {dict(weights)} has no positive weight")
    norm = sum(positive.values())
    exact = {k: w / norm * total for k, w in positive.items()}
    counts = {k: int(v) for k, v in exact.items()}
    by_remainder = sorted(positive, key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: total - sum(counts.values())]:
        counts[k] += 1
    for k in sorted(counts):  # a tiny weight must still be drawn: take its slot from the largest language
        if counts[k] == 0:
            counts[max(counts, key=lambda j: (counts[j], j))] -= 1
            counts[k] = 1
    return counts


def stage_seed(run_seed: int, stage_index: int) -> int:
    """The loader's seed for the stage at `stage_index`: each stage draws its own order."""
    return run_seed + 1000 * stage_index


def block_languages(counts: Mapping[str, int], seed: int, block: int) -> np.ndarray:
    """Index into sorted(counts) of the language of each slot of mixture block `block`: the loader's draw,
    which needs neither token files nor ranks (a pure function of the apportioned mixture, seed, block)."""
    languages = sorted(counts)
    slot_language = np.repeat(np.arange(len(languages)), [counts[k] for k in languages])
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x6D6978, block])))
    return slot_language[rng.permutation(MIXTURE_BLOCK)]


def sequences_per_language(mixture: Mapping[str, float], seed: int, num_samples: int) -> dict[str, int]:
    """How many of the global samples 0..num_samples-1 the loader draws from each language: whole blocks
    hold the apportioned counts exactly, only the last partial block is replayed."""
    counts = apportion(mixture, MIXTURE_BLOCK)
    full_blocks, rest = divmod(num_samples, MIXTURE_BLOCK)
    drawn = {lang: full_blocks * n for lang, n in counts.items()}
    if rest:
        partial = np.bincount(block_languages(counts, seed, full_blocks)[:rest], minlength=len(counts))
        for lang, n in zip(sorted(counts), partial.tolist(), strict=True):
            drawn[lang] += n
    return drawn


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a cheap, well-mixing round function on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _feistel_permute(x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """A keyed bijection of [0, n) applied to `x` (uint64): a balanced Feistel network over the smallest
    even-bit power of two >= n, cycle-walking until the value falls back inside [0, n)."""
    half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
    shift, mask = np.uint64(half_bits), np.uint64((1 << half_bits) - 1)

    def rounds(v: np.ndarray) -> np.ndarray:
        left, right = v >> shift, v & mask
        for key in keys:
            left, right = right, left ^ (_mix64(right ^ key) & mask)
        return (left << shift) | right

    y = rounds(x)
    outside = y >= np.uint64(n)
    while outside.any():  # at most 4x the domain, so a few walks in expectation
        y[outside] = rounds(y[outside])
        outside = y >= np.uint64(n)
    return y


class TokenLoader:
    """Batches of packed sequences from the token files of several languages, mixed by weight.

    stems: language -> token file stem (`RunLayout.tokens(lang, split)`: a single token file set, or the
    index of a split's shards, read as one stream); languages with zero weight
    in `mixture` are not opened. `grad_accum_steps` is the number of micro-steps per optimizer step:
    it is needed so that (step, micro_step) pairs map to consecutive, non-overlapping samples.
    """

    def __init__(
        self,
        stems: Mapping[str, str | Path],
        mixture: Mapping[str, float],
        seq_len: int,
        micro_batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        grad_accum_steps: int = 1,
    ) -> None:
        if seq_len < 1 or micro_batch_size < 1 or grad_accum_steps < 1:
            raise ValueError(
                f"seq_len ({seq_len}), micro_batch_size ({micro_batch_size}) and "
                f"grad_accum_steps ({grad_accum_steps}) must be positive"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside [0, world_size={world_size})")
        missing = sorted(k for k, w in mixture.items() if w > 0 and k not in stems)
        if missing:
            raise DataError(
                f"mixture names language(s) {', '.join(missing)} without token files; "
                f"token files given for: {', '.join(sorted(stems)) or 'none'}"
            )
        self.seq_len, self.micro_batch_size, self.seed = seq_len, micro_batch_size, seed
        self.rank, self.world_size, self.grad_accum_steps = rank, world_size, grad_accum_steps
        # Sorted so that the same mixture means the same samples whatever the config's key order.
        self.counts = apportion(mixture, MIXTURE_BLOCK)
        self.languages = sorted(self.counts)
        self.files: dict[str, TokenFile | TokenShards] = {
            lang: open_token_file(stems[lang]) for lang in self.languages
        }
        self._check_same_tokenizer()
        self.num_windows = {lang: self._windows(lang) for lang in self.languages}
        self._counts_array = np.array([self.counts[k] for k in self.languages], dtype=np.int64)
        self._block_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._key_cache: dict[tuple[int, int], np.ndarray] = {}

    @property
    def tokens_per_batch(self) -> int:
        return self.seq_len * self.micro_batch_size

    @property
    def vocab_size(self) -> int:
        return int(self.files[self.languages[0]].meta["vocab_size"])

    def _check_same_tokenizer(self) -> None:
        shas = {lang: f.meta["tokenizer_sha256"] for lang, f in self.files.items()}
        if len(set(shas.values())) > 1:
            listing = ", ".join(f"{f.stem}: {shas[lang][:12]}" for lang, f in self.files.items())
            raise DataError(
                f"token files come from different tokenizers ({listing}); rerun `tessera tokenize` "
                "for every language with the current tokenizer"
            )

    def _windows(self, lang: str) -> int:
        file = self.files[lang]
        windows = (file.num_tokens - 1) // self.seq_len
        if windows < 1:
            raise DataError(
                f"{file.stem}.bin: {file.num_tokens} tokens cannot fill one sequence of "
                f"seq_len + 1 = {self.seq_len + 1} tokens; add data for {lang} or lower its weight"
            )
        return windows

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(language index, ordinal within that language) of each slot of one mixture block."""
        if block not in self._block_cache:
            language = block_languages(self.counts, self.seed, block)
            order = np.argsort(language, kind="stable")
            starts = np.concatenate([[0], np.cumsum(self._counts_array)[:-1]])
            ordinal = np.empty(MIXTURE_BLOCK, dtype=np.int64)
            ordinal[order] = np.arange(MIXTURE_BLOCK) - starts[language[order]]
            if len(self._block_cache) >= 4:  # consecutive steps touch one or two blocks
                self._block_cache.pop(next(iter(self._block_cache)))
            self._block_cache[block] = (language, ordinal)
        return self._block_cache[block]

    def _epoch_keys(self, lang_index: int, epoch: int) -> np.ndarray:
        key = (lang_index, epoch)
        if key not in self._key_cache:
            if len(self._key_cache) >= 1024:  # a small language runs through many epochs: stay bounded
                self._key_cache.clear()
            seq = np.random.SeedSequence([self.seed, 0x77696E, lang_index, epoch])
            self._key_cache[key] = seq.generate_state(_FEISTEL_ROUNDS, dtype=np.uint64)
        return self._key_cache[key]

    def sample_windows(self, sample_numbers: np.ndarray) -> list[tuple[str, int]]:
        """(language, window index) of each global sample number: the loader's whole sampling rule."""
        numbers = np.asarray(sample_numbers, dtype=np.int64)
        blocks, slots = np.divmod(numbers, MIXTURE_BLOCK)
        lang_index = np.empty(len(numbers), dtype=np.int64)
        ordinal = np.empty(len(numbers), dtype=np.int64)
        for block in np.unique(blocks).tolist():  # a batch spans one block, rarely two
            here = blocks == block
            language, block_ordinal = self._block(block)
            lang_index[here] = language[slots[here]]
            ordinal[here] = block * self._counts_array[lang_index[here]] + block_ordinal[slots[here]]
        windows = np.empty(len(numbers), dtype=np.int64)
        for index, lang in enumerate(self.languages):
            mine = lang_index == index
            if not mine.any():
                continue
            epochs, positions = np.divmod(ordinal[mine], self.num_windows[lang])
            out = np.empty(len(positions), dtype=np.int64)
            for epoch in np.unique(epochs).tolist():
                same = epochs == epoch
                keys = self._epoch_keys(index, epoch)
                out[same] = _feistel_permute(positions[same].astype(np.uint64), self.num_windows[lang], keys)
            windows[mine] = out
        return [(self.languages[i], w) for i, w in zip(lang_index.tolist(), windows.tolist(), strict=True)]

    def sample_numbers(self, step: int, micro_step: int = 0) -> np.ndarray:
        """The global sample numbers of this rank's rows at (step, micro_step): runs of micro_batch_size
        ordered by step, then micro-step, then rank, so no two (rank, micro-step) share a number."""
        if step < 0 or not 0 <= micro_step < self.grad_accum_steps:
            raise ValueError(
                f"step {step} must be >= 0 and micro_step {micro_step} in "
                f"[0, grad_accum_steps={self.grad_accum_steps}) (pass grad_accum_steps to TokenLoader)"
            )
        first = (
            (step * self.grad_accum_steps + micro_step) * self.world_size + self.rank
        ) * self.micro_batch_size
        return np.arange(first, first + self.micro_batch_size, dtype=np.int64)

    def batch(self, step: int, micro_step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs_BT, targets_BT) int64 of this rank at (step, micro_step); targets = inputs shifted by 1."""
        rows_BT1 = np.empty((self.micro_batch_size, self.seq_len + 1), dtype=np.int64)
        for row, (lang, window) in enumerate(self.sample_windows(self.sample_numbers(step, micro_step))):
            start = window * self.seq_len
            rows_BT1[row] = self.files[lang].read(start, self.seq_len + 1)
        rows = torch.from_numpy(rows_BT1)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()
