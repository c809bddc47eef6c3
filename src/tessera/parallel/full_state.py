"""Per-parameter full training state out of (and back into) a DeepSpeed engine, whatever its layout.

A *unit* is what the layout-independent run state stores as one group of tensors: a dense parameter
whole, or one expert's slice of a stacked expert parameter (`layers.1.mlp.experts.gate_up_proj` of
expert 3 is the unit `layers.1.mlp.experts.gate_up_proj/3`). For each unit the state holds the fp32
master weights and AdamW's two moments, so units are the same for every world size, expert-parallel
size and ZeRO stage; `tessera.train.checkpoint` decides which rank writes which unit.

Getting a full parameter: ZeRO 1/2 and DeepSpeed's bf16 optimizer keep the fp32 master and the moments
as flat partitions, and link each model parameter to its fragment of them (`param._hp_mapping`, the
mapping DeepSpeed's universal checkpoint uses). `get_full_hp_param` all-reduces the fragments over the
parameter's data-parallel group (the expert-data-parallel group for experts): one parameter's full
tensor at a time, never the whole model. Under stage 0 the moments are the torch optimizer's state of
the parameter (fp32) or of its fp32 copy (bf16, DeepSpeed's unfused optimizer). Setting is local: each
rank copies its fragment out of the full tensor it read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tessera.model.experts import Experts
from tessera.parallel.expert_parallel import ExpertParallelExperts

__all__ = ["ParamSlot", "MOMENTS", "param_slots", "read_full", "write_full", "adam_step", "set_adam_step",
           "buffers", "link_optimizer_states"]

MOMENTS = ("exp_avg", "exp_avg_sq")
"""AdamW's state tensors, stored next to the fp32 master under these names."""


@dataclass
class ParamSlot:
    """One model parameter of this rank and the units it holds."""

    name: str
    """The plain model's name (no `.local.` of the expert-parallel adapter)."""
    param: nn.Parameter
    first_expert: int | None
    """Global index of the first expert this rank holds (dim 0 of the parameter), None if not stacked."""

    def unit(self, local_index: int | None = None) -> str:
        return self.name if local_index is None else f"{self.name}/{self.first_expert + local_index}"

    @property
    def units(self) -> list[str]:
        if self.first_expert is None:
            return [self.name]
        return [self.unit(j) for j in range(self.param.shape[0])]


def param_slots(module: nn.Module) -> list[ParamSlot]:
    """Every trainable parameter of `module` (the engine's module), in the same order on every rank."""
    stacked: dict[str, int] = {}  # module prefix -> global index of its first expert
    for prefix, sub in module.named_modules():
        if isinstance(sub, ExpertParallelExperts):
            rank = dist.get_rank(group=sub.ep_group)
            stacked[f"{prefix}.local."] = rank * sub.num_local_experts
        elif isinstance(sub, Experts):
            stacked.setdefault(f"{prefix}.", 0)
    slots = []
    for name, param in module.named_parameters():
        owner = next((p for p in stacked if name.startswith(p)), None)
        if owner is None:
            slots.append(ParamSlot(name, param, None))
        else:
            plain = name.replace(".local.", ".") if owner.endswith(".local.") else name
            slots.append(ParamSlot(plain, param, stacked[owner]))
    return slots


def _torch_optimizer(engine) -> torch.optim.Optimizer:
    """The torch AdamW inside DeepSpeed's wrapper (or the client optimizer itself under stage 0 fp32)."""
    inner = getattr(engine.optimizer, "optimizer", None)
    return inner if isinstance(inner, torch.optim.Optimizer) else engine.optimizer


def _has_hp_mapping(param: nn.Parameter) -> bool:
    return getattr(param, "_hp_mapping", None) is not None or hasattr(param, "get_full_hp_param")


def _fp32_copy(engine, param: nn.Parameter) -> torch.Tensor:
    """The fp32 master the torch optimizer steps for `param`: DeepSpeed's unfused bf16 optimizer (one
    rank, stage 0) keeps one per parameter in `fp32_groups`; in fp32 the parameter is its own master."""
    optimizer = engine.optimizer
    for low, high in zip(getattr(optimizer, "fp16_groups", []), getattr(optimizer, "fp32_groups", []),
                         strict=True):
        for candidate, master in zip(low, high, strict=True):
            if candidate is param:
                return master
    return param


def read_full(engine, slot: ParamSlot) -> dict[str, torch.Tensor]:
    """{"master", "exp_avg", "exp_avg_sq"}: fp32 full tensors of this rank's parameter (its expert slice).
    Collective over the parameter's data-parallel group under ZeRO / bf16."""
    param = slot.param
    if _has_hp_mapping(param):
        return {"master": param.get_full_hp_param(),
                **{key: param.get_full_hp_param(key) for key in MOMENTS}}
    master = _fp32_copy(engine, param)
    state = _torch_optimizer(engine).state.get(master, {})
    zeros = torch.zeros_like(param, dtype=torch.float32)
    return {"master": master.detach().float().clone(),
            **{key: state[key].detach().clone() if key in state else zeros for key in MOMENTS}}


def write_full(engine, slot: ParamSlot, tensors: dict[str, torch.Tensor]) -> None:
    """Set this rank's fragment of the master and moments, and the model weight (master in its dtype)."""
    param = slot.param
    with torch.no_grad():
        param.copy_(tensors["master"].to(param.dtype).view_as(param))
    if _has_hp_mapping(param):
        for key in (None, *MOMENTS):
            param.set_full_hp_param(tensors["master" if key is None else key].view_as(param), key)
        return
    master = _fp32_copy(engine, param)
    if master is not param:
        with torch.no_grad():
            master.copy_(tensors["master"].view_as(master))
    state = _torch_optimizer(engine).state[master]
    for key in MOMENTS:
        state[key].copy_(tensors[key].view_as(param))


def adam_step(engine) -> int:
    """AdamW's step count (bias correction); the same for every parameter: all update on every step."""
    steps = {int(s["step"]) for s in _torch_optimizer(engine).state.values() if "step" in s}
    if len(steps) > 1:
        raise AssertionError(f"optimizer state has several step counts {sorted(steps)}")  # a bug, not input
    return steps.pop() if steps else 0


def set_adam_step(engine, step: int) -> None:
    """Create AdamW's state (moments zero, step `step`) in a fresh engine, linked to the parameters'
    fragments, so that `write_full` can fill it. The torch optimizer creates it lazily at its first
    step, which a resumed engine has not taken yet. Under ZeRO and bf16 its parameters are the flat
    fp32 partitions."""
    optimizer = _torch_optimizer(engine)
    for group in optimizer.param_groups:
        on_device = group.get("fused") or group.get("capturable")
        for tensor in group["params"]:
            state = optimizer.state[tensor]
            for key in MOMENTS:
                state.setdefault(key, torch.zeros_like(tensor, memory_format=torch.preserve_format))
            device = tensor.device if on_device else torch.device("cpu")
            state["step"] = torch.tensor(float(step), dtype=torch.float32, device=device)
    link_optimizer_states(engine)


def link_optimizer_states(engine) -> None:
    """(Re)link every parameter's fragment to the optimizer state. DeepSpeed links all groups once,
    after the first group's first step, when the other groups (the experts') have no state yet; their
    fragments stay unlinked until this is called."""
    if hasattr(engine.optimizer, "_lazy_init_hp_params_optimizer_state"):
        engine.optimizer._hp_optimizer_states_linked = False
        engine.optimizer._lazy_init_hp_params_optimizer_state()


def buffers(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Persistent buffers (e.g. the routers' balancing bias): replicated on every rank."""
    params = {name for name, _ in module.named_parameters()}
    for name, tensor in module.state_dict().items():
        if name not in params:
            yield name, tensor
