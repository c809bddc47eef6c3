"""A multilingual web-like corpus for bench/data_scale.py: FineWeb-2's parquet schema, text from a word-level
Markov model of each language's books in ../shared/data/corpus (so language id passes and no two documents
share more than chance n-grams), with near-duplicates planted at known places.

Generation is vectorised over a batch of documents (one Markov step for all of them at once), so a GB
takes minutes, not hours. Deterministic for a seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LANGUAGES = {"ita": ("it", "ita_Latn"), "eng": ("en", "eng_Latn"), "fra": ("fr", "fra_Latn"),
             "spa": ("es", "spa_Latn"), "deu": ("de", "deu_Latn")}
WORDS_PER_LINE = 40
BATCH = 1000
ROWS_PER_GROUP = 500
DUPLICATE_EVERY = 100
"""One document in this many is a near-duplicate of an earlier one (one word replaced)."""
RESERVOIR = 2000
"""Earlier documents a duplicate may copy: a uniform sample of all before it (so copies cross shards)."""


class WordMarkov:
    """Order-1 word Markov chain: the next word is drawn among the words that followed this one."""

    def __init__(self, text: str) -> None:
        words = text.split()
        self.vocab, ids = np.unique(np.array(words), return_inverse=True)
        current, following = ids[:-1], ids[1:]
        order = np.argsort(current, kind="stable")
        self.successors = following[order]
        self.starts = np.searchsorted(current[order], np.arange(len(self.vocab)))
        self.counts = np.diff(np.append(self.starts, len(current)))

    def documents(self, rng: np.random.Generator, lengths: np.ndarray) -> list[str]:
        state = rng.integers(0, len(self.vocab), len(lengths))
        steps = np.empty((len(lengths), int(lengths.max())), dtype=np.int64)
        for t in range(steps.shape[1]):
            steps[:, t] = state
            count = self.counts[state]
            pick = self.starts[state] + (rng.random(len(state)) * np.maximum(count, 1)).astype(np.int64)
            restart = rng.integers(0, len(self.vocab), len(state))
            state = np.where(count > 0, self.successors[np.minimum(pick, len(self.successors) - 1)], restart)
        texts = []
        for row, length in zip(steps, lengths.tolist(), strict=True):
            words = self.vocab[row[:length]].tolist()
            lines = [" ".join(words[i:i + WORDS_PER_LINE]) for i in range(0, length, WORDS_PER_LINE)]
            texts.append("\n".join(lines))
        return texts


@dataclass
class Corpus:
    files: dict[str, list[Path]]
    """Language -> its parquet files, in order."""
    planted: list[tuple[str, str]]
    """(source id of the original, source id of its near-duplicate)."""
    text_bytes: dict[str, int]


def _write(path: Path, texts: list[str], ids: list[str], code: str) -> None:
    n = len(texts)
    language, script = code.split("_")
    table = pa.table({
        "text": texts, "id": ids, "dump": ["CC-MAIN-2024-10"] * n,
        "url": [f"https://example.org/{i}" for i in ids], "date": ["2024-02-21T00:00:00Z"] * n,
        "file_path": ["s3://commoncrawl/crawl-data/CC-MAIN-2024-10/x.warc.gz"] * n,
        "language": [language] * n, "language_score": pa.array([0.99] * n, type=pa.float64()),
        "language_script": [script] * n, "minhash_cluster_size": pa.array([1] * n, type=pa.int64()),
        "top_langs": [f'{{"{code}_score": 0.99}}'] * n,
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=ROWS_PER_GROUP)


def _language(corpus_dir: Path, out: Path, lang: str, target_bytes: int, file_bytes: int, seed: int
              ) -> tuple[list[Path], list[tuple[str, str]], int]:
    folder, code = LANGUAGES[lang]
    books = sorted(p for p in (corpus_dir / folder).iterdir() if p.suffix in (".txt", ".md") and p.is_file())
    model = WordMarkov("\n".join(p.read_text(encoding="utf-8") for p in books))
    rng = np.random.default_rng(seed)
    files, planted, reservoir = [], [], []
    written, number, seen = 0, 0, 0
    texts, ids, file_size = [], [], 0
    while written < target_bytes:
        for text in model.documents(rng, rng.integers(300, 900, BATCH)):
            doc_id = f"<urn:uuid:{code}-{number:09d}>"
            if number % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and reservoir:
                original_id, original = reservoir[int(rng.integers(len(reservoir)))]
                words = original.split(" ")
                words[int(rng.integers(len(words)))] = str(model.vocab[int(rng.integers(len(model.vocab)))])
                text = " ".join(words)
                planted.append((original_id, doc_id))
            elif len(reservoir) < RESERVOIR:
                reservoir.append((doc_id, text))
            elif (slot := int(rng.integers(seen + 1))) < RESERVOIR:
                reservoir[slot] = (doc_id, text)
            seen += 1
            texts.append(text)
            ids.append(doc_id)
            size = len(text.encode())
            written, file_size, number = written + size, file_size + size, number + 1
            if file_size >= file_bytes or written >= target_bytes:
                files.append(out / code / f"{len(files):03d}_00000.parquet")
                _write(files[-1], texts, ids, code)
                texts, ids, file_size = [], [], 0
            if written >= target_bytes:
                break
    return files, planted, written


def generate(corpus_dir: Path, out: Path, size_mb: float, file_mb: float, seed: int = 1) -> Corpus:
    """Write (or reuse) `size_mb` MB of text, equal per language, in files of about `file_mb` MB."""
    record = out / "corpus.json"
    if record.exists():
        saved = json.loads(record.read_text())
        if saved["size_mb"] == size_mb and saved["file_mb"] == file_mb:
            return Corpus({k: [Path(p) for p in v] for k, v in saved["files"].items()},
                          [tuple(p) for p in saved["planted"]], saved["text_bytes"])
    files, planted, text_bytes = {}, [], {}
    per_language = int(size_mb * 1e6 / len(LANGUAGES))
    for i, lang in enumerate(LANGUAGES):
        files[lang], pairs, text_bytes[lang] = _language(corpus_dir, out, lang, per_language,
                                                         int(file_mb * 1e6), seed + i)
        planted += pairs
    record.write_text(json.dumps({"size_mb": size_mb, "file_mb": file_mb, "planted": planted,
                                  "files": {k: [str(p) for p in v] for k, v in files.items()},
                                  "text_bytes": text_bytes}))
    return Corpus(files, planted, text_bytes)
