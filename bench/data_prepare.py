"""Throughput of the data stage on the demo corpus, and where its time goes.

    python bench/data_prepare.py [--config config.yaml] [--max-documents N] [--rounds 3] [--workers 1,2]

Runs `prepare_into` (the whole stage: read, clean-up, filters, dedup, split, compressed shards, manifest)
into a temporary folder, `--rounds` times for each worker count (interleaved, in one process), and reports
the median run per worker count: documents/s, MB/s of input text, speed-up; then the seconds and share of
each step. The first run also pays for hashing the 218 MB bible.db (cached afterwards, as in a long run).
Records the tables in bench/RESULTS.md (section data_prepare).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, update_section  # noqa: E402

from tessera.config import load  # noqa: E402
from tessera.data.prepare import prepare_into  # noqa: E402

# Steps in pipeline order (tessera.data.prepare), with what each covers.
STEPS = {
    "hash_inputs": "sha256 of input files (cached per process after the first run)",
    "read": "SQLite query / file reads, verses joined into chapters",
    "nfc": "Unicode NFC",
    "control_chars": "control/zero-width characters, line ends",
    "gutenberg": "Project Gutenberg header/footer",
    "quality": "length, symbol and digit ratios, repeated lines",
    "language_id": "py3langid on each document",
    "pii": "e-mail, phone, IBAN, codice fiscale redaction",
    "dedup_exact": "sha256 of the text",
    "minhash": "word n-gram hashes and MinHash signature (128 permutations)",
    "dedup_decide": "exact-digest lookup, LSH query/insert, Jaccard check",
    "write": "split hash, JSON, zstd compression",
}

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--max-documents", type=int, help="override every source's max_documents")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, interleaved per round")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]

    cfg = load(args.config)
    sizing = ""
    if args.max_documents:
        sizing = f" with max_documents={args.max_documents} for every source"
        for source in cfg.data.sources:
            source.max_documents = args.max_documents

    # Interleaved: round r runs every worker count once, so machine load drifts hit all alike.
    runs: dict[int, list[tuple[float, dict[str, float], dict]]] = {w: [] for w in worker_counts}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for workers in worker_counts:
                start = time.perf_counter()
                result = prepare_into(cfg, Path(tmp) / f"round{i}-w{workers}", workers)
                runs[workers].append((time.perf_counter() - start, dict(result.seconds),
                                      result.manifest["totals"]))

    def median_run(workers: int) -> tuple[float, dict[str, float], dict]:
        return sorted(runs[workers], key=lambda r: r[0])[len(runs[workers]) // 2]

    base_s, seconds, totals = median_run(worker_counts[0])
    lines = [
        "## Data stage (tessera data prepare) on the demo corpus",
        "",
        machine(),
        "",
        f"Config {args.config}{sizing}: {len(cfg.data.sources)} sources, {totals['documents_in']} "
        f"documents in ({totals['bytes_in'] / 1e6:.2f} MB of text), {totals['documents_out']} out. "
        f"Median wall time of {args.rounds} rounds in one process, worker counts interleaved; a pool of "
        "worker processes is started (spawn) per run and its start-up is included.",
        "",
        "| workers | seconds per run | documents/s | MB/s | speed-up vs first |",
        "|---|---|---|---|---|",
    ]
    for workers in worker_counts:
        wall = median_run(workers)[0]
        lines.append(f"| {workers} | {wall:.2f} | {totals['documents_in'] / wall:.0f} | "
                     f"{totals['bytes_in'] / 1e6 / wall:.2f} | {base_s / wall:.2f} |")
    step_total = sum(seconds.values())
    lines += [
        "",
        f"Time per step with {worker_counts[0]} worker(s) (median run; seconds summed over documents):",
        "",
        "| step | what | seconds | share |",
        "|---|---|---|---|",
    ]
    for step, what in STEPS.items():
        value = seconds.get(step, 0.0)
        lines.append(f"| {step} | {what} | {value:.3f} | {value / step_total:.1%} |")
    lines.append(f"| total | | {step_total:.3f} | 100.0% |")
    table = "\n".join(lines)
    print(table)
    update_section("data_prepare", table)


if __name__ == "__main__":
    main()
