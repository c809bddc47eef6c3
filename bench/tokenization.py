"""Tokenization throughput of `tessera tokenize` against a bare `encode_batch` loop, and its peak memory.

    python bench/tokenization.py [--mb 64] [--memory-mb 1024] [--rounds 3] [--threads N]

Text: ../shared/data/corpus (or, on a fresh clone, the demo's Bible chapters), cut into ~4 KB documents
and repeated into temporary zstd shards. Tokenizer: tessera's, trained on a 4 MB sample of that text at
the demo vocabulary (8192).

Throughput: the pipeline (`tokenize_split`: decompress, JSON, encode, write .bin/.idx/.json) on an
`--mb` shard, against `Tokenizer.encode_batch` and `encode_batch_fast` over the same documents already in
memory, in the same batches, with the same cores; the modes alternate for `--rounds` rounds in one
process and the medians are compared (ratio = pipeline MB/s / bare MB/s, target >= 0.9).

Memory: peak resident memory above the pre-run level while tokenizing an `--memory-mb` shard, sampled
every 50 ms and reported per quarter of the run: flat quarters = memory does not grow with the input.
Records the tables in bench/RESULTS.md (section tokenize). Not named bench/tokenize.py: that would shadow
the standard library's `tokenize` module for every script in bench/ (their folder leads sys.path).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, update_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus"
DOC_CHARS = 4000


def corpus_documents() -> list[str]:
    import unicodedata

    if CORPUS.is_dir():
        texts = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.rglob("*")) if p.is_file()]
    else:  # a fresh clone: the demo's own sources
        import yaml

        from tessera.config import from_mapping
        from tessera.data.sources import read_documents

        cfg = from_mapping(yaml.safe_load((REPO / "config.yaml").read_text()))
        texts = [d.text for s in cfg.data.sources for d in read_documents(cfg, s)]
    docs = []
    for text in texts:
        text = unicodedata.normalize("NFC", text)
        docs += [text[i : i + DOC_CHARS] for i in range(0, len(text), DOC_CHARS)]
    return docs


def write_shard(path: Path, docs: list[str], megabytes: float) -> int:
    """Repeat `docs` into a shard of about `megabytes` of text; returns its text bytes."""
    from tessera.data.shards import ShardWriter, record

    path.parent.mkdir(parents=True, exist_ok=True)
    target = int(megabytes * 1e6)
    with ShardWriter(path, level=3) as writer:
        i = 0
        while writer.text_bytes < target:
            writer.write(record(f"bench/{i}", "bench", "ita", None, docs[i % len(docs)]))
            i += 1
    return writer.text_bytes


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_memory_by_quarter(run) -> tuple[list[float], float]:
    """Run `run()`; (peak RSS above the starting level per quarter of its duration, in MB; seconds)."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), rss_bytes()))
            time.sleep(0.05)

    base = rss_bytes()
    start = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    quarters = [0.0] * 4
    for t, rss in samples:
        q = min(3, int(4 * (t - start) / max(seconds, 1e-9)))
        quarters[q] = max(quarters[q], (rss - base) / 1e6)
    return quarters, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=64, help="shard size for the throughput comparison")
    p.add_argument("--memory-mb", type=float, default=1024, help="shard size for the memory run (>= 1 GB)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="cores (default: this process's affinity)")
    args = p.parse_args()

    import yaml

    from tessera.config import from_mapping
    from tessera.data import tokenize as tokenize_module
    from tessera.data.batches import batched_by_size
    from tessera.data.tokens import open_token_file
    from tessera.layout import RunLayout
    from tessera.tokenizer.train import fit_bpe, save_tokenizer

    threads = tokenize_module.set_num_threads(args.threads)  # before the first parallel call
    docs = corpus_documents()
    with tempfile.TemporaryDirectory(prefix="bench-tokenize-") as tmp:
        raw = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
        raw["run"] = {"name": "bench", "seed": 1, "results_dir": tmp}
        cfg = from_mapping(raw)
        layout = RunLayout(cfg.out_dir)
        sample, size = [], 0
        for doc in docs[:: max(1, len(docs) // 1000)]:
            sample.append(doc)
            size += len(doc)
            if size > 4e6:
                break
        tokenizer = fit_bpe(iter(sample), cfg.tokenizer.vocab_size, cfg.tokenizer.special_tokens)
        save_tokenizer(tokenizer, layout.tokenizer_dir, cfg.tokenizer, record={})

        def tokenize(split: str) -> None:  # one split of one shard, as the tokenize job encodes it
            loaded, meta = tokenize_module.load_tokenizer(cfg, layout)
            shard, stem = layout.shard("ita", split, 0), layout.token_shard("ita", split, 0)
            tokenize_module.encode_file(loaded, shard, stem, {**meta, "language": "ita", "split": split})

        # Memory first, while the process holds nothing else.
        memory_bytes = write_shard(layout.shard("ita", "train", 0), docs, args.memory_mb)
        quarters, memory_seconds = peak_memory_by_quarter(lambda: tokenize("train"))
        memory_tokens = open_token_file(layout.token_shard("ita", "train", 0)).num_tokens
        for suffix in (".bin", ".idx"):  # free the disk before the next shard
            Path(f"{layout.token_shard('ita', 'train', 0)}{suffix}").unlink()

        text_bytes = write_shard(layout.shard("ita", "validation", 0), docs, args.mb)
        from tessera.data.shards import read_shard

        texts = [d["text"] for d in read_shard(layout.shard("ita", "validation", 0))]
        batches = list(batched_by_size(texts, tokenize_module.BATCH_BYTES))
        modes = {
            "tessera tokenize (pipeline)": lambda: tokenize("validation"),
            "bare encode_batch loop": lambda: [
                tokenizer.encode_batch(b, add_special_tokens=False) for b in batches
            ],
            "bare encode_batch_fast loop": lambda: [
                tokenizer.encode_batch_fast(b, add_special_tokens=False) for b in batches
            ],
        }
        seconds: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode, run in modes.items():
                start = time.perf_counter()
                run()
                seconds[mode].append(time.perf_counter() - start)
        meta = json.loads(Path(f"{layout.token_shard('ita', 'validation', 0)}.json").read_text())

    mb = text_bytes / 1e6
    best = {m: mb / min(s) for m, s in seconds.items()}
    median = {m: mb / statistics.median(s) for m, s in seconds.items()}
    ours = "tessera tokenize (pipeline)"
    rows = [
        f"| {m} | {best[m]:.2f} | {best[ours] / best[m]:.3f} | {median[m]:.2f} | "
        f"{median[ours] / median[m]:.3f} |"
        for m in seconds
    ]
    md = "\n".join(
        [
            "## Tokenization throughput and memory (`tessera tokenize`)",
            "",
            machine(),
            "",
            f"{mb:.0f} MB of corpus text ({meta['num_documents']} documents of ~{DOC_CHARS} chars, "
            f"{meta['num_tokens'] / 1e6:.1f} M tokens), demo tokenizer ({cfg.tokenizer.vocab_size} tokens), "
            f"{threads} threads; {args.rounds} interleaved rounds, best and median. Ratio = pipeline MB/s / "
            "that mode's MB/s (the pipeline also decompresses, parses JSON and writes .bin/.idx/.json). On a "
            "shared machine the best round is the least disturbed one.",
            "",
            "| mode | best MB/s | pipeline / mode (best) | median MB/s | pipeline / mode (median) |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Peak resident memory above the starting level while tokenizing {memory_bytes / 1e9:.2f} GB of "
            f"text ({memory_tokens / 1e6:.0f} M tokens, {memory_seconds:.0f} s), per quarter of the run: "
            + ", ".join(f"{q:.0f} MB" for q in quarters)
            + " (flat: memory is a few batches, not the input).",
        ]
    )
    print(md)
    update_section("tokenize", md)


if __name__ == "__main__":
    main()
