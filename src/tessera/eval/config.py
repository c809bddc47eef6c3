"""The `eval:` section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EvalConfig"]


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=list)
    """lm-eval task names (tessera's local tasks or upstream ones)."""
    task_data_dir: Path | None = None
    """Folder with xcopa/ and belebele/ JSONL files for the local tasks; absent -> tasks skipped."""
