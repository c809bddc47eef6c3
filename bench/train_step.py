"""Tokens/s of tessera's full training step against a bare PyTorch loop on the same model and batch.

Full step: `tessera.train.trainer.Segment.step` -- the DeepSpeed engine as the trainer builds it for one
rank (ZeRO stage 0: one rank has nothing to shard; the optimizer is ClippedAdamW), the token loader, the
schedule, the MoE/throughput/energy callbacks with the job's real EnergyMeter, the JSONL log and the
progress printer. Also timed: the same step with the ZeRO-2 engine forced onto the one rank, which
prices the flat-buffer bookkeeping that runs with several ranks pay for their memory savings.
Bare loop: the same Transformer (same seed), torch AdamW (for-each), forward, cross-entropy + aux loss,
backward, clip, step, zero_grad, on one batch fetched beforehand. Run states and published checkpoints
are excluded (periodic I/O, not per-step cost).

Rounds alternate the three blocks in one process, so machine load hits them alike; each ratio is the
median over rounds of (full tokens/s) / (bare tokens/s) in the same round (target >= 0.95).

    python bench/train_step.py [--rounds 7] [--steps 8]
"""

from __future__ import annotations

import argparse
import dataclasses
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
from tessera.parallel import deepspeed as deepspeed_setup  # noqa: E402
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


def _segment(tmp: Path, overrides: dict, seq_len: int, micro: int,
             force_zero_stage: int | None = None) -> tuple[Segment, EnergyMeter]:
    _write_tokens(tmp / "bench")
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
    chosen = deepspeed_setup.engine_spec
    if force_zero_stage is not None:
        deepspeed_setup.engine_spec = lambda *a: dataclasses.replace(chosen(*a), zero_stage=force_zero_stage)
    try:
        segment = Segment(cfg, cfg.train.stage("bench"), 10**6, meter)
    finally:
        deepspeed_setup.engine_spec = chosen
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


def _stepper(segment: Segment):
    """Training steps 0, 1, 2, ... of `segment`, one per call."""
    counter = iter(range(10**9))
    return lambda: segment.step(next(counter))


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
            runs = {"full": _segment(tmp / "full", overrides, seq_len, micro),
                    "zero2": _segment(tmp / "zero2", overrides, seq_len, micro, force_zero_stage=2)}
            assert runs["full"][0].spec.zero_stage == 0 and runs["zero2"][0].spec.zero_stage == 2  # noqa: S101 a bench self-check
            steps = {key: _stepper(segment) for key, (segment, _) in runs.items()}
            steps["bare"] = _bare(runs["full"][0])
            tokens = seq_len * micro
            for fn in steps.values():
                _time(fn, 2)  # warm-up: allocator, first-call paths
            tps: dict[str, list[float]] = {key: [] for key in steps}
            for _ in range(args.rounds):
                for key, fn in steps.items():
                    tps[key].append(tokens * args.steps / _time(fn, args.steps))
            # The ratio of each round's neighbouring blocks cancels slow drifts in machine load.
            ratio = {key: statistics.median(f / b for f, b in zip(tps[key], tps["bare"], strict=True))
                     for key in runs}
            for segment, meter in runs.values():
                for callback in segment.callbacks:
                    callback.on_end()
                meter.stop()
            med = {key: statistics.median(values) for key, values in tps.items()}
            rows.append((name, seq_len, micro, med["full"], med["zero2"], med["bare"], ratio["full"],
                         ratio["zero2"]))
            print(f"{name}: full {med['full']:,.0f} tok/s (ratio {ratio['full']:.3f}), ZeRO-2 forced "
                  f"{med['zero2']:,.0f} tok/s (ratio {ratio['zero2']:.3f}), bare {med['bare']:,.0f} tok/s",
                  flush=True)
    table = [
        "## Training step: full tessera step vs bare PyTorch loop (one rank, CPU)",
        "",
        f"{machine()}; {THREADS} thread(s); {args.rounds} interleaved rounds of {args.steps} steps; medians "
        "(ratio: median over rounds of full/bare in the same round).",
        "Full = the trainer's one-rank engine (ZeRO stage 0, ClippedAdamW) + loader + schedule + callbacks "
        "(throughput, MoE stats, energy meter read, JSONL, progress); ZeRO-2 forced = the same with "
        "DeepSpeed's ZeRO-2 optimizer on the one rank (the bookkeeping runs with several ranks pay); "
        "bare = torch forward/backward/clip/AdamW on one prefetched batch.",
        "",
        "| model | seq_len | micro batch | full tok/s | ZeRO-2 forced tok/s | bare tok/s "
        "| full / bare (target >= 0.95) | ZeRO-2 forced / bare |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {n} | {s} | {m} | {f:,.0f} | {z:,.0f} | {b:,.0f} | {rf:.3f} | {rz:.3f} |"
          for n, s, m, f, z, b, rf, rz in rows],
    ]
    update_section("train_step", "\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    main()
