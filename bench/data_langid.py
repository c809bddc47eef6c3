"""Language id side by side: py3langid's own classifier, one document at a time, and tessera's batch walk of
the same model (tessera.data.langid.identify_batch), on the same texts in one process.

    python bench/data_langid.py                 # FLORES devtest (10 languages) + generated web-like pages

Texts: every FLORES-200 devtest line of ../shared/data/eval (sentences), and pages of 300-900 words
generated per language by bench/_synthetic_corpus.py (documents as the data stage sees them). Prints
seconds, texts/s, the speed-up, and how many answers differ (code, or probability by more than 1e-5).
Interleaved rounds, median; the default threads, as a shard job runs. Records bench/RESULTS.md (section
data_langid).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow.parquet as pq  # noqa: E402
from _results import machine, update_section  # noqa: E402
from _synthetic_corpus import generate  # noqa: E402

from tessera.data.langid import ISO639_1_TO_3, _sample, identify_batch  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _texts(pages_mb: float) -> dict[str, list[str]]:
    flores = SHARED / "eval" / "flores200" / "devtest"
    if not flores.is_dir():
        raise SystemExit(f"{flores} is absent: this benchmark needs ../shared/data (see its SOURCES.md)")
    sentences = [line for path in sorted(flores.glob("*.devtest"))
                 for line in path.read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = generate(SHARED / "corpus", Path(tmp), pages_mb, 64)
        pages = [text for files in corpus.files.values() for path in files
                 for text in pq.read_table(path, columns=["text"]).column("text").to_pylist()]
    return {"FLORES devtest sentences": sentences, "generated pages": pages}


def _reference():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages-mb", type=float, default=5.0, help="generated pages (MB of text)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reference = _reference()
    identify_batch(["warm-up"])
    lines = [machine(), "", "| texts | count | MB | py3langid s | batch walk s | texts/s (batch) | speed-up "
             "| answers that differ |", "|---|---|---|---|---|---|---|---|"]
    for name, texts in _texts(args.pages_mb).items():
        samples = [_sample(text) for text in texts]
        one, batch = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            want = [reference.classify(sample) for sample in samples]
            one.append(time.perf_counter() - start)
            start = time.perf_counter()
            got = identify_batch(texts)
            batch.append(time.perf_counter() - start)
        differ = sum(1 for (code, p), (ref_code, ref_p) in zip(got, want, strict=True)
                     if code != ISO639_1_TO_3.get(ref_code, ref_code) or abs(p - ref_p) > 1e-5)
        t_one, t_batch = statistics.median(one), statistics.median(batch)
        mb = sum(len(t.encode()) for t in texts) / 1e6
        lines.append(f"| {name} | {len(texts)} | {mb:.1f} | {t_one:.2f} | {t_batch:.2f} | "
                     f"{len(texts) / t_batch:.0f} | {t_one / t_batch:.1f}x | {differ} |")
    lines += ["", f"Median of {args.rounds} interleaved rounds, one process; py3langid {_version()}. "
              "Both sample a long text the same way (two 1500-character pieces)."]
    table = "## Language id: py3langid vs the batch walk (bench/data_langid.py)\n\n" + "\n".join(lines)
    print(table)
    update_section("data_langid", table)


def _version() -> str:
    from importlib.metadata import version

    return version("py3langid")


if __name__ == "__main__":
    main()
