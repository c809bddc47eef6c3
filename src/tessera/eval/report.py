"""Every checkpoint's evaluation -> reports/eval.md, eval.csv, eval_tasks.csv, eval.json and two plots.

    eval.md                 a row per checkpoint and language (bits per byte, perplexity, gap to the best
                            language); a row per checkpoint of task scores; skipped tasks and errors
    eval.csv                the per-language rows; eval_tasks.csv: every task metric, one row each
    eval.json               the machine-readable summary the release documents read ("final" = the last
                            checkpoint of the last stage)
    eval_bits_per_byte.png  bits per byte against tokens seen, a line per language
    eval_tasks.png          each task's main score against tokens seen

Reads the published checkpoints' results that exist: run by hand after `snakemake --keep-going`, it
reports what finished and lists the checkpoints whose evaluation is missing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tessera.errors import DataError
from tessera.io import atomic_path, write_csv, write_json, write_text
from tessera.layout import RunLayout, checkpoint_steps

if TYPE_CHECKING:
    from tessera.config import RunConfig

__all__ = ["write_report", "collect_results", "main_metric", "score_metrics", "REPORT_FILES"]

log = logging.getLogger(__name__)

REPORT_FILES = (
    "eval.md", "eval.csv", "eval_tasks.csv", "eval.json", "eval_bits_per_byte.png", "eval_tasks.png",
)
"""Written by `write_report` under reports/ (the eval_report rule's outputs)."""

# The score a task is summarised by, in order of preference (lm-eval metric names).
_MAIN_METRICS = ("acc", "acc_norm", "exact_match", "f1", "mcc")


def score_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """A task's scores: its metrics less the `<metric>_stderr` and `num_samples` entries beside them."""
    return {m: v for m, v in metrics.items() if not m.endswith("_stderr") and m != "num_samples"}


def main_metric(metrics: dict[str, float]) -> str | None:
    """The metric a task's column shows: the first of acc, acc_norm, ... that it reports."""
    for name in _MAIN_METRICS:
        if name in metrics:
            return name
    return next(iter(score_metrics(metrics)), None)


_RESULT_KEYS = ("stage", "step", "tokens_seen", "intrinsic", "tasks")
"""Keys of an evaluation result (`tessera eval checkpoint`) the report reads."""


def _read_result(path: Path) -> dict[str, Any]:
    """One checkpoint's evaluation result, or a DataError naming the file and how to remake it."""
    remedy = "delete it and rerun its evaluate job (snakemake rebuilds it)"
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); {remedy}") from None
    missing = [key for key in _RESULT_KEYS if not isinstance(result, dict) or key not in result]
    if missing:
        raise DataError(f"{path}: not an evaluation result (lacks {', '.join(missing)}); {remedy}")
    return result


def collect_results(cfg: RunConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """The results of the run's published checkpoints in training order, and the missing ones' paths."""
    layout = RunLayout(cfg.out_dir)
    results, missing = [], []
    for stage in cfg.train.stages:
        for step in checkpoint_steps(stage.num_steps, cfg.train.checkpoint_every):
            path = layout.eval_result(stage.name, step)
            if path.is_file():
                results.append(_read_result(path))
            else:
                missing.append(str(path))
    return results, missing


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _intrinsic_rows(results: list[dict]) -> list[dict[str, Any]]:
    return [
        {"stage": r["stage"], "step": r["step"], "tokens_seen": r["tokens_seen"], "language": lang,
         "bits_per_byte": s["bits_per_byte"], "perplexity": s["perplexity"], "gap_to_best": s["gap_to_best"],
         "num_tokens": s["num_tokens"], "num_bytes": s["num_bytes"]}
        for r in results
        for lang, s in r["intrinsic"].items()
    ]


def _task_rows(results: list[dict]) -> list[dict[str, Any]]:
    return [
        {"stage": r["stage"], "step": r["step"], "tokens_seen": r["tokens_seen"], "task": task,
         "metric": metric, "value": value}
        for r in results
        for task, metrics in r["tasks"].items()
        for metric, value in metrics.items()
    ]


def _task_names(results: list[dict]) -> list[str]:
    return list(dict.fromkeys(task for r in results for task in r["tasks"]))


def _markdown(cfg: RunConfig, results: list[dict], missing: list[str]) -> str:
    lines = [f"# Evaluation: run `{cfg.run.name}`", ""]
    lines.append(f"{len(results)} of {len(results) + len(missing)} published checkpoints evaluated.")
    if missing:
        lines += ["", "Missing (evaluation failed or not run; see logs/evaluate-*.log):", ""]
        lines += [f"- `{path}`" for path in missing]
    lines += [
        "", "## Bits per byte per language (held-out test split)", "",
        "Bits per byte = total NLL in bits / UTF-8 bytes of the text: tokenizer-independent. The corpus is "
        "parallel, so the gap to the best language compares the same content.", "",
        "| stage | step | tokens seen | language | bits/byte | perplexity | gap to best |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in _intrinsic_rows(results):
        lines.append(
            f"| {row['stage']} | {row['step']} | {row['tokens_seen']:,} | {row['language']} | "
            f"{_fmt(row['bits_per_byte'])} | {_fmt(row['perplexity'], 2)} | {_fmt(row['gap_to_best'])} |"
        )
    lines += ["", "![bits per byte](eval_bits_per_byte.png)", "", "## Task scores", ""]
    tasks = _task_names(results)
    if tasks:
        lines.append("Main metric per task (± standard error; n = examples scored).")
        lines.append("")
        lines.append("| stage | step | tokens seen | " + " | ".join(tasks) + " |")
        lines.append("|---|---:|---:|" + "---:|" * len(tasks))
        for r in results:
            cells = []
            for task in tasks:
                metrics = r["tasks"].get(task, {})
                name = main_metric(metrics)
                if name is None:
                    cells.append("")
                    continue
                stderr = metrics.get(f"{name}_stderr")
                cell = f"{name} {metrics[name]:.3f}" + (f" ± {stderr:.3f}" if stderr is not None else "")
                if "num_samples" in metrics:
                    cell += f" (n={int(metrics['num_samples'])})"
                cells.append(cell)
            lines.append(f"| {r['stage']} | {r['step']} | {r['tokens_seen']:,} | " + " | ".join(cells) + " |")
        lines += ["", "![task scores](eval_tasks.png)"]
    else:
        lines.append("No task scores (`eval.tasks` is empty, or every task was skipped).")
    notes = [(r, kind, item) for r in results for kind in ("skipped", "errors") for item in r.get(kind, [])]
    if notes:
        lines += ["", "## Skipped tasks and errors", "", "| stage | step | task | kind | reason |",
                  "|---|---:|---|---|---|"]
        for r, kind, item in notes:
            reason = str(item.get("reason") or item.get("error")).replace("|", "\\|")
            lines.append(f"| {r['stage']} | {r['step']} | {item['task']} | {kind} | {reason} |")
    return "\n".join(lines) + "\n"


def _plot_bits_per_byte(path: Path, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    languages = list(dict.fromkeys(lang for r in results for lang in r["intrinsic"]))
    for lang in languages:
        points = [(r["tokens_seen"], r["intrinsic"][lang]["bits_per_byte"]) for r in results
                  if lang in r["intrinsic"]]
        ax.plot(*zip(*points, strict=True), marker="o", label=lang)
    _mark_stages(ax, results)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("bits per byte (test split)")
    ax.set_title("Held-out bits per byte by language")
    if languages:
        ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def _plot_tasks(path: Path, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    tasks = _task_names(results)
    for task in tasks:
        points = [(r["tokens_seen"], r["tasks"][task][name], r["tasks"][task].get(f"{name}_stderr", 0.0))
                  for r in results
                  if task in r["tasks"] and (name := main_metric(r["tasks"][task])) is not None]
        if points:
            x, y, stderr = zip(*points, strict=True)
            ax.errorbar(x, y, yerr=stderr, marker="o", capsize=3, label=task)
    _mark_stages(ax, results)
    if tasks:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no task scores", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("score (main metric, e.g. accuracy)")
    ax.set_title("Task scores per checkpoint")
    ax.grid(alpha=0.3)
    _save(fig, path)


def _mark_stages(ax: Any, results: list[dict]) -> None:
    """A dashed line where each stage after the first begins, labelled with its name."""
    for previous, current in zip(results, results[1:], strict=False):
        if current["stage"] != previous["stage"]:
            ax.axvline(previous["tokens_seen"], color="grey", linestyle="--", linewidth=1)
            ax.annotate(current["stage"], (previous["tokens_seen"], 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", color="grey", fontsize="small")


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _summary(cfg: RunConfig, results: list[dict], missing: list[str]) -> dict[str, Any]:
    # "final" only when every checkpoint was evaluated: the last result is then the released model's.
    final = results[-1] if results and not missing else None
    final_keys = ("stage", "step", "tokens_seen", "intrinsic", "tasks")
    return {
        "run": cfg.run.name,
        "languages": list(dict.fromkeys(lang for r in results for lang in r["intrinsic"])),
        "tasks": _task_names(results),
        "checkpoints": [
            {key: r.get(key) for key in ("stage", "step", "tokens_seen", "checkpoint", "intrinsic", "tasks",
                                         "skipped", "errors")}
            for r in results
        ],
        "missing": missing,
        "final": final and {key: final.get(key) for key in final_keys},
    }


def write_report(cfg: RunConfig) -> Path:
    """Write reports/eval.* from the run's evaluation results; returns the Markdown report's path."""
    layout = RunLayout(cfg.out_dir)
    out = layout.reports_dir
    results, missing = collect_results(cfg)
    for path in missing:
        log.warning("no evaluation result at %s", path)
    write_csv(out / "eval.csv", _intrinsic_rows(results),
              ["stage", "step", "tokens_seen", "language", "bits_per_byte", "perplexity", "gap_to_best",
               "num_tokens", "num_bytes"])
    write_csv(out / "eval_tasks.csv", _task_rows(results), ["stage", "step", "tokens_seen", "task", "metric",
                                                            "value"])
    write_json(out / "eval.json", _summary(cfg, results, missing))
    _plot_bits_per_byte(out / "eval_bits_per_byte.png", results)
    _plot_tasks(out / "eval_tasks.png", results)
    write_text(out / "eval.md", _markdown(cfg, results, missing))
    return out / "eval.md"
