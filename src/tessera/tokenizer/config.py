"""The `tokenizer:` section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tessera.errors import ConfigError

__all__ = ["TokenizerConfig"]

# Byte-level BPE starts from 256 byte tokens; a vocabulary must hold them, the special tokens and some merges.
_MIN_VOCAB = 512


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192
    """Vocabulary size including special tokens (demo 8192; cluster presets 65536 to 131072)."""
    num_reserved_tokens: int = 13
    """Reserved special tokens `<|reserved_N|>` after BOS/EOS/PAD, for chat formats added later without
    resizing the embedding."""
    sample_bytes: int = 64_000_000
    """UTF-8 bytes of training text the BPE trainer sees, shared among languages by their weights."""
    balance_rounds: int = 3
    """Fertility-balancing rounds: each trains a trial tokenizer, measures tokens per word per language on
    held-out training text and upweights the languages that split worse. 0 = equal bytes per language."""
    language_weights: dict[str, float] = field(default_factory=dict)
    """Fixed sampling weight per language for the BPE sample; empty = balanced automatically."""
    reference: dict[str, str] = field(default_factory=dict)
    """Reference tokenizers for the fertility report: name -> tokenizer.json path or `mistral-common`."""
    flores_dir: Path | None = None
    """FLORES-200 folder (with devtest/); absent -> that part of the report is skipped with a note."""

    @property
    def special_tokens(self) -> list[str]:
        """Special tokens in id order: BOS 0, EOS 1, PAD 2, then the reserved ones."""
        return ["<|bos|>", "<|eos|>", "<|pad|>"] + [
            f"<|reserved_{i}|>" for i in range(self.num_reserved_tokens)
        ]

    def check(self, where: str) -> None:
        if self.vocab_size < _MIN_VOCAB + len(self.special_tokens):
            raise ConfigError(
                f"{where}.vocab_size: {self.vocab_size} is too small; byte-level BPE needs at least "
                f"{_MIN_VOCAB + len(self.special_tokens)} (256 bytes + special tokens + merges)"
            )
        if self.num_reserved_tokens < 0:
            raise ConfigError(f"{where}.num_reserved_tokens: {self.num_reserved_tokens} must be >= 0")
        if self.sample_bytes < 1_000:
            raise ConfigError(f"{where}.sample_bytes: {self.sample_bytes} must be at least 1000")
        if self.balance_rounds < 0:
            raise ConfigError(f"{where}.balance_rounds: {self.balance_rounds} must be >= 0")
        for lang, weight in self.language_weights.items():
            if weight < 0:
                raise ConfigError(f"{where}.language_weights.{lang}: {weight} must be >= 0")
        if self.language_weights and sum(self.language_weights.values()) <= 0:
            raise ConfigError(f"{where}.language_weights: at least one weight must be positive")
        for name, ref in self.reference.items():
            if ref != "mistral-common" and not ref.endswith(".json"):
                raise ConfigError(
                    f"{where}.reference.{name}: {ref!r} must be a tokenizer.json path or `mistral-common`"
                )
