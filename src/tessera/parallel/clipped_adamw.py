"""AdamW that clips by the global gradient norm and skips a step whose norm is not finite.

Used for ZeRO stage 0 in fp32, where DeepSpeed hands the step to the client optimizer as it is. There,
DeepSpeed's own clipping averages the ranks' local norms (not the global norm once experts are sharded
over ranks) and nothing checks for non-finite gradients. ZeRO 1/2 and the bf16 optimizer do both
themselves; this class gives stage 0 the same contract: after `step()`, the engine reads `overflow`
(the update was skipped) and `_global_grad_norm`, as it reads them from its own optimizers.

The global norm: dense gradients are identical on every rank once reduced; expert gradients differ
between the ranks of an expert-parallel group, so their squared norms are summed over that group.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from deepspeed.utils import groups
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

__all__ = ["ClippedAdamW"]


class ClippedAdamW(torch.optim.AdamW):
    def __init__(self, params, *, max_norm: float, **adamw) -> None:
        super().__init__(params, **adamw)
        self.max_norm = max_norm
        self.overflow = False
        self._global_grad_norm: float | None = None

    def _grads(self) -> tuple[list[torch.Tensor], dict[str, list[torch.Tensor]]]:
        """(dense gradients, expert gradients by expert-parallel group name)."""
        dense: list[torch.Tensor] = []
        experts: dict[str, list[torch.Tensor]] = {}
        for group in self.param_groups:
            grads = [p.grad for p in group["params"] if p.grad is not None]
            (experts.setdefault(group["name"], []) if group.get("moe") else dense).extend(grads)
        return dense, experts

    def global_grad_norm(self) -> torch.Tensor:
        dense, experts = self._grads()
        squared = get_total_norm(dense) ** 2
        for name, grads in experts.items():
            expert_squared = get_total_norm(grads) ** 2
            dist.all_reduce(expert_squared, group=groups._get_expert_parallel_group(name))
            squared = squared + expert_squared
        return squared.sqrt()

    def _clip_coefficient_below_one(self, dtype: torch.dtype) -> bool:
        """Whether torch's clip coefficient min(max_norm / (norm + 1e-6), 1) is below 1, computed as torch
        does (in the norm's dtype) on a host copy: at 1 the clip would multiply every gradient by 1."""
        host_norm = torch.tensor(self._global_grad_norm, dtype=dtype)
        return bool(self.max_norm / (host_norm + 1e-6) < 1)

    @torch.no_grad()
    def step(self, closure=None):
        norm = self.global_grad_norm()
        self._global_grad_norm = norm.item()  # the step's one host sync
        self.overflow = not math.isfinite(self._global_grad_norm)
        if self.overflow:
            return None
        if self.max_norm > 0 and self._clip_coefficient_below_one(norm.dtype):
            params = [p for group in self.param_groups for p in group["params"]]
            clip_grads_with_norm_(params, self.max_norm, norm)  # skips parameters without gradients
        return super().step(closure)
