"""Throughput of the data stage on the demo corpus, and where its time goes.

    python bench/data_prepare.py [--config config.yaml] [--max-documents N] [--rounds 3]

Runs `prepare_into` (the whole stage: read, clean-up, filters, dedup, split, compressed shards, manifest)
into a temporary folder, `--rounds` times in one process, and reports the median round: documents/s and
MB/s of input text, then the seconds and share of each step. The first round also pays for hashing the
218 MB bible.db and loading the language-id model; later rounds reuse both (as a long run would), so the
median is the steady state. Records the table in bench/RESULTS.md (section data_prepare).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, update_section  # noqa: E402

from tessera.config import load  # noqa: E402
from tessera.data.prepare import prepare_into  # noqa: E402

# Steps in pipeline order (tessera.data.prepare), with what each covers.
STEPS = {
    "hash_inputs": "sha256 of input files (cached per process after the first round)",
    "read": "SQLite query / file reads, verses joined into chapters",
    "nfc": "Unicode NFC",
    "control_chars": "control/zero-width characters, line ends",
    "gutenberg": "Project Gutenberg header/footer",
    "quality": "length, symbol and digit ratios, repeated lines",
    "language_id": "py3langid on each document",
    "pii": "e-mail, phone, IBAN, codice fiscale redaction",
    "dedup_exact": "sha256 of the text",
    "dedup_near": "MinHash (128 permutations) + LSH query/insert",
    "write": "split hash, JSON, zstd compression",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--max-documents", type=int, help="override every source's max_documents")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cfg = load(args.config)
    sizing = ""
    if args.max_documents:
        sizing = f" with max_documents={args.max_documents} for every source"
        for source in cfg.data.sources:
            source.max_documents = args.max_documents

    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            result = prepare_into(cfg, Path(tmp) / f"round{i}")
            rounds.append((sum(result.seconds.values()), dict(result.seconds), result.manifest["totals"]))
    total_s = statistics.median(r[0] for r in rounds)
    steady = sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]
    seconds, totals = steady[1], steady[2]
    docs_per_s = totals["documents_in"] / total_s
    mb_per_s = totals["bytes_in"] / 1e6 / total_s
    round_totals = ", ".join(f"{r[0]:.2f}" for r in rounds)

    lines = [
        "## Data stage (tessera data prepare) on the demo corpus",
        "",
        machine(),
        "",
        f"Config {args.config}{sizing}: {len(cfg.data.sources)} sources, {totals['documents_in']} "
        f"documents in ({totals['bytes_in'] / 1e6:.2f} MB of text), {totals['documents_out']} out. "
        f"Median of {args.rounds} rounds in one process (round totals: {round_totals} s).",
        "",
        f"**{docs_per_s:.0f} documents/s, {mb_per_s:.2f} MB/s** of input text ({total_s:.2f} s per round).",
        "",
        "| step | what | seconds | share of stage |",
        "|---|---|---|---|",
    ]
    for step, what in STEPS.items():
        value = seconds.get(step, 0.0)
        lines.append(f"| {step} | {what} | {value:.3f} | {value / total_s:.1%} |")
    lines.append(f"| total | | {total_s:.3f} | 100.0% |")
    table = "\n".join(lines)
    print(table)
    update_section("data_prepare", table)


if __name__ == "__main__":
    main()
