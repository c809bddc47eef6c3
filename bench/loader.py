"""Sequences per second of the training data loader, against what a training step consumes.

    python bench/loader.py [--tokens-per-language 20000000] [--batches 200]

Token files: random ids (the loader never looks at them) for two languages, written with tessera's
writer into a temporary folder, memory-mapped as in training. Shapes: the demo (the first stage of
config.yaml, with train.micro_batch_size) and a cluster shape (sequence 4096 x micro-batch 8), each
timed over `--batches` consecutive steps from a random step far into the run (resumed: no replay), after
the page cache is warm (as in a long run); interleaved rounds, median.

A step's consumption on the cluster: an OLMoE-1B-7B-class model (1.3e9 active parameters) at 35% MFU on
an A100 (312 TFLOP/s bf16) trains 0.35 * 312e12 / (6 * 1.3e9) = 14,000 tokens/s per GPU, i.e. 3.4
sequences of 4096 per second; the loader must be at least 100x faster than that per rank.
Records the table in bench/RESULTS.md (section loader).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, update_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GPU_TOKENS_PER_S = 0.35 * 312e12 / (6 * 1.3e9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens-per-language", type=int, default=20_000_000)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    import numpy as np
    import torch
    import yaml

    from tessera.data.loader import TokenLoader
    from tessera.data.tokens import write_token_file

    torch.set_num_threads(1)
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    stage = raw["train"]["stages"][0]
    demo = (int(stage["seq_len"]), int(raw["train"].get("micro_batch_size", 4)))
    shapes = {
        f"demo (seq {demo[0]} x micro-batch {demo[1]})": demo,
        "cluster (seq 4096 x micro-batch 8)": (4096, 8),
    }
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        stems = {}
        for lang in ("ita", "eng"):
            stems[lang] = Path(tmp) / lang / "train"
            meta = {
                "vocab_size": 8192,
                "tokenizer_sha256": "bench",
                "eos_id": 1,
                "language": lang,
                "split": "train",
            }
            with write_token_file(stems[lang], meta) as writer:
                left = args.tokens_per_language
                while left > 0:  # documents of ~1000 tokens, 1M tokens per write
                    docs = rng.integers(3, 8192, size=(1000, min(999, left // 1000 or 1))).tolist()
                    writer.add_documents(docs)
                    left -= sum(len(d) + 1 for d in docs)
        loaders = {
            name: TokenLoader(stems, {"ita": 0.7, "eng": 0.3}, seq_len, mbs, seed=1, rank=3, world_size=8)
            for name, (seq_len, mbs) in shapes.items()
        }
        first = 123_456
        for loader in loaders.values():  # warm the page cache and the block cache
            for step in range(first, first + args.batches):
                loader.batch(step)
        seconds: dict[str, list[float]] = {name: [] for name in loaders}
        for _ in range(args.rounds):
            for name, loader in loaders.items():
                start = time.perf_counter()
                for step in range(first, first + args.batches):
                    loader.batch(step)
                seconds[name].append(time.perf_counter() - start)

    rows = []
    for name, (seq_len, mbs) in shapes.items():
        seq_per_s = args.batches * mbs / statistics.median(seconds[name])
        need = GPU_TOKENS_PER_S / seq_len if seq_len == 4096 else None
        rows.append(
            f"| {name} | {seq_per_s:,.0f} | {seq_per_s * seq_len / 1e6:.1f} | "
            + (f"{need:.1f} | {seq_per_s / need:,.0f}x |" if need else "- | - |")
        )
    md = "\n".join(
        [
            "## Training data loader (`TokenLoader.batch`)",
            "",
            machine(),
            "",
            f"Two languages of {args.tokens_per_language / 1e6:.0f} M tokens (uint16, memory-mapped, page "
            f"cache warm), mixture 0.7/0.3, rank 3 of 8, {args.batches} consecutive steps from {first:,}; "
            f"median of {args.rounds} interleaved rounds, one CPU thread. A training step needs "
            f"{GPU_TOKENS_PER_S:,.0f} tokens/s per A100 (1.3e9 active parameters at 35% MFU).",
            "",
            "| shape | sequences/s | M tokens/s | training needs seq/s | loader / need |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print(md)
    update_section("loader", md)


if __name__ == "__main__":
    main()
