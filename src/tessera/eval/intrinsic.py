"""Intrinsic scores of a language model on held-out token files: bits per byte and perplexity.

Bits per byte is the total negative log-likelihood of the scored text in bits divided by the UTF-8 bytes
of that text. Unlike perplexity (per token) it does not depend on how the tokenizer cuts each language,
so it compares languages, and checkpoints with different tokenizers, on the same footing. Because the
demo corpus is parallel (the same verses in every language), the gap of each language's bits per byte to
the best language's says how much worse the model handles it.

How a document is scored: the model reads EOS (the separator it saw before every document in training),
then predicts each document token; the EOS after the document is not scored (its bytes are not counted
either). A document longer than the context is cut into consecutive windows, each predicted from its own
tokens only (the first token of a window is conditioned on the last token of the previous one), as
lm-eval's rolling log-likelihood does with no overlap.

Shapes: B batch, T window length, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tessera.data.tokens import TokenFile
from tessera.errors import DataError

__all__ = ["LanguageScore", "score_documents", "score_token_file", "gaps_to_best"]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
"""input_ids_BT (int64) -> logits_BTV (any float dtype); the model in eval mode."""


@dataclass(frozen=True)
class LanguageScore:
    """One language's held-out scores; `nll_bits` and the counts add up across files and checkpoints."""

    nll_bits: float
    """Sum over scored tokens of -log2 p(token | context)."""
    num_tokens: int
    """Tokens scored (document tokens, without EOS)."""
    num_bytes: int
    """UTF-8 bytes of the scored documents' text."""
    num_documents: int

    @property
    def bits_per_byte(self) -> float:
        return self.nll_bits / self.num_bytes

    @property
    def perplexity(self) -> float:
        """exp of the mean per-token NLL in nats: tokenizer-dependent, comparable within one tokenizer."""
        return math.exp(self.nll_bits * math.log(2) / self.num_tokens)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "bits_per_byte": self.bits_per_byte,
            "perplexity": self.perplexity,
            "num_tokens": self.num_tokens,
            "num_bytes": self.num_bytes,
            "num_documents": self.num_documents,
        }


def _windows(document: Sequence[int], eos_id: int, context_length: int) -> Iterator[list[int]]:
    """Yield `[eos] + document` cut into windows of `context_length + 1` tokens overlapping by one:
    each window's first `len - 1` tokens are the input and its last `len - 1` the targets."""
    stream = [eos_id, *document]
    for start in range(0, len(stream) - 1, context_length):
        yield stream[start : start + context_length + 1]


@torch.no_grad()
def _nll_bits(logits_fn: LogitsFn, windows: list[list[int]], batch_size: int, device: torch.device) -> float:
    """Total NLL in bits of every window's targets, batched longest-first to waste little padding."""
    total_nats = 0.0
    windows = sorted(windows, key=len, reverse=True)
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size]
        width = len(batch[0]) - 1
        ids_BT = torch.zeros(len(batch), width + 1, dtype=torch.long)
        mask_BT = torch.zeros(len(batch), width, dtype=torch.bool)
        for row, window in enumerate(batch):
            ids_BT[row, : len(window)] = torch.tensor(window, dtype=torch.long)
            mask_BT[row, : len(window) - 1] = True
        ids_BT = ids_BT.to(device)
        # Right padding is safe: a causal model's outputs at real positions never see the pad tokens.
        logits_BTV = logits_fn(ids_BT[:, :-1])
        mask_BT = mask_BT.to(device)
        # One row at a time in float32: a whole batch of float32 logits at a 100k vocabulary and 4k
        # context would take 13 GB on top of the model.
        for row in range(len(batch)):
            nll_T = F.cross_entropy(logits_BTV[row].float(), ids_BT[row, 1:], reduction="none")
            total_nats += nll_T[mask_BT[row]].sum().item()
    return total_nats / math.log(2)


def score_documents(
    logits_fn: LogitsFn,
    documents: Sequence[Sequence[int]],
    num_bytes: int,
    *,
    eos_id: int,
    context_length: int,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> LanguageScore:
    """Score documents (token ids without their trailing EOS) whose text is `num_bytes` UTF-8 bytes."""
    if num_bytes <= 0 or not documents:
        raise DataError("nothing to score: no documents or no bytes of text")
    windows = [w for doc in documents for w in _windows(doc, eos_id, context_length) if len(w) > 1]
    nll_bits = _nll_bits(logits_fn, windows, batch_size, torch.device(device))
    num_tokens = sum(len(doc) for doc in documents)
    return LanguageScore(nll_bits, num_tokens, num_bytes, len(documents))


def score_token_file(
    logits_fn: LogitsFn,
    token_file: TokenFile,
    *,
    decode: Callable[[list[int]], str],
    context_length: int,
    max_tokens: int | None = None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> LanguageScore:
    """Score a token file's documents in order, whole documents up to `max_tokens` (None = all).

    Bytes come from the file's metadata when every document is scored (the text the data stage measured)
    and from decoding the scored documents when only a prefix is.
    """
    eos_id = int(token_file.meta["eos_id"])
    documents: list[list[int]] = []
    taken = 0
    for index in range(token_file.num_documents):
        doc = token_file.document(index).tolist()
        if not doc or doc[-1] != eos_id:
            raise DataError(
                f"{token_file.stem}.bin: document {index} does not end with EOS (id {eos_id}); the file is "
                "corrupt: rerun `tessera tokenize` for it"
            )
        doc = doc[:-1]
        if max_tokens is not None and documents and taken + len(doc) > max_tokens:
            break
        documents.append(doc)
        taken += len(doc)
    if len(documents) == token_file.num_documents:
        num_bytes = int(token_file.meta["num_bytes"])
    else:
        num_bytes = sum(len(decode(doc).encode("utf-8")) for doc in documents)
    return score_documents(
        logits_fn, documents, num_bytes, eos_id=eos_id, context_length=context_length,
        batch_size=batch_size, device=device,
    )


def gaps_to_best(bits_per_byte: dict[str, float]) -> dict[str, float]:
    """Each language's bits per byte minus the best (lowest) language's: 0 for the best."""
    best = min(bits_per_byte.values())
    return {lang: value - best for lang, value in bits_per_byte.items()}
