"""Fertility: how many tokens a tokenizer spends per word, the measure it is balanced and judged by.

Tokens per whitespace word (the FLORES convention of the issue's reference figures) compares languages on
the same text; bytes per token says how much text one token carries (higher = cheaper training). The
parity ratio max/min of tokens per word over languages is 1 for a tokenizer that charges every language
the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["Encoder", "Fertility", "measure", "parity_ratio", "token_counter"]

Encoder = Callable[[list[str]], list[int]]
"""A batch of texts -> the number of tokens of each."""


def token_counter(tokenizer: Tokenizer) -> Encoder:
    """The Encoder of a `tokenizers.Tokenizer` (content tokens only: no BOS/EOS)."""
    return lambda texts: [len(e) for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


@dataclass(frozen=True)
class Fertility:
    num_tokens: int
    num_words: int
    num_bytes: int

    @property
    def tokens_per_word(self) -> float:
        return self.num_tokens / max(self.num_words, 1)

    @property
    def bytes_per_token(self) -> float:
        return self.num_bytes / max(self.num_tokens, 1)


def measure(count_tokens: Encoder, texts: Iterable[str], batch_size: int = 256) -> Fertility:
    """Fertility of one tokenizer (given as a token counter) on `texts`."""
    num_tokens = num_words = num_bytes = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal num_tokens
        num_tokens += sum(count_tokens(batch))
        batch.clear()

    for text in texts:
        num_words += len(text.split())
        num_bytes += len(text.encode("utf-8"))
        batch.append(text)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return Fertility(num_tokens, num_words, num_bytes)


def parity_ratio(tokens_per_word: Mapping[str, float]) -> float:
    """max/min tokens per word over languages: 1.0 when every language costs the same."""
    values = [v for v in tokens_per_word.values() if v > 0]
    return max(values) / min(values) if values else float("nan")
