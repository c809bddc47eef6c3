"""Tokens/s of tessera's full training step against a bare PyTorch loop on the same model and batch.

Full step: `tessera.train.trainer.Segment.step` — the DeepSpeed engine (ZeRO-2, one rank), the token
loader, the schedule, the MoE/throughput/energy callbacks with the job's real EnergyMeter, the JSONL
log and the progress printer. Bare loop: the same Transformer (same seed), torch AdamW (for-each),
forward, cross-entropy + aux loss, backward, clip, step, zero_grad, on one batch fetched beforehand.
Run states and published checkpoints are excluded (periodic I/O, not per-step cost).

Rounds alternate full and bare blocks in one process, so machine load hits both alike; the ratio is
median full tokens/s over median bare tokens/s (target >= 0.95).

    python bench/train_step.py [--rounds 7] [--steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _results import machine, update_section  # noqa: E402

from tessera.config import load  # noqa: E402
from tessera.data.tokens import write_token_file  # noqa: E402
from tessera.energy.meter import EnergyMeter  # noqa: E402
from tessera.layout import RunLayout  # noqa: E402
from tessera.train.trainer import Segment, cross_entropy  # noqa: E402

# name -> (model.overrides over the demo preset, seq_len, micro batch)
PRESETS = {
    "demo": ({}, 128, 8),
    "demo-x4 (d 256, experts 512)": ({"d_model": 256, "num_heads": 8, "moe": {"expert_hidden": 512}}, 256, 4),
}
VOCAB = 8192
THREADS = 1


def _write_tokens(root: Path) -> None:
    layout = RunLayout(root)
    layout.tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (layout.tokenizer_dir / "tokenizer.json").write_text('{"bench": true}')
    rng = np.random.default_rng(0)
    meta = {"vocab_size": VOCAB, "tokenizer_sha256": "bench", "eos_id": 1, "language": "ita",
            "split": "train"}
    with write_token_file(layout.tokens("ita", "train"), meta) as writer:
        writer.add_documents([rng.integers(2, VOCAB, size=500).tolist() for _ in range(400)])


def _segment(tmp: Path, overrides: dict, seq_len: int, micro: int) -> tuple[Segment, EnergyMeter]:
    config = tmp / "bench.yaml"
    import yaml

    config.write_text(yaml.safe_dump({
        "run": {"name": "bench", "results_dir": str(tmp)},
        "model": {"preset": "demo", "overrides": {**overrides, "max_seq_len": seq_len}},
        "train": {"micro_batch_size": micro, "zero_stage": 2, "expert_parallel_size": 1,
                  "num_threads": THREADS, "log_every": 10**6, "local_processes": 1,
                  "stages": [{"name": "bench", "steps": 10**6, "seq_len": seq_len, "batch_size": micro,
                              "mixture": {"ita": 1.0}, "lr": {"peak": 1e-3}}]},
    }))
    cfg = load([REPO / "config.yaml", config], [])
    meter = EnergyMeter(cfg.energy, cfg.site).start()
    segment = Segment(cfg, cfg.train.stage("bench"), 10**6, meter)
    segment.restore()
    for callback in segment.callbacks:
        callback.on_start("bench", 0, 10**6)
    return segment, meter


def _bare(segment: Segment):
    """The same architecture and initial weights, trained by hand."""
    from tessera.model.transformer import Transformer

    torch.manual_seed(segment.cfg.run.seed)
    model = Transformer(segment.model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)
    inputs_BT, targets_BT = segment.loader.batch(0, 0)

    def step() -> None:
        out = model(inputs_BT)
        loss = cross_entropy(out.logits_BTV, targets_BT) + out.aux_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.detach().item()  # the full step reads its loss too

    return step


def _time(fn, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=8, help="steps per timed block")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        for name, (overrides, seq_len, micro) in PRESETS.items():
            tmp = Path(tmp_name) / name.split()[0]
            _write_tokens(tmp / "bench")
            segment, meter = _segment(tmp, overrides, seq_len, micro)
            bare = _bare(segment)
            counter = iter(range(10**9))

            def full(segment=segment, counter=counter):
                segment.step(next(counter))

            tokens = seq_len * micro
            _time(full, 2), _time(bare, 2)  # warm-up: allocator, first-call paths
            full_tps, bare_tps = [], []
            for _ in range(args.rounds):
                full_tps.append(tokens * args.steps / _time(full, args.steps))
                bare_tps.append(tokens * args.steps / _time(bare, args.steps))
            # The ratio of each round's neighbouring blocks cancels slow drifts in machine load.
            ratio = statistics.median(f / b for f, b in zip(full_tps, bare_tps, strict=True))
            for callback in segment.callbacks:
                callback.on_end()
            meter.stop()
            full_med, bare_med = statistics.median(full_tps), statistics.median(bare_tps)
            rows.append((name, seq_len, micro, full_med, bare_med, ratio))
            print(f"{name}: full {full_med:,.0f} tok/s, bare {bare_med:,.0f} tok/s, ratio {ratio:.3f}",
                  flush=True)
    table = [
        "## Training step: full tessera step vs bare PyTorch loop (one rank, CPU)",
        "",
        f"{machine()}; {THREADS} thread(s); {args.rounds} interleaved rounds of {args.steps} steps; medians "
        "(ratio: median over rounds of full/bare in the same round).",
        "Full = DeepSpeed ZeRO-2 engine + loader + schedule + callbacks (throughput, MoE stats, energy meter "
        "read, JSONL, progress); bare = torch forward/backward/clip/AdamW on one prefetched batch.",
        "",
        "| model | seq_len | micro batch | full tok/s | bare tok/s | ratio (target >= 0.95) |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {n} | {s} | {m} | {f:,.0f} | {b:,.0f} | {r:.3f} |" for n, s, m, f, b, r in rows],
    ]
    update_section("train_step", "\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    main()
