"""Evaluation results of the released checkpoint (reports/eval.json `final`)."""

from __future__ import annotations

from tessera.eval.report import score_metrics
from tessera.release.facts.basis import fact, table
from tessera.release.facts.inputs import Facts

__all__ = ["evaluation"]


def evaluation(facts: Facts) -> dict[str, dict]:
    final = facts.final_eval()
    intrinsic = table(
        "Held-out bits per byte (test split of the training corpus)",
        "reports/eval.json: final.intrinsic",
        [{"language": lang, **scores} for lang, scores in final["intrinsic"].items()],
        ("language", "Language", "declared"),
        ("bits_per_byte", "Bits per byte", "measured"),
        ("perplexity", "Perplexity", "measured"),
        ("gap_to_best", "Gap to best", "computed"),
        ("num_bytes", "Bytes scored", "measured"),
    )
    task_rows = [
        {
            "task": task,
            "metric": metric,
            "value": value,
            "stderr": metrics.get(f"{metric}_stderr"),
            "num_samples": metrics.get("num_samples"),
        }
        for task, metrics in final["tasks"].items()
        for metric, value in score_metrics(metrics).items()
    ]
    tasks = table(
        "Benchmark tasks (lm-evaluation-harness)",
        "reports/eval.json: final.tasks",
        task_rows,
        ("task", "Task", "declared"),
        ("metric", "Metric", "declared"),
        ("value", "Value", "measured"),
        ("stderr", "Std. error", "computed"),
        ("num_samples", "Examples", "measured"),
    )
    skipped = []
    for result in facts.eval_report.get("checkpoints", []):
        if (result.get("stage"), result.get("step")) == (final["stage"], final["step"]):
            skipped = [*(result.get("skipped") or []), *(result.get("errors") or [])]
    return {
        "checkpoint": fact(
            "Evaluated checkpoint",
            f"{final['stage']} step {final['step']}",
            "measured",
            "reports/eval.json: final.stage, final.step",
        ),
        "intrinsic": intrinsic,
        "tasks": tasks,
        "not_scored": fact(
            "Tasks not scored", skipped, "measured", "reports/eval.json: checkpoints[final].skipped, errors"
        ),
    }
