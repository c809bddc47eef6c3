"""One document through the per-document steps: clean-up, quality, language id, PII, fingerprints.

    NFC -> control characters -> Gutenberg boilerplate -> quality -> language id -> PII -> digest, MinHash

Everything here depends only on the document, so shards run it independently; what depends on other
documents (dedup) happens later over files (tessera.data.scatter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tessera.data.config import FilterConfig
from tessera.data.dedup import Sketcher
from tessera.data.filters import normalize_nfc, quality_failure, strip_control_chars, strip_gutenberg
from tessera.data.langid import other_language
from tessera.data.pii import redact_pii
from tessera.data.sources import RawDocument

__all__ = ["DocumentFilter", "Outcome"]


@dataclass
class Outcome:
    """What the per-document filters made of one document (computed in a worker process)."""

    key: str
    unit: str | None
    bytes_in: int
    text: str = ""
    """The cleaned, redacted text; empty when the document was dropped."""
    dropped: str | None = None
    """Drop reason (a manifest `dropped` key) of the filters before dedup; None if it passed them."""
    other_language: str | None = None
    cleaned: tuple[str, ...] = ()
    """Clean-up counters (manifest `cleanup` keys) that changed this document."""
    redactions: dict[str, int] = field(default_factory=dict)
    digest: bytes = b""
    signature: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class DocumentFilter:
    """Clean-up, quality, language id, PII redaction and dedup fingerprints of one document at a time."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self.sketcher = Sketcher(cfg)

    def __call__(self, document: RawDocument, language: str) -> Outcome:
        out = Outcome(key=document.key, unit=document.unit, bytes_in=len(document.text.encode()))
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            out.seconds[step] = out.seconds.get(step, 0.0) + now - clock
            clock = now

        cleaned = []
        text = normalize_nfc(document.text)
        if text != document.text:
            cleaned.append("nfc_changed")
        lap("nfc")
        stripped = strip_control_chars(text)
        if stripped != text:
            cleaned.append("control_chars_removed")
        lap("control_chars")
        text = strip_gutenberg(stripped)
        if text != stripped:
            cleaned.append("gutenberg_boilerplate_removed")
        lap("gutenberg")
        out.cleaned = tuple(cleaned)
        # Whitespace at the ends carries nothing, and must not make copies look different to dedup.
        text = text.strip()
        if not text:
            out.dropped = "empty"
            return out
        failure = quality_failure(text, self.cfg)
        lap("quality")
        if failure:
            out.dropped = f"quality_{failure}"
            return out
        if self.cfg.language_id:
            identified = other_language(text, language, self.cfg.min_language_confidence)
            lap("language_id")
            if identified:
                out.dropped, out.other_language = "language", identified
                return out
        if self.cfg.redact_pii:
            text, out.redactions = redact_pii(text)
            lap("pii")
        out.text = text
        if self.cfg.dedup_exact:
            out.digest = self.sketcher.digest(text)
            lap("dedup_exact")
        if self.cfg.dedup_near:
            out.signature = self.sketcher.signature(text)
            lap("minhash")
        return out
