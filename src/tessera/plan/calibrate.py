"""`tessera calibrate`: a few training steps of each shape on this machine's first GPU (or its CPU),
recording tokens/s, MFU and watts per GPU in plan/calibration.json, which `tessera plan` then uses
instead of its assumed MFU and power.

What is measured: forward and backward of one micro-batch of random token ids at the first stage's
sequence length, in bf16 on a GPU (fp32 on CPU), with the run's activation checkpointing. Not measured:
the optimizer step, ZeRO and expert-parallel communication; a real run is slower by those, so the
plan's failure reserve and the budget's tracking of the measured rate are where that shows. A shape
that does not fit one GPU's memory is recorded with its error and skipped by the plan.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tessera.config import RunConfig, to_dict
from tessera.io import write_json
from tessera.model.config import ModelConfig, build_model_config, num_active_params, num_params
from tessera.plan.flops import flops_per_token
from tessera.plan.planner import candidate_sections

__all__ = ["ShapeCalibration", "calibrate", "CALIBRATION_SCHEMA"]

CALIBRATION_SCHEMA = 1
WARMUP_STEPS = 1
log = logging.getLogger(__name__)


@dataclass
class ShapeCalibration:
    name: str
    total_params: int
    active_params: int
    seq_len: int
    micro_batch_size: int
    steps: int
    seconds: float | None
    tokens_per_s_per_gpu: float | None
    mfu: float | None
    """Against energy.gpu_types[site.gpu_type]'s peak; null on CPU."""
    watts_per_gpu: float | None
    power_basis: str
    error: str | None = None


def _steps(model: torch.nn.Module, ids_BT: torch.Tensor, steps: int, device: torch.device) -> float:
    """Seconds for `steps` forward+backward passes (after the warm-up)."""

    def one() -> None:
        out = model(ids_BT[:, :-1])
        logits = out.logits_BTV.float()
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids_BT[:, 1:].flatten()) + out.aux_loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(WARMUP_STEPS):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _measure(
    cfg: RunConfig, name: str, model_cfg: ModelConfig, steps: int, device: torch.device, meter
) -> ShapeCalibration:
    from tessera.model.transformer import Transformer

    seq_len = min(cfg.train.stages[0].seq_len, model_cfg.max_seq_len)
    micro = cfg.train.micro_batch_size
    on_gpu = device.type == "cuda"
    result = ShapeCalibration(
        name,
        num_params(model_cfg),
        num_active_params(model_cfg),
        seq_len,
        micro,
        steps,
        None,
        None,
        None,
        None,
        "none",
    )
    dtype = torch.bfloat16 if on_gpu else torch.float32
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = Transformer(model_cfg)
        model.train()
        model.enable_activation_checkpointing(cfg.train.activation_checkpointing)
        generator = torch.Generator().manual_seed(cfg.run.seed)
        ids_BT = torch.randint(0, model_cfg.vocab_size, (micro, seq_len + 1), generator=generator).to(device)
        before = meter.read() if meter is not None else None
        seconds = _steps(model, ids_BT, steps, device)
        after = meter.read() if meter is not None else None
    except torch.cuda.OutOfMemoryError as err:
        result.error = f"out of memory on one GPU: {str(err).splitlines()[0]}"
        return result
    finally:
        torch.set_default_dtype(previous)
        model = None
        if on_gpu:
            torch.cuda.empty_cache()
    result.seconds = seconds
    result.tokens_per_s_per_gpu = steps * micro * seq_len / seconds
    gpu = cfg.energy.gpu_types.get(cfg.site.gpu_type) if cfg.site.gpu_type else None
    if on_gpu and gpu is not None:
        hardware = flops_per_token(model_cfg, seq_len).hardware
        result.mfu = result.tokens_per_s_per_gpu * hardware / gpu.peak_bf16_flops
    _add_power(result, before, after, on_gpu)
    return result


def _add_power(result: ShapeCalibration, before, after, on_gpu: bool) -> None:
    """Watts over the timed steps, from the job's energy meter (tessera --energy-out ...)."""
    if before is None or after is None or after.time_s <= before.time_s:
        result.power_basis = "no energy meter (run with --energy-out)"
        return
    span = after.time_s - before.time_s
    if on_gpu and after.gpu_j > before.gpu_j:
        num_gpus = max(1, torch.cuda.device_count())
        result.watts_per_gpu = (after.gpu_j - before.gpu_j) / span / num_gpus
        result.power_basis = f"energy meter GPU joules over the timed steps, per visible GPU ({num_gpus})"
    else:
        result.watts_per_gpu = ((after.cpu_j + after.mem_j) - (before.cpu_j + before.mem_j)) / span
        result.power_basis = "no GPU: the node's CPU + memory power from the energy meter"


def calibrate(
    cfg: RunConfig, out: Path, shapes: list[str] | None = None, steps: int = 3, meter=None
) -> list[ShapeCalibration]:
    """Measure each shape (default: the run's model; on a GPU also the plan's candidates), write `out`."""
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    names = shapes or (None if device.type == "cuda" else ["run"])
    results = []
    for name, section in candidate_sections(cfg, names).items():
        model_cfg = build_model_config(section, cfg.tokenizer.vocab_size)
        result = _measure(cfg, name, model_cfg, max(1, steps), device, meter)
        log.info(
            "calibrate %s: %s tokens/s per GPU, MFU %s, %s W%s",
            name,
            result.tokens_per_s_per_gpu,
            result.mfu,
            result.watts_per_gpu,
            f" ({result.error})" if result.error else "",
        )
        results.append(result)
    write_json(
        out,
        {
            "schema_version": CALIBRATION_SCHEMA,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "gpu_type": cfg.site.gpu_type if device.type == "cuda" else None,
            "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "shapes": [to_dict(r) for r in results],
        },
    )
    for r in results:
        rate = f"{r.tokens_per_s_per_gpu:,.0f} tokens/s" if r.tokens_per_s_per_gpu else r.error
        print(
            f"calibrate {r.name}: {rate}, MFU {r.mfu if r.mfu is None else f'{r.mfu:.1%}'}, "
            f"{r.watts_per_gpu if r.watts_per_gpu is None else f'{r.watts_per_gpu:.0f}'} W ({r.power_basis})"
        )
    return results
