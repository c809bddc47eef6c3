"""One rank of tests/parallel/test_expert_parallel.py (started by torch.multiprocessing): the all-to-all
experts against the dense `Experts` on the same rows, forward and backward."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def check_rank(rank: int, world_size: int, port: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from tessera.model.experts import Experts
    from tessera.parallel.dist import init_distributed
    from tessera.parallel.env import DistEnv
    from tessera.parallel.expert_parallel import (
        ExpertParallelExperts,
        apply_expert_parallel,
        gather_full_state_dict,
    )

    init_distributed(DistEnv.from_environ())
    torch.manual_seed(0)  # same experts on every rank
    dense = Experts(num_experts=4, d_model=16, hidden=8)
    holder = nn.Module()
    holder.experts = Experts(num_experts=4, d_model=16, hidden=8)
    holder.experts.load_state_dict(dense.state_dict())
    assert apply_expert_parallel(holder, 2) == 1 and isinstance(holder.experts, ExpertParallelExperts)
    local = holder.experts.local
    assert local.gate_up_proj.shape[0] == 2 and local.gate_up_proj.allreduce is False

    # Uneven rows per rank and per expert, one expert with none on this rank.
    torch.manual_seed(10 + rank)
    counts_E = torch.tensor([3, 0, 5, 2]) if rank == 0 else torch.tensor([1, 4, 0, 6])
    x_SD = torch.randn(int(counts_E.sum()), 16)
    w_SD = torch.randn_like(x_SD)

    x_dense = x_SD.clone().requires_grad_()
    (dense(x_dense, counts_E) * w_SD).sum().backward()
    x_ep = x_SD.clone().requires_grad_()
    y_ep = holder.experts(x_ep, counts_E)
    (y_ep * w_SD).sum().backward()

    torch.testing.assert_close(y_ep, dense(x_SD, counts_E), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x_ep.grad, x_dense.grad, rtol=1e-5, atol=1e-6)
    # An expert's gradient sums the rows of every rank: the dense grads summed over ranks, this rank's slice.
    for name in ("gate_up_proj", "down_proj"):
        total = getattr(dense, name).grad.clone()
        dist.all_reduce(total)
        mine = total[2 * rank : 2 * rank + 2]
        torch.testing.assert_close(getattr(local, name).grad, mine, rtol=1e-5, atol=1e-6)

    full = gather_full_state_dict(holder)
    assert set(full) == {"experts.gate_up_proj", "experts.down_proj"}
    for name, tensor in dense.state_dict().items():
        assert torch.equal(full[f"experts.{name}"], tensor)
    dist.destroy_process_group()
