"""`tessera eval report` (eval/report.py): a row per checkpoint and language, task scores, plots, summary.

Named apart from tests/energy/test_report.py: pytest imports test files by basename (no __init__.py)."""

from __future__ import annotations

import csv
import json

from tessera.eval.report import REPORT_FILES, main_metric, score_metrics, write_report
from tessera.io import write_json
from tessera.layout import RunLayout

LANGS = ("ita", "eng")


def _result(stage: str, step: int, tokens_seen: int, bpb: dict[str, float], tasks: dict, **extra) -> dict:
    best = min(bpb.values())
    intrinsic = {
        lang: {"bits_per_byte": v, "perplexity": 2.0**v, "gap_to_best": v - best, "num_tokens": 100,
               "num_bytes": 400, "num_documents": 2}
        for lang, v in bpb.items()
    }
    return {"stage": stage, "step": step, "tokens_seen": tokens_seen, "checkpoint": f"train/{stage}/{step}",
            "intrinsic": intrinsic, "tasks": tasks, "skipped": [], "errors": [], **extra}


def test_report_rows_task_table_plots_and_summary(eval_run, published):
    layout = RunLayout(eval_run.out_dir)
    steps = published(eval_run)
    for index, (stage, step) in enumerate(steps):
        bpb = {"ita": 3.0 - 0.1 * index, "eng": 2.5 - 0.1 * index}
        tasks = {"tessera_xcopa_it": {"acc": 0.5 + 0.01 * index, "acc_stderr": 0.02, "num_samples": 500}}
        write_json(layout.eval_result(stage, step), _result(stage, step, 1000 * (index + 1), bpb, tasks))

    md_path = write_report(eval_run)

    reports = layout.reports_dir
    assert all((reports / name).is_file() for name in REPORT_FILES)
    md_lines = md_path.read_text().splitlines()
    md = "\n".join(md_lines)
    for stage, step in steps:
        for lang in LANGS:
            assert any(row.startswith(f"| {stage} | {step} |") and f"| {lang} |" in row for row in md_lines)
    assert "tessera_xcopa_it" in md and "acc 0.500 ± 0.020 (n=500)" in md
    rows = list(csv.DictReader((reports / "eval.csv").open()))
    assert len(rows) == len(steps) * len(LANGS)
    assert float(rows[0]["gap_to_best"]) == 0.5 and rows[0]["language"] == "ita"
    summary = json.loads((reports / "eval.json").read_text())
    assert summary["missing"] == [] and summary["tasks"] == ["tessera_xcopa_it"]
    assert (summary["final"]["stage"], summary["final"]["step"]) == steps[-1]
    assert (reports / "eval_bits_per_byte.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_evaluation_is_listed_and_the_rest_reported(eval_run, published):
    layout = RunLayout(eval_run.out_dir)
    (stage, step), *others = published(eval_run)
    for index, (other_stage, other_step) in enumerate(others):
        write_json(layout.eval_result(other_stage, other_step),
                   _result(other_stage, other_step, 1000 * (index + 2), {"ita": 2.0, "eng": 2.0}, {}))

    write_report(eval_run)

    md = (layout.reports_dir / "eval.md").read_text()
    assert str(layout.eval_result(stage, step)) in md and "Missing" in md
    summary = json.loads((layout.reports_dir / "eval.json").read_text())
    assert summary["missing"] == [str(layout.eval_result(stage, step))] and summary["final"] is None
    assert len(summary["checkpoints"]) == len(others)


def test_main_metric_prefers_accuracy():
    assert main_metric({"acc_norm": 0.3, "acc": 0.2, "acc_stderr": 0.01}) == "acc"
    assert main_metric({"acc_norm": 0.3, "num_samples": 4}) == "acc_norm"
    assert main_metric({"bleu": 12.0, "bleu_stderr": 1.0}) == "bleu"
    assert main_metric({"num_samples": 4}) is None


def test_score_metrics_leave_out_stderr_and_sample_count():
    metrics = {"acc": 0.2, "acc_stderr": 0.01, "f1": 0.5, "num_samples": 4}
    assert score_metrics(metrics) == {"acc": 0.2, "f1": 0.5}
