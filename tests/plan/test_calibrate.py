"""`tessera calibrate` on CPU: a few steps of the demo shape, tokens/s and power from the energy meter."""

from __future__ import annotations

import json

from tessera.cli import main

from .conftest import REPO


def test_calibrate_the_demo_shape_on_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out, energy = tmp_path / "calibration.json", tmp_path / "energy" / "calibrate.jsonl"
    args = [
        "--config",
        str(REPO / "config.yaml"),
        "--set",
        f"run.results_dir={tmp_path}",
        "--set",
        "energy.codecarbon=false",
        "--energy-out",
        str(energy),
    ]
    assert main([*args, "calibrate", "--out", str(out), "--steps", "2"]) == 0
    data = json.loads(out.read_text())
    assert data["schema_version"] == 1 and data["device"] == "cpu" and data["gpu_type"] is None
    (shape,) = data["shapes"]
    assert shape["name"] == "run" and shape["error"] is None
    assert shape["seq_len"] == 128 and shape["micro_batch_size"] == 8 and shape["steps"] == 2
    assert shape["tokens_per_s_per_gpu"] > 0 and shape["seconds"] > 0
    assert shape["mfu"] is None  # no GPU peak on a CPU site
    assert energy.is_file()  # the verb ran inside the energy meter like every compute job
