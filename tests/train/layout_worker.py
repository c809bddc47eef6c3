"""One rank of tests/train/test_layout_change.py (started by torch.multiprocessing): resume a stage on
a new layout, save the freshly loaded state to a side folder (before any step), then train on."""

from __future__ import annotations

import os
from pathlib import Path


def resume_rank(rank: int, world_size: int, port: int, configs: list[str], overrides: list[str],
                side_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    from tessera.config import load
    from tessera.train.checkpoint import save_state
    from tessera.train.trainer import Segment

    cfg = load([Path(c) for c in configs], overrides)
    stage = cfg.train.stage("s1")
    segment = Segment(cfg, stage, stage.num_steps, None)
    try:
        segment.restore()
        save_state(Path(side_dir), segment.meta, segment.engine)
        segment.train()
    finally:
        segment.release()
