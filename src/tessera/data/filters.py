"""Per-document clean-up and quality filters: pure functions of one text, each testable on its own.

Clean-up (the document stays, the text changes): Unicode NFC, control characters, Project Gutenberg
header/footer. Quality (the document is dropped): too short, too many symbols or digits, repeated lines.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np

from tessera.data.config import FilterConfig

__all__ = ["normalize_nfc", "strip_control_chars", "strip_gutenberg", "quality_failure", "QUALITY_FILTERS"]

# Names of the quality checks, in the order they run; each is a manifest counter `quality_<name>`.
QUALITY_FILTERS = ("too_short", "symbol_ratio", "digit_ratio", "repeated_lines")

# C0/C1 control characters except tab and newline, plus zero-width and BOM characters that only confuse
# tokenizers. Carriage returns become newlines first (Windows and old Mac line ends).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028\u2029\ufeff]")
_NEWLINES = re.compile("\r\n?")

_GUTENBERG_START = re.compile(
    r"^\s*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$|^\s*\*END\*THE SMALL PRINT.*$",
    re.IGNORECASE | re.MULTILINE,
)
_GUTENBERG_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the |this )?Project Gutenberg|"
    r"Ende dieses Projekt Gutenberg).*$",
    re.IGNORECASE | re.MULTILINE,
)

# Punctuation that ordinary prose uses; anything else that is not a letter, digit, mark or space counts
# as a symbol (markup, box drawing, emoji, tables of math).
_PROSE_PUNCTUATION = set(".,;:!?'\"-()[]«»“”‘’„‚–—…/&%")


def normalize_nfc(text: str) -> str:
    """Unicode NFC: one code point sequence per visible character, so equal texts compare equal."""
    return unicodedata.normalize("NFC", text)


def strip_control_chars(text: str) -> str:
    """Remove control, zero-width and BOM characters; normalise line ends to '\\n'."""
    return _CONTROL.sub("", _NEWLINES.sub("\n", text))


def strip_gutenberg(text: str) -> str:
    """Cut the Project Gutenberg header (up to the START line) and footer (from the first END line)."""
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[:end.start()]
    return text.strip("\n") if (start or end) else text


def _repeated_line_ratio(text: str) -> float:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        return 0.0
    seen: set[str] = set()
    repeats = 0
    for line in lines:
        if line in seen:
            repeats += 1
        seen.add(line)
    return repeats / len(lines)


def quality_failure(text: str, cfg: FilterConfig) -> str | None:
    """The name of the first quality check the text fails (see QUALITY_FILTERS), or None if it passes."""
    if len(text.strip()) < cfg.min_chars:
        return "too_short"
    counts = _character_classes(text)
    total = max(len(text) - counts[_SPACE], 1)
    if counts[_SYMBOL] / total > cfg.max_symbol_ratio:
        return "symbol_ratio"
    if counts[_DIGIT] / total > cfg.max_digit_ratio:
        return "digit_ratio"
    if _repeated_line_ratio(text) > cfg.max_repeated_line_ratio:
        return "repeated_lines"
    return None


_SPACE, _PROSE, _DIGIT, _SYMBOL = range(4)


def _character_class(c: str) -> int:
    if c.isspace():
        return _SPACE
    if c.isdigit():
        return _DIGIT
    if c.isalnum() or c in _PROSE_PUNCTUATION or unicodedata.category(c).startswith("M"):
        return _PROSE
    return _SYMBOL


# The class of every code point of the Basic Multilingual Plane, so that a text is classified by one
# table lookup per character in numpy instead of a Python test per character (the quality filter was a
# tenth of the data stage's time); the few characters above it are classified one by one.
@lru_cache(maxsize=1)
def _bmp_classes() -> np.ndarray:
    return np.array([_character_class(chr(i)) for i in range(0x10000)], dtype=np.uint8)


def _character_classes(text: str) -> np.ndarray:
    """Number of characters of each class (_SPACE, _PROSE, _DIGIT, _SYMBOL) in the text."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    low = points < 0x10000
    counts = np.bincount(_bmp_classes()[points[low]], minlength=4)
    for point in points[~low].tolist():
        counts[_character_class(chr(point))] += 1
    return counts
