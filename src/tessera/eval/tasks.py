"""Downstream benchmarks through lm-evaluation-harness: tessera's local tasks and upstream ones.

Local tasks (`lm_eval_tasks/*.yaml`, shipped with the package) read JSONL files under `eval.task_data_dir`,
which lm-eval hands to their loader as task metadata; when a file is absent the task is skipped with a
note, never a crash. Upstream tasks (`xcopa_it`, `arc_it`, ...) load Hugging Face datasets: on a cluster
`cache_datasets` fills `eval.hf_home` on the login node (the `cache_eval_datasets` localrule) and
evaluation jobs read that cache offline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tessera.io import write_json

if TYPE_CHECKING:
    from tessera.config import RunConfig

__all__ = ["LOCAL_TASK_DIR", "TaskResults", "local_tasks", "upstream_tasks", "hf_home", "hf_environment",
           "run_tasks", "cache_datasets"]

LOCAL_TASK_DIR = Path(__file__).parent / "lm_eval_tasks"

log = logging.getLogger(__name__)


class _TaskYamlLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs for their data files only: `!function x.y` stays the string 'x.y'."""


_TaskYamlLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def local_tasks() -> dict[str, list[str]]:
    """Each local task's name -> its data files, relative to `eval.task_data_dir`."""
    tasks = {}
    for path in sorted(LOCAL_TASK_DIR.glob("*.yaml")):
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)  # noqa: S506 (safe loader)
        tasks[spec["task"]] = list(spec["dataset_kwargs"]["files"].values())
    return tasks


def upstream_tasks(names: list[str]) -> list[str]:
    """The configured tasks that are not tessera's own: they need the Hugging Face dataset cache."""
    local = local_tasks()
    return [name for name in names if name not in local]


def hf_home(cfg: RunConfig) -> Path:
    return cfg.eval.hf_home if cfg.eval.hf_home is not None else cfg.out_dir / "eval" / "hf_cache"


@contextlib.contextmanager
def hf_environment(cfg: RunConfig, *, offline: bool) -> Iterator[None]:
    """Point the Hugging Face libraries at `eval.hf_home` (offline on compute nodes) for the block, then
    restore the caller's environment. `datasets` reads these when first imported: enter before that."""
    env = {"HF_HOME": str(hf_home(cfg).resolve())}
    if offline:
        env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class TaskResults:
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """task -> metric -> value (lm-eval's `acc,none` becomes `acc`), plus `num_samples`."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """{"task", "reason"} for tasks whose data is absent."""
    errors: list[dict[str, str]] = field(default_factory=list)
    """{"task", "error"} for tasks that failed while running."""


def _missing_local_data(cfg: RunConfig, files: list[str]) -> str | None:
    data_dir = cfg.eval.task_data_dir
    if data_dir is None:
        return "eval.task_data_dir is not set"
    missing = [f for f in files if not (data_dir / f).is_file()]
    if missing:
        return f"{', '.join(str(data_dir / f) for f in missing)} absent (eval.task_data_dir = {data_dir})"
    return None


def _metrics(entry: dict[str, Any], num_samples: int | None) -> dict[str, float]:
    """lm-eval's `{"acc,none": 0.5, "alias": ...}` -> `{"acc": 0.5}` (numbers only; filter suffix dropped
    when it is lm-eval's default `none`)."""
    metrics: dict[str, float] = {}
    for key, value in entry.items():
        # sample_len repeats num_samples; alias and name are labels.
        if not isinstance(value, int | float) or isinstance(value, bool) or key == "sample_len":
            continue
        name, _, filter_name = key.partition(",")
        metrics[name if filter_name in ("", "none") else f"{name},{filter_name}"] = float(value)
    if num_samples is not None:
        metrics["num_samples"] = num_samples
    return metrics


def run_tasks(lm: Any, cfg: RunConfig) -> TaskResults:
    """Evaluate `lm` (an lm-eval LM, e.g. HFLM wrapping the checkpoint) on every task in `eval.tasks`.

    Tasks whose local data is absent are skipped. Each task runs on its own, so that one task's failure
    (say, an uncached upstream dataset) is recorded in "errors" and the others still produce scores.
    """
    results = TaskResults()
    if not cfg.eval.tasks:
        return results
    from lm_eval.tasks import TaskManager

    local = local_tasks()
    runnable = []
    for task in cfg.eval.tasks:
        reason = _missing_local_data(cfg, local[task]) if task in local else None
        if reason:
            log.warning("skipping %s: %s", task, reason)
            results.skipped.append({"task": task, "reason": reason})
        else:
            runnable.append(task)
    if not runnable:
        return results
    data_dir = cfg.eval.task_data_dir
    # Indexing lm-eval's ~15,000 built-in tasks costs seconds: only when an upstream task asks for it.
    manager = TaskManager(
        include_path=str(LOCAL_TASK_DIR),
        include_defaults=any(task not in local for task in runnable),
        metadata={"task_data_dir": str(data_dir.resolve()) if data_dir else None},
    )

    # One call per task: a failure stays with its task, and on this machine it also took 0.75x the time
    # of one call for all (bench/eval_scoring.py), despite each call gathering environment facts.
    outputs = []
    for task in runnable:
        try:
            outputs.append(_evaluate(lm, cfg, manager, [task]))
        except Exception as err:  # noqa: BLE001 - recorded in the result's "errors"; the others still run
            log.exception("task %s failed", task)
            message = f"{type(err).__name__}: {err}"
            if task not in local:
                message += (f" (upstream tasks read their datasets offline from {hf_home(cfg)}; fill it "
                            "on a node with internet: `snakemake cache_eval_datasets`)")
            results.errors.append({"task": task, "error": message})
    for output in outputs:
        samples = output.get("n-samples", {})
        for name, entry in output["results"].items():
            results.scores[name] = _metrics(entry, samples.get(name, {}).get("effective"))
    return results


def _evaluate(lm: Any, cfg: RunConfig, manager: Any, tasks: list[str]) -> dict:
    """lm-eval's `simple_evaluate` on `tasks` with the config's shots, limit and seeds."""
    import lm_eval

    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        num_fewshot=cfg.eval.num_fewshot,
        limit=cfg.eval.limit,
        random_seed=cfg.run.seed,
        numpy_random_seed=cfg.run.seed,
        torch_random_seed=cfg.run.seed,
        fewshot_random_seed=cfg.run.seed,
        log_samples=False,
    )


def cache_datasets(cfg: RunConfig, stamp: Path) -> None:
    """Download the upstream tasks' datasets into `eval.hf_home` (login node, with internet), then write
    `stamp` listing them: the evaluation jobs' input, read offline on compute nodes."""
    tasks = upstream_tasks(cfg.eval.tasks)
    with hf_environment(cfg, offline=False):
        from lm_eval.tasks import TaskManager, get_task_dict

        # Building a task loads its dataset, which is what fills the cache.
        get_task_dict(tasks, TaskManager())
    write_json(stamp, {"tasks": tasks, "hf_home": str(hf_home(cfg).resolve())})
    log.info("cached %s in %s", json.dumps(tasks), hf_home(cfg))
