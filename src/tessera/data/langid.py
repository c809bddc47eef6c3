"""Language identification with py3langid (its model ships inside the package: no download).

py3langid speaks ISO 639-1 (`it`); tessera speaks ISO 639-3 (`ita`). A document is "another language"
only when the identifier is confident about it, so short or mixed text keeps its declared language.

py3langid walks its byte automaton one document at a time in a Python loop, which made language id half
of the data stage's per-document time. `identify_batch` walks the same automaton for a batch of
documents at once (one numpy step per byte position, all documents in lockstep) and scores them with one
sparse product: the same model, features and decision as `LanguageIdentifier.classify`, several times
faster (bench/data_langid.py); tests/data/test_langid.py holds it equal to py3langid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.sparse import csr_matrix

__all__ = ["identify", "identify_batch", "other_languages", "ISO639_1_TO_3", "KNOWN_LANGUAGES"]

# ISO 639-1 -> 639-3 for the languages tessera knows how to identify and report on.
ISO639_1_TO_3 = {"it": "ita", "en": "eng", "fr": "fra", "de": "deu", "es": "spa", "pt": "por", "ca": "cat",
                 "nl": "nld", "pl": "pol", "ro": "ron", "sl": "slv", "hr": "hrv"}
KNOWN_LANGUAGES = tuple(ISO639_1_TO_3.values())
"""The ISO 639-3 codes a data source may declare."""

# Identify on at most two samples of this many characters, from the start and the middle: enough for a
# confident call (py3langid is near-certain on a paragraph), and a whole book costs no more than a page;
# the middle sample keeps a foreign preface or licence header from deciding alone.
_SAMPLE_CHARS = 1500
# Documents walked together: sorted by length first, so that a batch's short documents do not idle
# through its longest one's bytes.
_BATCH = 512


@dataclass(frozen=True)
class _Model:
    """py3langid's model as numpy arrays: byte automaton, feature per state, naive Bayes tables."""

    next_move: np.ndarray
    row_base: np.ndarray
    feature_of_state: np.ndarray
    feature_class: np.ndarray
    class_prior: np.ndarray
    classes: list[str]
    alias_pairs: list[tuple[int, int]]
    encode: Callable[[str], bytes]
    """py3langid's own text -> bytes step (upper case lowered, NFC, UTF-8)."""


@lru_cache(maxsize=1)
def _model() -> _Model:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _Model(
        # A view of py3langid's own array (no copy: it is the largest part of the model).
        next_move=np.frombuffer(ident.tk_nextmove, dtype=f"u{ident.tk_nextmove.itemsize}"),
        row_base=np.asarray(ident._rowbase, dtype=np.int64),
        feature_of_state=np.asarray(ident.tk_output, dtype=np.int64),
        feature_class=np.asarray(ident.nb_ptc, dtype=np.float32),
        class_prior=np.asarray(ident.nb_pc, dtype=np.float32),
        classes=list(ident.nb_classes), alias_pairs=list(ident._alias_pairs), encode=ident._encode)


def _sample(text: str) -> str:
    if len(text) > 2 * _SAMPLE_CHARS:
        middle = len(text) // 2
        return text[:_SAMPLE_CHARS] + "\n" + text[middle:middle + _SAMPLE_CHARS]
    return text


def _walk(model: _Model, encoded: list[bytes]) -> csr_matrix:
    """(documents, features) log1p of each feature's count: the automaton over all documents at once."""
    lengths = np.array([len(b) for b in encoded], dtype=np.int64)
    width = int(lengths.max(initial=0))
    data = np.zeros((len(encoded), width), dtype=np.uint8)
    for row, raw in enumerate(encoded):
        data[row, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    state = np.zeros(len(encoded), dtype=np.int64)
    features = np.empty((width, len(encoded)), dtype=np.int64)
    for position in range(width):
        state = model.next_move[model.row_base[state] + data[:, position]]
        features[position] = model.feature_of_state[state]
    inside = np.arange(width)[:, None] < lengths[None, :]
    position, doc = np.nonzero(inside & (features >= 0))
    num_features = len(model.feature_class)
    keys, counts = np.unique(doc * num_features + features[position, doc], return_counts=True)
    return csr_matrix((np.log1p(counts.astype(np.float32)), (keys // num_features, keys % num_features)),
                      shape=(len(encoded), num_features))


def _decide(model: _Model, encoded: list[bytes]) -> list[tuple[str, float]]:
    visits = _walk(model, encoded)
    scores = np.asarray(visits @ model.feature_class, dtype=np.float32) + model.class_prior
    # py3langid: no feature at all is a uniform score (it abstains), not the prior alone.
    scores[np.diff(visits.indptr) == 0] = 0.0
    results = []
    for row, raw in zip(scores, encoded, strict=True):
        row *= np.float32(1.0 / math.sqrt(len(raw) or 1))
        np.exp(row - row.max(), out=row)
        row /= row.sum()
        for first, alias in model.alias_pairs:
            row[first] += row[alias]
            row[alias] = 0.0
        best = int(row.argmax())
        results.append((model.classes[best], float(row[best])))
    return results


def identify_batch(texts: list[str]) -> list[tuple[str, float]]:
    """(language code, probability) of each text, in order: ISO 639-3 where tessera knows the language,
    else py3langid's code. Each text's answer depends on that text alone, not on the batch."""
    model = _model()
    encoded = [model.encode(_sample(text)) for text in texts]
    results: list[tuple[str, float]] = [("", 0.0)] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), _BATCH):
        chunk = order[start:start + _BATCH]
        for i, (code, probability) in zip(chunk, _decide(model, [encoded[i] for i in chunk]), strict=True):
            results[i] = (ISO639_1_TO_3.get(code, code), probability)
    return results


def identify(text: str) -> tuple[str, float]:
    """(language code, probability) of one text (see `identify_batch`)."""
    return identify_batch([text])[0]


def other_languages(texts: list[str], declared: str, min_confidence: float) -> list[str | None]:
    """For each text, the language it is in when that is not `declared` with at least `min_confidence`;
    else None."""
    return [code if code != declared and probability >= min_confidence else None
            for code, probability in identify_batch(texts)]
