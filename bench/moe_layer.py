"""Forward+backward time of tessera's MoE layer against a dense SwiGLU of the same active FLOPs and
against its peers (DeepSpeed's MoE layer, transformers' Qwen3-MoE sparse block with eager and with
grouped_mm experts), all timed in one process in interleaved rounds; prints the MoE/dense ratios
(median over rounds) and tokens/s and records them in bench/RESULTS.md (section "moe_layer").

    python bench/moe_layer.py                       # CPU, fp32 and bf16, the two 512-wide shapes
    python bench/moe_layer.py --shapes all          # plus the cluster preset's layer (d 2048)
    python bench/moe_layer.py --device cuda --dtype bf16 --shapes all   # bench/gpu_check.sh
    python bench/moe_layer.py --profile             # torch.profiler breakdown of tessera's layer

Every layer routes with the same weights (copied from tessera's layer), so all see the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, update_section  # noqa: E402

from tessera.model.config import MoEConfig  # noqa: E402
from tessera.model.layers import SwiGLU  # noqa: E402
from tessera.model.moe import MoE  # noqa: E402


@dataclass(frozen=True)
class Shape:
    label: str
    tokens: int
    d_model: int
    num_experts: int
    top_k: int
    expert_hidden: int

    @property
    def dense_hidden(self) -> int:
        return self.top_k * self.expert_hidden


SHAPES = {
    "8x2": Shape("8 experts, top-2", 4096, 512, 8, 2, 1024),
    "64x8": Shape("64 experts, top-8", 4096, 512, 64, 8, 256),
    # The olmoe-1b-7b preset's MoE layer; 1024 tokens keep one round within seconds on a 2-core CPU.
    "cluster": Shape("cluster layer (d 2048, 64 experts, top-8)", 1024, 2048, 64, 8, 1024),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DENSE = "dense SwiGLU of the same active size"
TESSERA = "tessera MoE (grouped_mm)"


def keep_freed_memory_in_process() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the OS.

    glibc serves blocks of 32 MiB and more (an MoE layer's N*k x d routed activations: 32 MiB at 4096
    tokens x 8 x 512 in bf16) with a fresh mmap each time, so every such tensor pays a page fault per
    4 KiB page on first touch: 20-30 ms per 32 MiB on this machine, more than the copy itself. With
    mmap off and trimming raised, freed blocks are reused from the heap (what PyTorch's CUDA caching
    allocator does on GPUs). Applied to the whole process, so every layer in the table gets it.
    Returns False where there is no glibc (macOS, musl).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


class _TesseraMoE(nn.Module):
    def __init__(self, moe: MoE) -> None:
        super().__init__()
        self.moe = moe

    def forward(self, x_BTD):
        return self.moe(x_BTD)[0]


class _DeepSpeedMoE(nn.Module):
    def __init__(self, moe: nn.Module) -> None:
        super().__init__()
        self.moe = moe

    def forward(self, x_BTD):
        return self.moe(x_BTD)[0]


def _deepspeed_moe(reference: MoE, shape: Shape) -> nn.Module | None:
    """deepspeed.moe.layer.MoE, dropless (drop_tokens=False: capacity = the busiest expert's load),
    in a single-process gloo group, with tessera's router and expert weights."""
    try:
        import deepspeed.comm as ds_comm
        from deepspeed.moe.layer import MoE as DSMoE
    except ImportError as e:
        warnings.warn(f"DeepSpeed MoE unavailable: {e}", stacklevel=2)
        return None
    if not torch.distributed.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        torch.distributed.init_process_group("gloo", rank=0, world_size=1)
        ds_comm.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    H = shape.expert_hidden
    layer = DSMoE(shape.d_model, SwiGLU(shape.d_model, H), num_experts=shape.num_experts, ep_size=1,
                  k=shape.top_k, drop_tokens=False, top2_2nd_expert_sampling=False)
    layer.set_deepspeed_parallelism()
    with torch.no_grad():
        layer.deepspeed_moe.gate.wg.weight.copy_(reference.gate.weight)
        for e, expert in enumerate(layer.deepspeed_moe.experts.deepspeed_experts):
            expert.gate_proj.weight.copy_(reference.experts.gate_up_proj[e, :H])
            expert.up_proj.weight.copy_(reference.experts.gate_up_proj[e, H:])
            expert.down_proj.weight.copy_(reference.experts.down_proj[e])
    return _DeepSpeedMoE(layer)


def _qwen3_block(reference: MoE, shape: Shape, implementation: str) -> nn.Module:
    from transformers.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    cfg = Qwen3MoeConfig(hidden_size=shape.d_model, num_experts=shape.num_experts,
                         num_experts_per_tok=shape.top_k, moe_intermediate_size=shape.expert_hidden,
                         norm_topk_prob=True)
    cfg._experts_implementation = implementation
    block = Qwen3MoeSparseMoeBlock(cfg)
    block.load_state_dict(reference.state_dict())
    return block


def build_layers(shape: Shape, peers: bool) -> dict[str, nn.Module]:
    """name -> layer (fp32, CPU); the first is the dense baseline."""
    torch.manual_seed(0)
    cfg = MoEConfig(num_experts=shape.num_experts, top_k=shape.top_k, expert_hidden=shape.expert_hidden)
    moe = MoE(shape.d_model, cfg)
    dense = SwiGLU(shape.d_model, shape.dense_hidden)
    for p in dense.parameters():
        nn.init.normal_(p, std=0.02)
    layers: dict[str, nn.Module] = {DENSE: dense, TESSERA: _TesseraMoE(moe)}
    loop = MoE(shape.d_model, cfg)
    loop.load_state_dict(moe.state_dict())
    loop.experts.use_grouped_mm = False
    layers["tessera MoE (per-expert loop)"] = _TesseraMoE(loop)
    if peers:
        ds = _deepspeed_moe(moe, shape)
        if ds is not None:
            layers["DeepSpeed `deepspeed.moe.layer.MoE` (dropless)"] = ds
        layers["transformers Qwen3-MoE block, `grouped_mm` experts"] = _qwen3_block(moe, shape, "grouped_mm")
        layers["transformers Qwen3-MoE block, eager experts"] = _qwen3_block(moe, shape, "eager")
    return layers


def _step(layer: nn.Module, x_BTD: torch.Tensor, grad_BTD: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x = x_BTD.detach().requires_grad_(True)
        layer(x).backward(grad_BTD)
        # Free the gradients now: the cluster shape's six layers would not fit in memory with theirs.
        layer.zero_grad(set_to_none=True)

    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def clock(device: torch.device) -> Callable[[], float]:
    """The process's CPU time on a single-threaded CPU run: what the layer costs, unaffected by other
    jobs taking the cores in turn (wall time on the shared machine swung by 2x between runs).
    Wall time otherwise (CUDA, or several threads, where CPU time would add the threads up)."""
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time
    return time.perf_counter


def time_layers(shape: Shape, dtype: torch.dtype, device: torch.device, rounds: int, peers: bool,
                warmup: int = 1) -> dict[str, float]:
    """Median seconds of one forward+backward per layer, the layers interleaved within each round."""
    now = clock(device)
    layers = build_layers(shape, peers)
    torch.manual_seed(1)
    x_BTD = torch.randn(1, shape.tokens, shape.d_model, device=device, dtype=dtype)
    grad_BTD = torch.randn_like(x_BTD)
    steps = {name: _step(layer.to(device, dtype), x_BTD, grad_BTD) for name, layer in layers.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(warmup + rounds):
        for name, step in steps.items():
            _sync(device)
            start = now()
            step()
            _sync(device)
            if r >= warmup:
                times[name].append(now() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def profile_layer(name: str, shape: Shape, dtype: torch.dtype, device: torch.device, rows: int = 20,
                  steps: int = 5) -> str:
    """torch.profiler table (self time, summed over `steps` forward+backward steps) of a layer, after
    warm-up steps."""
    from torch.profiler import ProfilerActivity, profile

    layer = build_layers(shape, peers=False)[name].to(device, dtype)
    x_BTD = torch.randn(1, shape.tokens, shape.d_model, device=device, dtype=dtype)
    step = _step(layer, x_BTD, torch.randn_like(x_BTD))
    for _ in range(3):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows)


def table(results: dict[str, dict[str, float]], shapes: list[Shape]) -> str:
    """Markdown: one row per layer, one column per shape, cells 'ratio to dense (tokens/s)'."""
    names = list(next(iter(results.values())))
    header = "| layer | " + " | ".join(f"{s.label} ({s.tokens} tok, d {s.d_model})" for s in shapes) + " |"
    lines = [header, "|---" * (len(shapes) + 1) + "|"]
    for name in names:
        cells = []
        for s in shapes:
            t = results[s.label].get(name)
            dense = results[s.label][names[0]]
            cells.append("n/a" if t is None else f"{t / dense:.2f} ({s.tokens / t / 1000:.1f}k tok/s)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--shapes", default="8x2,64x8",
                        help=f"comma-separated of {', '.join(SHAPES)}, or 'all' (default: 8x2,64x8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (the median is reported)")
    parser.add_argument("--tokens", type=int, default=None, help="override every shape's token count")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 on CPU, see docs/moe.md; the default on CUDA)")
    parser.add_argument("--no-peers", action="store_true", help="only dense and tessera")
    parser.add_argument("--no-record", action="store_true", help="print only; leave bench/RESULTS.md")
    parser.add_argument("--section", default=None,
                        help="section of bench/RESULTS.md (default: moe_layer, or moe_layer_cuda on CUDA)")
    parser.add_argument("--profile", action="store_true", help="print a profile of tessera's layer and exit")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc malloc's defaults (fresh page faults for every block >= 32 MiB)")
    args = parser.parse_args(argv)
    malloc_note = "glibc malloc defaults"
    if not args.system_malloc and keep_freed_memory_in_process():
        malloc_note = "glibc malloc keeping freed memory (mmap off, trim threshold 1 GiB)"

    device = torch.device(args.device)
    # One thread on CPU by default: on a shared machine each of the hundreds of small per-expert
    # products ends in an OpenMP barrier that waits for whichever thread the OS descheduled, which
    # measures the machine's load rather than the layer (docs/moe.md).
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    keys = list(SHAPES) if args.shapes == "all" else args.shapes.split(",")
    shapes = [SHAPES[k] for k in keys]
    if args.tokens:
        shapes = [Shape(s.label, args.tokens, s.d_model, s.num_experts, s.top_k, s.expert_hidden)
                  for s in shapes]
    dtypes = ["fp32", "bf16"] if args.dtype == "both" else [args.dtype]

    if args.profile:
        for key in dtypes:
            for s in shapes:
                for name in (DENSE, TESSERA):
                    print(f"## {name}: {s.label}, {key}\n{profile_layer(name, s, DTYPES[key], device)}")
        return

    sections = []
    for key in dtypes:
        # Six cluster-shaped layers in fp32 (0.4 B parameters each, plus gradients) exceed a laptop's
        # memory and got the process killed on the 23 GB development machine: bf16 only there.
        runnable = [s for s in shapes if not (device.type == "cpu" and key == "fp32" and s.d_model >= 2048)]
        for s in set(shapes) - set(runnable):
            print(f"[{key}] {s.label}: skipped on CPU (memory); run it in bf16", file=sys.stderr)
        if not runnable:
            continue
        results = {}
        for s in runnable:
            results[s.label] = time_layers(s, DTYPES[key], device, args.rounds, not args.no_peers)
            timings = ", ".join(f"{n}: {t * 1e3:.0f} ms" for n, t in results[s.label].items())
            print(f"[{key}] {s.label}: {timings}", file=sys.stderr)
        sections.append(f"### {key}, {device.type}\n\n{table(results, runnable)}")
    clock_name = "CPU time" if clock(device) is time.process_time else "wall time"
    report = (
        f"Forward+backward of one MoE layer, {clock_name} relative to a dense SwiGLU of the same "
        f"active size (hidden = top_k x expert hidden), median of {args.rounds} interleaved rounds; "
        f"in parentheses tokens/s.\nMachine: {machine()}; "
        f"{torch.get_num_threads()} threads; {malloc_note}; load average {os.getloadavg()[0]:.1f} "
        f"at the end.\n\n" + "\n\n".join(sections)
    )
    print(report)
    if not args.no_record:
        section = args.section or ("moe_layer" if device.type == "cpu" else f"moe_layer_{device.type}")
        title = f"## MoE layer (bench/moe_layer.py {' '.join(argv if argv is not None else sys.argv[1:])})"
        update_section(section, f"{title}\n\n{report}")


if __name__ == "__main__":
    main()
