"""A run state moves between parallel layouts: stage s1 trained 10 steps on 2 ranks (expert parallel 2,
ZeRO-2), then resumed on 1 rank (EP 1, ZeRO-0) and on 4 ranks (EP 2 and EP 4), gloo on CPU.

- right after loading, the new layout's state (saved again before any step) holds bitwise the saved
  fp32 master weights and Adam moments: the format does not depend on the layout;
- the next 10 losses match an uninterrupted 2-rank run to 1e-5 relative (fp32: only the summation
  order of the gradient reduction differs);
- the data position continues: the loader's sample numbers of the 20 steps cover each sample once;
- the layout change is in the metrics log and the state's history.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp
from safetensors import safe_open

from tessera.data.loader import TokenLoader
from tessera.layout import RunLayout
from tessera.parallel.dist import free_port
from tessera.train.callbacks.loggers import read_metrics
from tests.train.layout_worker import resume_rank
from tests.train.mini_run import REPO, make_mini_run, srun_like, wait_ranks

pytestmark = pytest.mark.slow

STAGE = {"name": "s1", "steps": 20, "seq_len": 64, "batch_size": 8, "mixture": {"ita": 0.7, "eng": 0.3},
         "lr": {"peak": 1e-2, "warmup_steps": 2}}
TRAIN = {"expert_parallel_size": 2, "zero_stage": 2, "checkpoint_every": 10, "save_state_every": 10,
         "stages": [STAGE]}


def _tensors(state: Path) -> dict[str, object]:
    """Every stored tensor of a run state (RNG states aside), by key."""
    out = {}
    for file in sorted(state.glob("rank-*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            out.update({k: handle.get_tensor(k) for k in handle.keys() if not k.startswith("rng.")})
    return out


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory) -> tuple[RunLayout, Path, RunLayout]:
    """(uninterrupted 20-step layout, config and layout of a run stopped at step 10), both 2 ranks."""
    tmp = tmp_path_factory.mktemp("layouts")
    straight_config, straight = make_mini_run(tmp / "straight", **TRAIN)
    split_config, split = make_mini_run(tmp / "split", **TRAIN)
    runs = [srun_like(straight_config, "train", "--stage", "s1", ntasks=2, logs=tmp / "straight"),
            srun_like(split_config, "train", "--stage", "s1", "--until-step", "10", ntasks=2,
                      logs=tmp / "split")]
    for ranks, logs in zip(runs, (tmp / "straight", tmp / "split"), strict=True):
        wait_ranks(ranks, logs)
    return straight, split_config, split


@pytest.mark.parametrize("world_size,ep_size", [(1, 1), (4, 2), (4, 4)])
def test_state_resumes_on_another_layout(two_rank_runs, tmp_path, world_size, ep_size):
    straight, split_config, split = two_rank_runs
    run = tmp_path / "results" / "mini"
    shutil.copytree(split.root, run)
    config = tmp_path / "mini.yaml"
    config.write_text(split_config.read_text().replace(str(split_config.parent), str(tmp_path)))
    layout, saved = RunLayout(run), RunLayout(run).state_dir("s1") / "step-000010"
    side = tmp_path / "reloaded"
    configs = [str(REPO / "config.yaml"), str(config)]
    overrides = [f"train.expert_parallel_size={ep_size}"]
    mp.spawn(resume_rank, args=(world_size, free_port(), configs, overrides, str(side)), nprocs=world_size,
             join=True)

    # Loaded exactly: the same keys, bitwise the same fp32 masters and moments.
    before, after = _tensors(saved), _tensors(side / "step-000010")
    assert before.keys() == after.keys()
    assert [k for k in before if not before[k].equal(after[k])] == []
    reloaded_meta = json.loads((side / "step-000010" / "meta.json").read_text())
    assert reloaded_meta["adam_step"] == 10 and reloaded_meta["world_size"] == world_size

    # The next ten steps are the uninterrupted run's, up to summation order.
    ours = read_metrics(layout.state_dir("s1") / "metrics.jsonl")
    reference = read_metrics(straight.state_dir("s1") / "metrics.jsonl")
    assert [r["step"] for r in ours] == list(range(1, 21))
    np.testing.assert_allclose([r["loss"] for r in ours[10:]], [r["loss"] for r in reference[10:]], rtol=1e-5)
    assert ours[10]["tokens_seen"] == reference[10]["tokens_seen"]
    assert "2 ranks" in ours[10]["layout_change"] and f"-> {world_size} rank" in ours[10]["layout_change"]
    assert f"EP {ep_size}" in ours[10]["layout_change"].split("->")[1]
    history = json.loads((layout.state_dir("s1") / "step-000020" / "meta.json").read_text())["history"]
    spans = [(h["world_size"], h["expert_parallel_size"], h["first_step"], h["last_step"]) for h in history]
    assert spans == [(2, 2, 1, 10), (world_size, ep_size, 11, 20)]
    published = json.loads((layout.checkpoint("s1", 20) / "tessera.json").read_text())
    assert published["history"] == history

    # The data position continues: steps 1-10 on 2 ranks, 11-20 on the new layout, each sample once.
    seen = []
    for ranks, steps in ((2, range(0, 10)), (world_size, range(10, 20))):
        accumulation = 8 // (2 * ranks)
        for rank in range(ranks):
            loader = TokenLoader({"ita": layout.tokens("ita", "train"), "eng": layout.tokens("eng", "train")},
                                 STAGE["mixture"], 64, 2, seed=0, rank=rank, world_size=ranks,
                                 grad_accum_steps=accumulation)
            seen += [n for step in steps for micro in range(accumulation)
                     for n in loader.sample_numbers(step, micro).tolist()]
    assert sorted(seen) == list(range(20 * 8))
