"""Merging energy records: ranks, nodes, retries, duplicates, and the JSONL file itself."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from tessera.energy.records import (
    append_record,
    bin_samples,
    combine_kinds,
    job_rule_and_stage,
    merge_job,
    read_records,
)
from tessera.errors import DataError


def test_two_ranks_one_node_count_cpu_and_memory_once(make_record):
    records = [
        make_record(
            "train-stable-000002",
            rank=0,
            local_rank=0,
            world_size=2,
            gpus={"GPU-a": 100.0},
            cpu_j=30.0,
            mem_j=10.0,
        ),
        make_record(
            "train-stable-000002",
            rank=1,
            local_rank=1,
            world_size=2,
            gpus={"GPU-b": 120.0},
            cpu_j=999.0,
            mem_j=999.0,
        ),  # non-main ranks' CPU figures are ignored by kind
    ]
    job = merge_job("train-stable-000002", records)
    assert job.gpu_j == pytest.approx(220.0)
    assert job.cpu_j == pytest.approx(30.0)
    assert job.mem_j == pytest.approx(10.0)
    assert job.total_j == pytest.approx(260.0)
    assert (job.num_gpus, job.num_nodes, job.num_ranks) == (2, 1, 2)
    assert job.kinds == {"gpu": "measured", "cpu": "estimated", "mem": "estimated"}
    assert job.gpu_hours == pytest.approx(2 * 10.0 / 3600)
    assert (job.rule, job.stage) == ("train", "train/stable")


def test_two_nodes_each_count_their_cpu_once(make_record):
    records = []
    for n, node in enumerate(["n1", "n2"]):
        for local in range(2):
            records.append(
                make_record(
                    "train-stable-000002",
                    node=node,
                    rank=2 * n + local,
                    local_rank=local,
                    world_size=4,
                    gpus={f"GPU-{node}-{local}": 50.0},
                    cpu_j=20.0,
                    mem_j=5.0,
                    start=1000.0 + n,
                    time_s=10.0,
                )
            )
    job = merge_job("train-stable-000002", records)
    assert job.gpu_j == pytest.approx(200.0)
    assert job.cpu_j == pytest.approx(40.0)
    assert job.mem_j == pytest.approx(10.0)
    assert (job.num_gpus, job.num_nodes, job.num_ranks) == (4, 2, 4)
    assert job.time_s == pytest.approx(11.0)  # first start to last end


def test_same_gpu_seen_by_two_ranks_counts_once(make_record):
    # Two ranks sharing one GPU (CUDA_VISIBLE_DEVICES listed it for both) must not double its energy.
    records = [
        make_record("evaluate-stable-000002", rank=r, local_rank=r, gpus={"GPU-a": 70.0 + r})
        for r in range(2)
    ]
    job = merge_job("evaluate-stable-000002", records)
    assert job.gpu_j == pytest.approx(71.0)
    assert job.num_gpus == 1


def test_identical_gpu_uuids_on_different_nodes_are_different_gpus(make_record):
    records = [make_record("j", node=n, gpus={"GPU-a": 10.0}) for n in ("n1", "n2")]
    assert merge_job("j", records).gpu_j == pytest.approx(20.0)


def test_retries_add_up_and_keep_the_failure_status(make_record):
    records = [
        make_record(
            "train-stable-000004",
            invocation="inv-1",
            gpus={"GPU-a": 40.0},
            cpu_j=4.0,
            status="error: PreemptedError",
        ),
        make_record("train-stable-000004", invocation="inv-2", gpus={"GPU-a": 60.0}, cpu_j=6.0, start=2000.0),
    ]
    job = merge_job("train-stable-000004", records)
    assert job.gpu_j == pytest.approx(100.0)
    assert job.cpu_j == pytest.approx(10.0)
    assert job.num_invocations == 2
    assert job.time_s == pytest.approx(20.0)
    assert job.failed_attempts == 1
    assert job.status == "ok"  # the latest attempt succeeded
    assert merge_job("j", records[:1]).status == "error: PreemptedError"


def test_kinds_combine():
    assert combine_kinds({"measured"}) == "measured"
    assert combine_kinds({"measured", "elsewhere"}) == "measured"
    assert combine_kinds({"measured", "estimated"}) == "estimated+measured"
    assert combine_kinds({"none", "estimated"}) == "estimated"
    assert combine_kinds({"none"}) == "none"
    assert combine_kinds(set()) == "none"


def test_job_names_map_to_rules_and_stages():
    assert job_rule_and_stage("train-stable-000050") == ("train", "train/stable")
    assert job_rule_and_stage("train-long-ctx-000050") == ("train", "train/long-ctx")
    assert job_rule_and_stage("tokenize-ita-train") == ("tokenize", "tokenize")
    assert job_rule_and_stage("prepare_data") == ("prepare_data", "prepare_data")


def test_binning_keeps_the_mean_power():
    t = [float(i) for i in range(1000)]
    watts = [float(i % 7) for i in range(1000)]
    binned = bin_samples(t, watts, watts, max_samples=100)
    assert len(binned["t_s"]) == 100
    assert sum(binned["gpu_w"]) / 100 == pytest.approx(sum(watts) / 1000)
    assert bin_samples(t[:5], watts[:5], watts[:5], 100)["t_s"] == t[:5]


def _writer(args) -> None:
    path, worker = args
    for i in range(50):
        append_record(path, {"schema": 1, "worker": worker, "i": i, "pad": "x" * 2000})


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "energy" / "job.jsonl"
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(_writer, [(path, w) for w in range(4)])
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["pad"] == "x" * 2000 for line in lines)


def test_truncated_last_line_is_skipped_but_a_corrupt_middle_is_an_error(tmp_path, make_record):
    path = tmp_path / "j.jsonl"
    append_record(path, make_record("j"))
    with open(path, "a") as f:
        f.write('{"schema": 1, "job": "j", "trunc')
    assert len(read_records(path)) == 1
    with open(path, "a") as f:
        f.write("\n" + json.dumps(make_record("j")) + "\n")
    with pytest.raises(DataError, match="not a JSON energy record"):
        read_records(path)


def test_other_schema_is_rejected(tmp_path, make_record):
    path = tmp_path / "j.jsonl"
    append_record(path, {**make_record("j"), "schema": 99})
    with pytest.raises(DataError, match="schema 99"):
        read_records(path)
