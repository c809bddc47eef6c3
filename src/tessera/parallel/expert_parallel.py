"""Expert parallelism: shard each MoE layer's routed experts over an expert-parallel (EP) group and
exchange tokens with all-to-all. The only code in tessera that knows both the MoE and process groups.

The model's MoE calls `experts(x_sorted_SD, counts_E) -> y_sorted_SD` (rows grouped by global expert
id). `apply_expert_parallel` swaps every `Experts` module for `ExpertParallelExperts`, which keeps the
E / ep local experts of its EP rank and, in forward:
  1. exchanges per-expert row counts (all-to-all of counts_E viewed as [ep, E_local]),
  2. sends each rank the rows of the experts it holds (all-to-all, uneven splits),
  3. regroups the received rows by local expert (they arrive grouped by source rank), runs the local
     experts, restores the arrival order,
  4. sends the results back (the reverse all-to-all); the caller's combine sees its rows in order.
Both all-to-alls are differentiable (the backward of one is the other in reverse).

DeepSpeed must know which parameters are experts: their gradients are averaged over the expert-data-
parallel group (ranks holding the same experts), not the whole data-parallel group, and ZeRO partitions
them in their own optimizer groups. The adapter subclasses DeepSpeed's `MoE` so that the engine sees
"MoE layers" (`has_moe_layers`), and marks its parameters `allreduce=False` with their `group_name`,
which `deepspeed.moe.utils.split_params_into_different_moe_groups_for_optimizer` reads.

Shapes: S routed rows, R rows received, D d_model, E experts, L = E / ep local experts, P = ep ranks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from deepspeed.moe.layer import MoE as DeepSpeedMoE
from deepspeed.utils import groups
from torch import nn

from tessera.model.experts import Experts

__all__ = ["ExpertParallelExperts", "apply_expert_parallel", "expert_group_name", "gather_full_state_dict"]


def expert_group_name(ep_size: int) -> str:
    """DeepSpeed's name for the EP group of this size (the key of its expert group dictionaries)."""
    return f"ep_size_{ep_size}"


class _AllToAll(torch.autograd.Function):
    """Rows of x_SD split by `send_splits` go to each rank; rows arrive split by `recv_splits`."""

    @staticmethod
    def forward(ctx, x_SD, send_splits, recv_splits, group):  # noqa: D102
        ctx.send_splits, ctx.recv_splits, ctx.group = send_splits, recv_splits, group
        out_RD = x_SD.new_empty((sum(recv_splits), *x_SD.shape[1:]))
        dist.all_to_all_single(out_RD, x_SD.contiguous(), recv_splits, send_splits, group=group)
        return out_RD

    @staticmethod
    def backward(ctx, grad_RD):  # noqa: D102
        grad_SD = grad_RD.new_empty((sum(ctx.send_splits), *grad_RD.shape[1:]))
        dist.all_to_all_single(
            grad_SD, grad_RD.contiguous(), ctx.send_splits, ctx.recv_splits, group=ctx.group
        )
        return grad_SD, None, None, None


class ExpertParallelExperts(DeepSpeedMoE):
    """Drop-in for `Experts` holding experts [rank * L, (rank + 1) * L) of its EP group."""

    def __init__(self, local: Experts, num_experts: int, ep_size: int) -> None:
        # DeepSpeedMoE.__init__ builds DeepSpeed's own gate and experts; we need only its type and the
        # attributes the engine reads (num_experts, ep_size, expert_group_name).
        nn.Module.__init__(self)
        self.local = local
        self.num_experts = num_experts
        self.ep_size = ep_size
        self.num_local_experts = num_experts // ep_size
        self.expert_group_name = expert_group_name(ep_size)
        self.ep_group: dist.ProcessGroup | None = None

    def set_deepspeed_parallelism(self, use_data_before_expert_parallel_: bool = False) -> None:
        """Called by the DeepSpeed engine at start-up: create (once) and remember the EP group."""
        if self.expert_group_name not in groups._get_expert_parallel_group_dict():
            groups._create_expert_and_data_parallel(
                self.ep_size, use_data_before_expert_parallel_=use_data_before_expert_parallel_
            )
        self.ep_group = groups._get_expert_parallel_group(self.expert_group_name)

    def forward(self, x_sorted_SD: torch.Tensor, counts_E: torch.Tensor) -> torch.Tensor:
        P, L = self.ep_size, self.num_local_experts
        counts_PL = counts_E.to(torch.int64).view(P, L)
        recv_counts_PL = torch.empty_like(counts_PL)
        dist.all_to_all_single(recv_counts_PL, counts_PL.contiguous(), group=self.ep_group)
        # One host sync per layer for the split sizes: all-to-all needs them on the host.
        send_splits = counts_PL.sum(1).tolist()
        recv_splits = recv_counts_PL.sum(1).tolist()
        x_recv_RD = _AllToAll.apply(x_sorted_SD, send_splits, recv_splits, self.ep_group)

        # Arrived grouped by (source rank, local expert); the local experts want (local expert, source).
        expert_of_row_R = torch.repeat_interleave(
            torch.arange(L, device=counts_E.device).repeat(P), recv_counts_PL.flatten()
        )
        order_R = torch.argsort(expert_of_row_R, stable=True)
        y_local_RD = self.local(x_recv_RD.index_select(0, order_R), recv_counts_PL.sum(0))
        y_recv_RD = torch.empty_like(y_local_RD).index_copy(0, order_R, y_local_RD)
        return _AllToAll.apply(y_recv_RD, recv_splits, send_splits, self.ep_group)


def _shard(experts: Experts, rank: int, ep_size: int) -> Experts:
    """A new Experts holding this rank's slice of `experts`' stacked weights (copies, not views)."""
    local_count = experts.num_experts // ep_size
    lo, hi = rank * local_count, (rank + 1) * local_count
    local = Experts.__new__(Experts)
    nn.Module.__init__(local)
    local.num_experts, local.hidden = local_count, experts.hidden
    local.use_grouped_mm = experts.use_grouped_mm
    for name, param in experts.named_parameters(recurse=False):
        setattr(local, name, nn.Parameter(param.detach()[lo:hi].clone(), requires_grad=param.requires_grad))
    return local


def apply_expert_parallel(model: nn.Module, ep_size: int) -> int:
    """Shard every `Experts` of `model` over EP groups of `ep_size` ranks; returns how many were swapped.

    Needs the process group started. With ep_size 1 the experts stay dense and replicated (plain data
    parallelism); nothing is swapped.
    """
    if ep_size == 1:
        return 0
    world = dist.get_world_size()
    if world % ep_size:
        raise ValueError(f"expert_parallel_size {ep_size} does not divide the world size {world}")
    groups._create_expert_and_data_parallel(ep_size)
    ep_group = groups._get_expert_parallel_group(expert_group_name(ep_size))
    ep_rank = dist.get_rank(group=ep_group)
    swapped = 0
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if not isinstance(child, Experts):
                continue
            if child.num_experts % ep_size:
                raise ValueError(
                    f"expert_parallel_size {ep_size} does not divide num_experts {child.num_experts}"
                )
            adapter = ExpertParallelExperts(_shard(child, ep_rank, ep_size), child.num_experts, ep_size)
            adapter.ep_group = ep_group
            for param in adapter.parameters():
                param.allreduce = False  # DeepSpeed: reduce over the expert-data-parallel group only
                param.group_name = adapter.expert_group_name
            setattr(module, child_name, adapter)
            swapped += 1
    return swapped


def gather_full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded state dict (the plain model's names) on every rank: each EP layer's experts are
    all-gathered over its EP group and concatenated in expert order. Collective: every rank calls it."""
    state = {}
    adapters = {name: m for name, m in model.named_modules() if isinstance(m, ExpertParallelExperts)}
    for name, tensor in model.state_dict().items():
        owner = next((a for a in adapters if name.startswith(f"{a}.local.")), None)
        if owner is None:
            state[name] = tensor.detach()
            continue
        adapter = adapters[owner]
        parts = [torch.empty_like(tensor) for _ in range(adapter.ep_size)]
        dist.all_gather(parts, tensor.detach().contiguous(), group=adapter.ep_group)
        state[name.replace(f"{owner}.local.", f"{owner}.")] = torch.cat(parts)
    return state
