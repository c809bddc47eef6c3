"""`tessera plan` end to end: the printed plan, plan.json, and an overlay the config validation accepts."""

from __future__ import annotations

import json

import pytest
import yaml
from snakemake.utils import validate

from tessera.cli import main
from tessera.config import load
from tessera.errors import ConfigError
from tessera.plan.planner import make_plan

from .conftest import REPO


def test_plan_for_the_leonardo_award(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "plan"
    assert (
        main(["plan", "--site", "leonardo", "--node-hours", "300000", "--days", "60", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "300,000 node-hours at leonardo" in printed and "assumed" in printed
    assert "## AI Act thresholds" in printed and "1e+25" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert plan["site"]["gpus_per_node"] == 4 and plan["site"]["pue"] == 1.1
    assert plan["reserve"]["eval_node_hours"] > 0 and plan["train_node_hours"] < 300000
    # Enough nodes to spend the training node-hours in 60 days.
    assert plan["nodes"] * 60 * 24 >= plan["train_node_hours"] > (plan["nodes"] - 1) * 60 * 24

    overlay = out / "overlay.yaml"
    cfg = load([REPO / "config.yaml", REPO / "configs" / "leonardo.yaml", overlay])
    chosen = next(s for s in plan["shapes"] if s["name"] == plan["chosen"])
    assert sum(s.num_steps for s in cfg.train.stages) == chosen["steps"]
    assert cfg.train.checkpoint_every == chosen["checkpoint_every"]
    assert cfg.site.allocation_node_hours == 300000
    # Every rank gets whole micro-batches: the batch is a multiple of ranks x micro-batch.
    ranks = plan["nodes"] * 4
    assert all(s.batch_size % (ranks * cfg.train.micro_batch_size) == 0 for s in cfg.train.stages)
    assert yaml.safe_load(overlay.read_text())["model"] == plan["chosen_section"]
    # The workflow's JSON schema accepts the layered configs too (Snakemake validates it at parse time).
    merged: dict = {}
    for path in (REPO / "config.yaml", REPO / "configs" / "leonardo.yaml", overlay):
        merged = _merge(merged, yaml.safe_load(path.read_text()))
    validate(merged, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def _merge(base: dict, other: dict) -> dict:
    """Snakemake's --configfile merge: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in other.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def test_calibration_replaces_the_assumption(tmp_path, leonardo):
    cfg, site = leonardo
    calibration = tmp_path / "calibration.json"
    calibration.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "gpu_type": "A100-64GB",
                "shapes": [
                    {
                        "name": "olmoe-1b-7b",
                        "tokens_per_s_per_gpu": 9000.0,
                        "mfu": 0.26,
                        "watts_per_gpu": 310.0,
                    }
                ],
            }
        )
    )
    plan = make_plan(cfg, site, 1000.0, days=10, calibration=calibration)
    olmoe = plan.shape("olmoe-1b-7b")
    assert olmoe.throughput.basis == "calibrated" and olmoe.throughput.tokens_per_s_per_gpu == 9000.0
    assert plan.shape("moe-0.7b-3b").throughput.basis == "assumed"
    # Another GPU type's calibration is not used.
    h100 = tmp_path / "h100.json"
    h100.write_text(calibration.read_text().replace("A100-64GB", "H100-64GB"))
    other = make_plan(cfg, site, 1000.0, days=10, calibration=h100)
    assert other.shape("olmoe-1b-7b").throughput.basis == "assumed"


def test_unknown_site_and_shape_are_named(tmp_path, monkeypatch, capsys, leonardo):
    monkeypatch.chdir(REPO)
    assert main(["plan", "--site", "nowhere", "--node-hours", "10"]) == 1
    assert "--site nowhere" in capsys.readouterr().err
    cfg, site = leonardo
    with pytest.raises(ConfigError, match="--shapes tiny"):
        make_plan(cfg, site, 100.0, shapes=["tiny"])
