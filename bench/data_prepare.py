"""Throughput of the data stage on the demo corpus in one process, and where its time goes.

    python bench/data_prepare.py [--config config.yaml] [--max-documents N] [--rounds 3] [--workers 1,2]

Runs `prepare_into` (every stage of tessera.data.scatter: filter shards, dedup pairs and removals, write
shards, manifest) into a temporary folder, `--rounds` times for each worker count (interleaved, in one
process), and reports the median run per worker count: documents/s, MB/s of input text, speed-up, and
seconds per stage; then the seconds and share of each per-document step (DocumentFilter's own clock, one
pass over every source). Records the tables in bench/RESULTS.md (section data_prepare). The scattered
stage at scale, through Snakemake: bench/data_scale.py.
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
from tessera.data.document_filter import DocumentFilter  # noqa: E402
from tessera.data.prepare import prepare_into  # noqa: E402
from tessera.data.sources import read_documents  # noqa: E402
from tessera.layout import RunLayout  # noqa: E402

# Per-document steps in pipeline order (tessera.data.document_filter), with what each covers.
STEPS = {
    "nfc": "Unicode NFC",
    "control_chars": "control/zero-width characters, line ends",
    "gutenberg": "Project Gutenberg header/footer",
    "quality": "length, symbol and digit ratios, repeated lines",
    "language_id": "py3langid's model, a batch of documents at once",
    "pii": "e-mail, phone, IBAN, codice fiscale redaction",
    "dedup_exact": "sha256 of the text",
    "minhash": "word n-gram hashes and MinHash signature (128 permutations)",
}
STAGES = ("filter", "pairs", "removals", "write", "manifest")


def step_seconds(cfg) -> dict[str, float]:
    """Seconds per per-document step over every source, in this process."""
    document_filter = DocumentFilter(cfg.data.filters)
    for source in cfg.data.sources:
        document_filter(list(read_documents(cfg, source)), source.language)
    return dict(document_filter.seconds)


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
                result = prepare_into(cfg, RunLayout(Path(tmp) / f"round{i}-w{workers}"), workers)
                runs[workers].append((time.perf_counter() - start, dict(result.seconds),
                                      result.manifest["totals"]))

    def median_run(workers: int) -> tuple[float, dict[str, float], dict]:
        return sorted(runs[workers], key=lambda r: r[0])[len(runs[workers]) // 2]

    base_s, _, totals = median_run(worker_counts[0])
    lines = [
        "## Data stage in one process (tessera data prepare) on the demo corpus",
        "",
        machine(),
        "",
        f"Config {args.config}{sizing}: {len(cfg.data.sources)} sources, {totals['documents_in']} "
        f"documents in ({totals['bytes_in'] / 1e6:.2f} MB of text), {totals['documents_out']} out. "
        f"Median wall time of {args.rounds} rounds in one process, worker counts interleaved; a pool of "
        "worker processes is started (spawn) per run and its start-up is included.",
        "",
        "| workers | seconds per run | documents/s | MB/s | speed-up vs first | "
        + " | ".join(f"{stage} s" for stage in STAGES) + " |",
        "|---|---|---|---|---|" + "---|" * len(STAGES),
    ]
    for workers in worker_counts:
        wall, stage_seconds, _ = median_run(workers)
        lines.append(f"| {workers} | {wall:.2f} | {totals['documents_in'] / wall:.0f} | "
                     f"{totals['bytes_in'] / 1e6 / wall:.2f} | {base_s / wall:.2f} | "
                     + " | ".join(f"{stage_seconds.get(stage, 0):.2f}" for stage in STAGES) + " |")
    seconds = step_seconds(cfg)
    step_total = sum(seconds.values())
    lines += [
        "",
        "Time per per-document step (one pass in this process; seconds summed over documents):",
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
