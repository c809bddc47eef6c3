"""Expert parallelism over 2 gloo ranks: the all-to-all experts compute what the dense experts compute."""

from __future__ import annotations

import pytest
import torch.multiprocessing as mp

from tessera.parallel.dist import free_port
from tests.parallel.ep_worker import check_rank


@pytest.mark.slow
def test_all_to_all_experts_match_dense_experts():
    # spawn: a fresh interpreter per rank (a fork would inherit this process's torch threads and state).
    mp.spawn(check_rank, args=(2, free_port()), nprocs=2, join=True)
