"""Callbacks: the JSONL log survives kills and resumes, throughput/MFU and MoE statistics are right."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from tessera.energy.meter import EnergyReading
from tessera.model.moe import MoEOutput
from tessera.train.callbacks import (
    EnergyCallback,
    JsonlLogger,
    MoEStatsCallback,
    ProgressPrinter,
    StepRecord,
    TensorBoardLogger,
    ThroughputCallback,
)
from tessera.train.callbacks.loggers import read_metrics


def _record(step: int, **metrics) -> StepRecord:
    return StepRecord(stage="s", step=step, num_steps=10, tokens_seen=step * 100, step_tokens=100,
                      step_time_s=0.5, metrics={"loss": 1.0 / step, "lr": 1e-3, **metrics})


def test_jsonl_log_is_cut_back_to_the_resumed_step(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    log = JsonlLogger(path)
    log.on_start("s", 0, 10)
    for step in range(1, 7):
        log.on_step_end(_record(step))
    log.on_end()
    with open(path, "a") as f:
        f.write('{"step": 7, "lo')  # a line torn by SIGKILL
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5, 6]
    log = JsonlLogger(path)
    log.on_start("s", 4, 10)  # the run state was at step 4: steps 5-6 will be redone
    log.on_step_end(_record(5))
    log.on_end()
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    assert json.loads(path.read_text().splitlines()[-1])["tokens_seen"] == 500


def test_throughput_and_mfu():
    record = _record(1)
    ThroughputCallback(flops_per_token=1e9, peak_flops_per_rank=1e12, world_size=2).on_step_end(record)
    assert record.metrics["tokens_per_s"] == pytest.approx(200.0)
    assert record.metrics["mfu"] == pytest.approx(200.0 * 1e9 / 2e12)
    record = _record(1)
    ThroughputCallback(1e9, None, 1).on_step_end(record)  # CPU: no peak, no MFU
    assert record.metrics["mfu"] is None


class _ScriptedMeter:
    """This rank's cumulative readings, one per read()."""

    def __init__(self, totals_j: list[float]) -> None:
        self.readings = iter(EnergyReading(time_s=i, gpu_j=0.0, cpu_j=t, mem_j=0.0, total_j=t)
                             for i, t in enumerate(totals_j))

    def read(self) -> EnergyReading:
        return next(self.readings)


def test_step_energy_is_summed_over_ranks_and_divided_by_the_whole_step():
    # This rank used 3 J in the step; the other rank (seen through the all-reduce) used 5 J.
    other_rank_j = 5.0
    callback = EnergyCallback(_ScriptedMeter([10.0, 13.0]),
                              sum_over_ranks=lambda values: [values[0] + other_rank_j, values[1]])
    callback.on_start("s", 0, 10)
    record = _record(1)  # 100 tokens in the step, over both ranks
    callback.on_step_end(record)
    assert record.metrics["energy_j"] == pytest.approx(8.0)
    assert record.metrics["energy_j_per_token"] == pytest.approx(0.08)
    assert record.metrics["tokens_per_kwh"] == pytest.approx(100 * 3.6e6 / 8.0)


def test_moe_statistics_over_layers():
    def layer(counts, entropy):
        counts = torch.tensor(counts)
        zero = torch.tensor(0.0)
        return MoEOutput(aux_loss=zero, load_balance_loss=torch.tensor(1.0), z_loss=zero,
                         tokens_per_expert=counts, load_imbalance=counts.max() / counts.float().mean(),
                         router_entropy=torch.tensor(entropy))

    record = _record(1)
    record.moe_stats = [layer([4, 4, 4, 4], 1.2), layer([10, 2, 2, 2], 0.8)]
    MoEStatsCallback().on_step_end(record)
    m = record.metrics
    assert m["moe_load_imbalance"] == pytest.approx((1.0 + 2.5) / 2)
    assert m["moe_load_imbalance_max"] == pytest.approx(2.5)
    assert m["moe_router_entropy"] == pytest.approx(1.0)
    assert m["moe_top_expert_share"] == pytest.approx(10 / 16)


def test_progress_line_every_n_steps_and_at_the_segment_end():
    out = io.StringIO()
    printer = ProgressPrinter(every=4, until_step=6, stream=out)
    printer.on_start("stable", 0, 10)
    for step in range(1, 7):
        record = _record(step, tokens_per_s=2000.0, mfu=None)
        printer.on_step_end(record)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[stable] training steps 1..6 of 10"
    assert [line.split()[2] for line in lines[1:]] == ["4/10", "6/10"]
    assert "2.0k tok/s" in lines[1] and "ETA" in lines[1]


def test_tensorboard_event_files(tmp_path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = TensorBoardLogger(tmp_path / "tb")
    board.on_start("s", 0, 10)
    for step in (1, 2):
        board.on_step_end(_record(step, grad_norm=None, skipped=False))
    board.on_end()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"s/loss", "s/lr"} <= set(events.Tags()["scalars"])  # None and bool values are left out
    assert [e.step for e in events.Scalars("s/loss")] == [100, 200]  # x axis: tokens seen
