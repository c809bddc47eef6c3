"""The `tokenizer:` section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TokenizerConfig"]


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192
    """Vocabulary size including special tokens."""
    language_weights: dict[str, float] = field(default_factory=dict)
    """Sampling weight per language for the BPE training sample; empty = balanced automatically."""
    reference: dict[str, str] = field(default_factory=dict)
    """Reference tokenizers for the fertility report: name -> tokenizer.json path or `mistral-common`."""
    flores_dir: Path | None = None
    """FLORES-200 folder (with devtest/); absent -> that part of the report is skipped with a note."""
