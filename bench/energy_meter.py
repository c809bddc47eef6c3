"""The energy meter's overhead: step time of a small torch training step with and without the meter
(sampling thread running, `read()` every step), measured interleaved in one process.

    python bench/energy_meter.py [--steps 20] [--rounds 15]
    python bench/energy_meter.py --gpu-check [--seconds 60]   # on a GPU node

Writes its table into bench/RESULTS.md (section energy_meter). The issue's bound: < 1% of step time.
`--gpu-check` trains a bf16 MLP on the GPU for a while and compares the NVML energy counter read around
it with the integral of the meter's power samples (section energy_nvml_check).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Python puts bench/ first on sys.path, where a script named like a stdlib module (tokenize.py) would
# shadow it; keep bench/ last, for _results only.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

import torch  # noqa: E402
from _results import machine, update_section  # noqa: E402

from tessera.config import SiteConfig  # noqa: E402
from tessera.energy.config import EnergyConfig  # noqa: E402
from tessera.energy.meter import EnergyMeter  # noqa: E402

MODES = {
    "no meter": None,
    "meter, 1 s samples (default)": EnergyConfig(sample_interval_s=1.0, codecarbon=False),
    "meter, 0.1 s samples": EnergyConfig(sample_interval_s=0.1, codecarbon=False),
    "meter + CodeCarbon (default config)": EnergyConfig(),
}


def make_step(width: int, batch: int):
    model = torch.nn.Sequential(
        torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x_BD = torch.randn(batch, width)

    def step() -> None:
        loss = model(x_BD).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def timed_block(step, steps: int, cfg: EnergyConfig | None) -> tuple[float, float, float]:
    """Per step: wall seconds, process CPU seconds (all threads, the meter's included), seconds in read()."""
    meter = EnergyMeter(cfg, SiteConfig()).start() if cfg is not None else None
    read_s = 0.0
    cpu_start = time.process_time()
    start = time.perf_counter()
    for _ in range(steps):
        step()
        if meter is not None:
            t = time.perf_counter()
            meter.read()  # what the trainer does every step
            read_s += time.perf_counter() - t
    elapsed = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    if meter is not None:
        meter.stop()
    return elapsed / steps, cpu_s / steps, read_s / steps


def gpu_check(seconds: float, interval_s: float) -> None:
    """NVML energy counter around a short GPU training run vs the integral of the sampled power."""
    if not torch.cuda.is_available():
        raise SystemExit("--gpu-check needs a CUDA GPU")
    device = torch.device("cuda")
    model = torch.nn.Sequential(*[torch.nn.Linear(8192, 8192) for _ in range(4)]).to(device, torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x_BD = torch.randn(4096, 8192, device=device, dtype=torch.bfloat16)
    cfg = EnergyConfig(sample_interval_s=interval_s, codecarbon=False)
    meter = EnergyMeter(cfg, SiteConfig(), environ={"CUDA_VISIBLE_DEVICES": "0"}).start()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model(x_BD).float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
    torch.cuda.synchronize()
    record = meter.stop("gpu-check", "bench")
    t_s, watts = record["samples"]["t_s"], record["samples"]["gpu_w"]
    # Rectangle rule as the meter integrates: each sample's power holds until the next one.
    integral_j = sum(w * (t1 - t0) for t0, t1, w in zip(t_s, t_s[1:], watts[1:], strict=False))
    counter_j = record["gpu"]["j"]
    device_name = record["gpu"]["devices"][0]["name"] if record["gpu"]["devices"] else "none"
    text = (
        f"## NVML energy counter vs sampled power\n\n{machine()}\n\n"
        f"{steps} bf16 training steps of a 4x8192 MLP on {device_name} over {record['time_s']:.1f} s; "
        f"power sampled every {interval_s:g} s ({len(t_s)} samples).\n\n"
        "| counter J | integral of samples J | integral / counter | mean W (counter) |\n|---|---|---|---|\n"
        f"| {counter_j:.1f} | {integral_j:.1f} | {integral_j / counter_j:.4f} | "
        f"{counter_j / record['time_s']:.1f} |\n"
    )
    print(text)
    update_section("energy_nvml_check", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds of every mode")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--gpu-check", action="store_true", help="NVML counter vs sampled power on a GPU")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the --gpu-check run")
    parser.add_argument("--interval", type=float, default=0.1, help="sample period of the --gpu-check run")
    args = parser.parse_args()
    if args.gpu_check:
        gpu_check(args.seconds, args.interval)
        return
    torch.set_num_threads(1)  # two shared cores: one for the step, one for the meter's thread
    torch.manual_seed(0)
    step = make_step(args.width, args.batch)
    for _ in range(5):
        step()  # warm-up: allocator and AdamW state
    step_s: dict[str, list[float]] = {m: [] for m in MODES}
    read_s: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_s: dict[str, list[float]] = {m: [] for m in MODES}
    order = list(MODES)
    for round_index in range(args.rounds):
        # Rotate the order so that no mode always runs right after another one.
        shift = round_index % len(order)
        for mode in order[shift:] + order[:shift]:
            s, c, r = timed_block(step, args.steps, MODES[mode])
            step_s[mode].append(s)
            cpu_s[mode].append(c)
            read_s[mode].append(r)
    # The machine is shared: the ratio of each round's blocks cancels slow drifts in load; the median
    # over rounds drops the rounds another process disturbed.
    rows = [
        "| mode | median step ms | wall-time ratio | CPU-time ratio | read() us | read() / step |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        wall = statistics.median(m / b for m, b in zip(step_s[mode], step_s["no meter"], strict=True))
        cpu = statistics.median(m / b for m, b in zip(cpu_s[mode], cpu_s["no meter"], strict=True))
        med = statistics.median(step_s[mode])
        rd = statistics.median(read_s[mode])
        rows.append(
            f"| {mode} | {med * 1e3:.2f} | {wall:.4f} | {cpu:.4f} | {rd * 1e6:.1f} | {rd / med:.4%} |"
        )
    table = "\n".join(rows)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = (
        f"## Energy meter overhead\n\n{machine()}; load average during the run {load}\n\n"
        f"A {args.width}-wide MLP training step (batch {args.batch}, 1 torch thread) timed in blocks of "
        f"{args.steps} steps, {args.rounds} rounds with the modes interleaved (order rotated each round); "
        "ratios = a mode's block over the same round's no-meter block, median over rounds, of wall time "
        "and of the process's CPU time (all threads, the meter's sampling and CodeCarbon's included). "
        "The 2 cores are shared with other work (see the load): wall-time ratios move by several % from "
        "run to run; the CPU-time ratio and the direct cost of `read()` are the sharper figures. "
        "With the meter the sampling thread runs and `read()` is called after every step, as the trainer "
        "does. No NVML or RAPL on this machine: the GPU/CPU counter reads cost more on a GPU node (NVML "
        "counter read ~tens of us per GPU), still far below 1% of a real step.\n\n" + table + "\n"
    )
    print(text)
    update_section("energy_meter", text)


if __name__ == "__main__":
    main()
