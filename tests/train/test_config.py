"""The train section: stage lengths in steps or tokens, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.config import from_dict, load
from tessera.errors import ConfigError
from tessera.layout import checkpoint_steps
from tessera.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def _stage(**kw) -> dict:
    return {"name": "stable", "seq_len": 64, "batch_size": 8, "mixture": {"ita": 1.0}, "steps": 10, **kw}


def test_demo_stages_publish_two_checkpoints_each():
    cfg = load(REPO / "config.yaml")
    names = [s.name for s in cfg.train.stages]
    assert names == ["stable", "anneal"]
    for stage in cfg.train.stages:
        assert len(checkpoint_steps(stage.num_steps, cfg.train.checkpoint_every)) == 2
        assert stage.mixture["ita"] == max(stage.mixture.values())  # Italian up-weighted
    assert cfg.train.stages[-1].lr.decay != "none" and cfg.train.stages[-1].lr.final == 0.0


def test_tokens_round_up_to_whole_steps():
    cfg = from_dict(TrainConfig, {"stages": [_stage(steps=None, tokens=1000)]}, "train")
    assert cfg.stages[0].num_steps == 2  # 1000 / (8 x 64) rounded up


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"stages": [_stage(tokens=100)]}, "exactly one of steps or tokens"),
        ({"stages": [_stage(), _stage()]}, "unique"),
        ({"stages": []}, "at least one stage"),
        ({"stages": [_stage(batch_size=6)], "micro_batch_size": 4}, "batch_size: 6 is not a multiple"),
        ({"stages": [_stage(lr={"warmup_steps": 8, "decay_steps": 5})]}, "exceed the stage's 10 steps"),
        ({"stages": [_stage()], "zero_stage": 3}, "allowed values: 0, 1, 2"),
        ({"stages": [_stage(mixture={})]}, "mixture"),
    ],
)
def test_bad_values_name_the_key(train, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, train, "train")


def test_unknown_stage_lists_the_stages():
    cfg = from_dict(TrainConfig, {"stages": [_stage()]}, "train")
    with pytest.raises(ConfigError, match="no stage named 'anneal'; stages: stable"):
        cfg.stage("anneal")


def test_marenostrum_continuation_keeps_the_leonardo_run_and_moves_the_site():
    """configs/marenostrum-continue.yaml over the Leonardo preset: same run folder, stages and checkpoint
    steps (the copied state and checkpoints are found), another site for the energy report and history."""
    leonardo = load([REPO / "config.yaml", REPO / "configs" / "leonardo.yaml"], [])
    moved = load([REPO / "config.yaml", REPO / "configs" / "leonardo.yaml",
                  REPO / "configs" / "marenostrum-continue.yaml"], [])
    assert moved.out_dir == leonardo.out_dir and moved.model == leonardo.model
    assert moved.train.stages == leonardo.train.stages
    assert moved.train.checkpoint_every == leonardo.train.checkpoint_every
    assert (moved.site.name, moved.site.gpu_type) == ("marenostrum5", "H100-64GB")


def test_resume_changes_names_only_comparable_keys():
    with pytest.raises(ConfigError, match=r"resume_changes: d_model cannot be allowed"):
        from_dict(TrainConfig, {"stages": [_stage(resume_changes=["d_model"])]}, "train").check("train")
