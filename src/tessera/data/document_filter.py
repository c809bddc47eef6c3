"""Documents through the per-document steps: clean-up, quality, language id, PII, fingerprints.

    NFC -> control characters -> Gutenberg boilerplate -> quality -> language id -> PII -> digest, MinHash

Everything here depends only on the document, so shards run it independently; what depends on other
documents (dedup) happens later over files (tessera.data.scatter). Documents come in batches because
language id walks a batch at once (tessera.data.langid); each document's outcome depends on it alone.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tessera.data.config import FilterConfig
from tessera.data.dedup import Sketcher
from tessera.data.filters import normalize_nfc, quality_failure, strip_control_chars, strip_gutenberg
from tessera.data.langid import other_languages
from tessera.data.pii import redact_pii
from tessera.data.sources import RawDocument

__all__ = ["DocumentFilter", "Outcome"]


@dataclass
class Outcome:
    """What the per-document filters made of one document."""

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


class _Clock:
    """Seconds per step, summed over every document this filter has seen (for bench/)."""

    def __init__(self, seconds: Counter) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] += now - self.start
        self.start = now


class DocumentFilter:
    """Clean-up, quality, language id, PII redaction and dedup fingerprints of a batch of documents."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self.sketcher = Sketcher(cfg)
        self.seconds: Counter = Counter()

    def __call__(self, documents: list[RawDocument], language: str) -> list[Outcome]:
        """One outcome per document, in order."""
        clock = _Clock(self.seconds)
        outcomes = [self._clean(document, clock) for document in documents]
        kept = [out for out in outcomes if not out.dropped]
        if self.cfg.language_id and kept:
            texts = [out.text for out in kept]
            identified = other_languages(texts, language, self.cfg.min_language_confidence)
            clock.lap("language_id")
            for out, other in zip(kept, identified, strict=True):
                if other:
                    out.dropped, out.other_language, out.text = "language", other, ""
        for out in outcomes:
            if not out.dropped:
                self._fingerprint(out, clock)
        return outcomes

    def _clean(self, document: RawDocument, clock: _Clock) -> Outcome:
        """Clean-up and quality; the outcome carries the cleaned text, or the reason it was dropped."""
        out = Outcome(key=document.key, unit=document.unit, bytes_in=len(document.text.encode()))
        cleaned = []
        text = normalize_nfc(document.text)
        if text != document.text:
            cleaned.append("nfc_changed")
        clock.lap("nfc")
        stripped = strip_control_chars(text)
        if stripped != text:
            cleaned.append("control_chars_removed")
        clock.lap("control_chars")
        text = strip_gutenberg(stripped)
        if text != stripped:
            cleaned.append("gutenberg_boilerplate_removed")
        clock.lap("gutenberg")
        out.cleaned = tuple(cleaned)
        # Whitespace at the ends carries nothing, and must not make copies look different to dedup.
        text = text.strip()
        if not text:
            out.dropped = "empty"
            return out
        failure = quality_failure(text, self.cfg)
        clock.lap("quality")
        if failure:
            out.dropped = f"quality_{failure}"
        else:
            out.text = text
        return out

    def _fingerprint(self, out: Outcome, clock: _Clock) -> None:
        """PII redaction, then the exact digest and MinHash signature of the redacted text."""
        if self.cfg.redact_pii:
            out.text, out.redactions = redact_pii(out.text)
            clock.lap("pii")
        if self.cfg.dedup_exact:
            out.digest = self.sketcher.digest(out.text)
            clock.lap("dedup_exact")
        if self.cfg.dedup_near:
            out.signature = self.sketcher.signature(out.text)
            clock.lap("minhash")
