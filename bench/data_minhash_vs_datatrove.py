"""MinHash signature stage side by side: tessera's (Sketcher + LSH band keys, as prepare_shard runs it) and
datatrove's MinhashDedupSignature (its stage 1 of 4, stock configuration), on the same documents.

    python bench/data_minhash_vs_datatrove.py [--mb 4] [--rounds 3]

The documents are bench/_synthetic_corpus.py's Italian and English text. Both sides run in this process,
one core, rounds interleaved; the median is reported. datatrove writes its per-bucket signature files
(sorted), tessera its keys sorted per band and the signatures (the contract of the next stage on each
side). datatrove's default word tokenizer needs spaCy; both sides split words with the same regex here.
Records the table in bench/RESULTS.md (section data_minhash).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _results import machine, update_section  # noqa: E402
from _synthetic_corpus import WordMarkov  # noqa: E402

from tessera.data.config import FilterConfig  # noqa: E402
from tessera.data.dedup import Sketcher, band_keys, lsh_shape  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"


def documents(megabytes: float) -> list[str]:
    texts: list[str] = []
    rng = np.random.default_rng(1)
    for folder in ("it", "en"):
        books = sorted(p for p in (CORPUS / folder).iterdir() if p.suffix == ".txt")
        model = WordMarkov("\n".join(p.read_text(encoding="utf-8") for p in books))
        size = 0
        while size < megabytes * 1e6 / 2:
            batch = model.documents(rng, rng.integers(300, 900, 200))
            texts += batch
            size += sum(len(t.encode()) for t in batch)
    return texts


def tessera_stage(texts: list[str], out: Path) -> None:
    cfg = FilterConfig()
    sketcher = Sketcher(cfg)
    signatures = np.array([sketcher.signature(t) for t in texts], dtype=np.uint32)
    bands, rows = lsh_shape(cfg)
    keys = band_keys(signatures, bands, rows)
    np.save(out / "keys.npy", np.sort(keys, axis=1))
    np.save(out / "signatures.npy", signatures)


def datatrove_stage(texts: list[str], out: Path) -> None:
    import re

    import xxhash
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
    from datatrove.utils.word_tokenizers import WordTokenizer

    class RegexWords(WordTokenizer):
        """tessera's word rule, instead of datatrove's default spaCy tokenizer (not installed)."""

        words = re.compile(r"\w+")

        def word_tokenize(self, text: str) -> list[str]:
            return self.words.findall(text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [m.span() for m in self.words.finditer(text)]

    docs = (Document(text=t, id=str(i)) for i, t in enumerate(texts))
    stage = MinhashDedupSignature(output_folder=str(out), language=RegexWords())
    # datatrove 0.10.1 passes str to xxhash, which the installed xxhash refuses: encode first.
    stage._hash_func = lambda text: xxhash.xxh64_intdigest(text.encode())
    stage.run(docs, rank=0, world_size=1)  # a terminal step: writes its files, yields nothing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = documents(args.mb)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    stages = {"tessera (Sketcher, 9x13 LSH keys)": tessera_stage,
              "datatrove 0.10 MinhashDedupSignature (14x8, xxhash 64-bit, regex words)": datatrove_stage}
    seconds: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.rounds):
        for name, stage in stages.items():
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                stage(texts, Path(tmp))
                seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds[next(iter(stages))])
    lines = ["## MinHash signature stage: tessera vs datatrove (bench/data_minhash_vs_datatrove.py)", "",
             machine(), "",
             f"{len(texts)} documents, {megabytes:.1f} MB (Italian and English Markov text), one core, "
             f"median of {args.rounds} interleaved rounds, signature files written.", "",
             "| stage | seconds | MB/s | time vs tessera |", "|---|---|---|---|"]
    for name, values in seconds.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.2f} | {megabytes / median:.2f} | {median / base:.2f}x |")
    table = "\n".join(lines)
    print(table)
    update_section("data_minhash", table)


if __name__ == "__main__":
    main()
