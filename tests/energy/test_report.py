"""The energy report from logs the test writes: arithmetic, per-stage sums, benchmarks, training FLOPs,
grids, plots."""

from __future__ import annotations

import csv
import json

import pytest

from tessera.config import to_dict
from tessera.energy.records import append_record
from tessera.energy.report import REPORT_FILES, per_step_energy, read_training_metrics, write_report
from tessera.energy.summary import EnergySummary
from tessera.errors import DataError
from tessera.layout import RunLayout
from tessera.model.config import PRESETS, train_flops_per_token

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_run(layout: RunLayout, make_record, *, with_gpus: bool) -> None:
    """A small run's logs: data, tokenizer, two training segments on two ranks, one evaluation."""
    gpus = (lambda uuid, j: {uuid: j}) if with_gpus else (lambda uuid, j: {})
    e = layout.energy_dir
    append_record(e / "prepare_data.jsonl", make_record("prepare_data", cpu_j=360.0, mem_j=36.0, start=0.0))
    append_record(e / "tokenize-ita-train.jsonl", make_record("tokenize-ita-train", cpu_j=36.0, start=20.0))
    for seg, (step, start) in enumerate([(2, 100.0), (4, 200.0)]):
        job = f"train-stable-{step:06d}"
        for rank in range(2):
            append_record(
                e / f"{job}.jsonl",
                make_record(
                    job,
                    rank=rank,
                    local_rank=rank,
                    world_size=2,
                    invocation=f"seg{seg}",
                    gpus=gpus(f"GPU-{rank}", 1800.0),
                    cpu_j=180.0,
                    mem_j=18.0,
                    start=start,
                    time_s=60.0,
                    gpu_w=300.0,
                    cpu_w=30.0,
                ),
            )
    append_record(
        e / "evaluate-stable-000002.jsonl",
        make_record("evaluate-stable-000002", gpus=gpus("GPU-0", 360.0), cpu_j=36.0, start=170.0),
    )
    bench = layout.benchmarks_dir
    bench.mkdir(parents=True)
    rows = {
        "prepare_data": "12.5\t0:00:12\t512.0\t0\t0\t0\t0\t0\t80.0\t10.0\n",
        "train-stable-000002": "61.0\t0:01:01\t900.5\t0\t0\t0\t0\t0\tNA\t55\n",
    }
    for job, row in rows.items():
        (bench / f"{job}.tsv").write_text(BENCH_HEADER + row)
    # The last checkpoint of the stage carries the model the FLOPs are counted for.
    model = to_dict(PRESETS["debug"])
    checkpoint = layout.checkpoint("stable", 4)
    checkpoint.mkdir(parents=True)
    (checkpoint / "tessera.json").write_text(
        json.dumps({"model": model, "stage": "stable", "step": 4, "tokens_seen": 64})
    )
    # As the trainer logs (each step's energy summed over all ranks); step 4 from a one-process run
    # without energy_j_per_token.
    lines = [
        {
            "stage": "stable",
            "step": s,
            "tokens_seen": 16 * s,
            "energy_j": 100.0 * s,
            "energy_j_per_token": 6.25 * s,
        }
        for s in range(1, 4)
    ] + [{"stage": "stable", "step": 4, "tokens_seen": 64, "energy_j": 320.0}]
    state = layout.state_dir("stable")
    state.mkdir(parents=True)
    (state / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_report_arithmetic_from_synthetic_logs(run_config, make_record):
    cfg = run_config(pue=1.5, gpu_type="H100-64GB")
    layout = RunLayout(cfg.out_dir)
    write_run(layout, make_record, with_gpus=True)
    summary = write_report(cfg, query_sacct=False)

    for name in REPORT_FILES:
        path = layout.reports_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    # IT energy: prepare 396 + tokenize 36 + train 2 x (2 x 1800 + 198) + evaluate 396 = 8424 J.
    totals = summary.totals
    assert totals.it_kwh.value == pytest.approx(8424 / 3.6e6)
    assert totals.it_kwh.kind == "estimated+measured"
    assert totals.it_measured_kwh.value == pytest.approx(7560 / 3.6e6)  # the GPU energy
    assert totals.facility_kwh.value == pytest.approx(1.5 * 8424 / 3.6e6)
    assert totals.co2e_kg.value == pytest.approx(1.5 * 8424 / 3.6e6 * 330.7 / 1e3)
    assert totals.gpu_hours.value == pytest.approx((4 * 60.0 + 10.0) / 3600)
    assert totals.wall_time_s.value == pytest.approx(260.0)
    # One node each: prepare 10 s, tokenize 10 s, two segments of 60 s, evaluate 10 s.
    assert totals.node_hours.value == pytest.approx(150.0 / 3600)
    assert summary.components["gpu"].kind == "measured"
    assert summary.components["cpu"].kind == "estimated"

    stages = {s.stage: s for s in summary.stages}
    assert stages["train/stable"].jobs == 2
    assert stages["train/stable"].gpu_j == pytest.approx(7200.0)
    assert stages["train/stable"].cpu_j == pytest.approx(360.0)  # once per node, not per rank
    assert set(stages) == {"prepare_data", "tokenize", "train/stable", "evaluate"}

    jobs = {j.job: j for j in summary.jobs}
    assert jobs["prepare_data"].benchmark_s == 12.5 and jobs["prepare_data"].max_rss_mb == 512.0
    assert jobs["train-stable-000002"].mean_load is None  # "NA" in the benchmark file
    assert any("tokenize-ita-train" in note for note in summary.notes)  # no benchmark file

    grids = {g.country: g for g in summary.grids}
    assert grids["ITA"].site and not grids["ESP"].site
    assert grids["ESP"].co2e_kg == pytest.approx(1.5 * 8424 / 3.6e6 * 174.1 / 1e3)

    training = summary.training
    flops_per_token = train_flops_per_token(PRESETS["debug"], 8)
    assert training.tokens.value == 4 * 16
    # steps x batch x seq_len: a formula over the config, not a counter.
    assert training.tokens.kind == "computed"
    assert training.flops.value == pytest.approx(64 * flops_per_token)
    assert training.gpu_j_per_flop.value == pytest.approx(7200.0 / (64 * flops_per_token))
    assert training.floor_j_per_flop.value == pytest.approx(700.0 / 989e12)
    ratio = 7200.0 / (64 * flops_per_token) / (700.0 / 989e12)
    assert training.ratio_to_floor.value == pytest.approx(ratio)
    assert training.tokens_per_kwh.value == pytest.approx(64 / (7596 / 3.6e6))
    assert training.steps_with_energy == 4
    steps = per_step_energy(read_training_metrics(layout, ["stable"]), cfg)
    assert [s["j_per_token"] for s in steps] == pytest.approx([6.25, 12.5, 18.75, 20.0])
    assert [s.j_per_token for s in training.segments] == pytest.approx([3798 / 32, 3798 / 32])

    rows = list(csv.DictReader((layout.reports_dir / "energy.csv").open()))
    assert len(rows) == 5 and {r["job"] for r in rows} == set(jobs)
    assert EnergySummary.read(layout.reports_dir / "energy.json") == summary
    md = (layout.reports_dir / "energy.md").read_text()
    assert md.count("| train-stable-") == 2 and "| prepare_data | prepare_data |" in md


def test_cpu_only_run_says_so(run_config, make_record):
    cfg = run_config()
    layout = RunLayout(cfg.out_dir)
    write_run(layout, make_record, with_gpus=False)
    elsewhere = make_record("eval_report", cpu_j=1.0)
    elsewhere["site"]["name"] = "leonardo"  # a job whose record says it ran elsewhere
    append_record(layout.energy_dir / "eval_report.jsonl", elsewhere)
    summary = write_report(cfg, query_sacct=False)
    assert summary.components["gpu"].kind == "none"
    assert summary.totals.gpu_hours.value == 0.0
    assert summary.training.floor_j_per_flop.value is None
    assert any("CPU-only" in note for note in summary.notes)
    assert any("site(s) leonardo" in note for note in summary.notes)
    assert (layout.reports_dir / "energy_power.png").stat().st_size > 0


def test_missing_logs_name_the_folder(run_config):
    cfg = run_config()
    with pytest.raises(DataError, match="energy"):
        write_report(cfg, query_sacct=False)


def test_failed_attempts_are_counted_once(run_config, make_record):
    cfg = run_config()
    layout = RunLayout(cfg.out_dir)
    failed = make_record("train-stable-000002", invocation="a1", cpu_j=50.0, status="error: PreemptedError")
    append_record(layout.energy_dir / "failed" / "train-stable-000002.jsonl", failed)
    append_record(layout.energy_dir / "train-stable-000002.jsonl", failed)  # also kept (--keep-incomplete)
    append_record(
        layout.energy_dir / "train-stable-000002.jsonl",
        make_record("train-stable-000002", invocation="a2", cpu_j=70.0, start=2000.0),
    )
    append_record(
        layout.energy_dir / "failed" / "evaluate-stable-000002.jsonl",
        make_record("evaluate-stable-000002", cpu_j=5.0, status="error: CheckpointError"),
    )
    jobs = {j.job: j for j in write_report(cfg, query_sacct=False).jobs}
    assert jobs["train-stable-000002"].cpu_j == pytest.approx(120.0)
    assert jobs["train-stable-000002"].failed_attempts == 1
    assert jobs["train-stable-000002"].status == "ok"
    assert jobs["evaluate-stable-000002"].status == "error: CheckpointError"
