"""Model FLOPs utilisation of training steps of a cluster-shaped model on one GPU.

The cluster preset (`olmoe-1b-7b`: d_model 2048, 64 experts top-8, vocab ~100k) with its layers cut so
weights, gradients, AdamW state and activations fit one card. bf16 weights and optimizer state (no
fp32 master copy: this measures the model's arithmetic, not the optimizer's precision policy).

    MFU = train_flops_per_token(cfg, seq_len) * tokens per step / step time / peak bf16 FLOP/s

with `train_flops_per_token` from tessera.model.config (3x forward matmul FLOPs, attention included)
and the peak from tessera.energy.config.DEFAULT_GPU_TYPES. Prints a table and records it in
bench/RESULTS.md (section "gpu_mfu"). Imports only torch and tessera's model code (no DeepSpeed).

    python bench/mfu_step.py                        # CUDA, 4 layers, batch 4 x 4096
    python bench/mfu_step.py --device cpu --layers 1 --batch 1 --seq-len 128 --steps 2 --no-record
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, update_section  # noqa: E402

from tessera.energy.config import DEFAULT_GPU_TYPES  # noqa: E402
from tessera.model.config import PRESETS, num_active_params, num_params, train_flops_per_token  # noqa: E402
from tessera.model.transformer import Transformer  # noqa: E402


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    """Peak dense bf16 FLOP/s of the GPU, looked up by its name (None on CPU or an unknown card)."""
    if override_tflops:
        return override_tflops * 1e12, f"{override_tflops} TFLOP/s (--peak-tflops)"
    if device.type != "cuda":
        return None, "n/a"
    name = torch.cuda.get_device_name(device)
    memory_gb = torch.cuda.get_device_properties(device).total_memory / 2**30
    for model in ("H200", "H100", "A100"):
        if model in name:
            key = model if model == "H200" else f"{model}-{'64GB' if memory_gb < 70 else '80GB'}"
            gpu = DEFAULT_GPU_TYPES[key]
            return gpu.peak_bf16_flops, f"{gpu.peak_bf16_flops / 1e12:.0f} TFLOP/s ({key})"
    return None, f"unknown for {name}; pass --peak-tflops"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="olmoe-1b-7b")
    parser.add_argument("--layers", type=int, default=4, help="layers kept of the preset (to fit one card)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing on")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's peak")
    parser.add_argument("--no-record", action="store_true", help="print only; leave bench/RESULTS.md")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    cfg = dataclasses.replace(PRESETS[args.preset], num_layers=args.layers, max_seq_len=args.seq_len)
    with device:
        model = Transformer(cfg).to(torch.bfloat16)
    model.enable_activation_checkpointing(args.checkpointing)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    ids_BT = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len + 1), device=device)
    inputs_BT, targets_BT = ids_BT[:, :-1], ids_BT[:, 1:]

    def step() -> float:
        out = model(inputs_BT)
        loss = F.cross_entropy(out.logits_BTV.flatten(0, 1).float(), targets_BT.flatten()) + out.aux_loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()  # one host sync per step, as a trainer logging its loss has

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)

    step_s = statistics.median(times)
    tokens = args.batch * args.seq_len
    flops = train_flops_per_token(cfg, args.seq_len) * tokens
    peak, peak_text = peak_flops(device, args.peak_tflops)
    mfu = f"{flops / step_s / peak:.1%}" if peak else "n/a"
    memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else "n/a"
    billions = f"{num_params(cfg) / 1e9:.2f} B / {num_active_params(cfg) / 1e9:.2f} B"
    rows = [
        ("model", f"{args.preset}, {cfg.num_layers} of {PRESETS[args.preset].num_layers} layers, bf16"),
        ("parameters (total / active)", billions),
        ("tokens per step", f"{tokens} ({args.batch} x {args.seq_len})"),
        ("activation checkpointing", "on" if args.checkpointing else "off"),
        (f"step time (median of {args.steps})", f"{step_s * 1e3:.0f} ms"),
        ("tokens/s", f"{tokens / step_s:,.0f}"),
        ("model TFLOP/s", f"{flops / step_s / 1e12:.1f}"),
        ("peak bf16", peak_text),
        ("MFU", mfu),
        ("peak memory allocated", memory),
    ]
    table = "| quantity | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    text = f"### One training step of a cluster-shaped model (MFU)\n\n{machine()}\n\n{table}\n"
    print(text)
    if not args.no_record:
        update_section("gpu_mfu", text)


if __name__ == "__main__":
    main()
