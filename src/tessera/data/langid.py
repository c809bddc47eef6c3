"""Language identification with py3langid (its model ships inside the package: no download).

py3langid speaks ISO 639-1 (`it`); tessera speaks ISO 639-3 (`ita`). A document is "another language"
only when the identifier is confident about it, so short or mixed text keeps its declared language.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["identify", "other_language", "ISO639_1_TO_3", "KNOWN_LANGUAGES"]

# ISO 639-1 -> 639-3 for the languages tessera knows how to identify and report on.
ISO639_1_TO_3 = {"it": "ita", "en": "eng", "fr": "fra", "de": "deu", "es": "spa", "pt": "por", "ca": "cat",
                 "nl": "nld", "pl": "pol", "ro": "ron", "sl": "slv", "hr": "hrv"}
KNOWN_LANGUAGES = tuple(ISO639_1_TO_3.values())
"""The ISO 639-3 codes a data source may declare."""

# Identify on at most two samples of this many characters, from the start and the middle: enough for a
# confident call (py3langid is near-certain on a paragraph), and a whole book costs no more than a page;
# the middle sample keeps a foreign preface or licence header from deciding alone.
_SAMPLE_CHARS = 1500


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(text: str) -> tuple[str, float]:
    """(language code, probability); ISO 639-3 where tessera knows the language, else py3langid's code."""
    if len(text) > 2 * _SAMPLE_CHARS:
        middle = len(text) // 2
        text = text[:_SAMPLE_CHARS] + "\n" + text[middle:middle + _SAMPLE_CHARS]
    code, probability = _identifier().classify(text)
    return ISO639_1_TO_3.get(code, code), float(probability)


def other_language(text: str, declared: str, min_confidence: float) -> str | None:
    """The language the text is in, when that is not `declared` with at least `min_confidence`; else None."""
    code, probability = identify(text)
    return code if code != declared and probability >= min_confidence else None
