"""Datasets of tessera's local lm-eval tasks, read from JSONL files under the `task_data_dir` that
`tessera.eval.tasks` passes as task metadata (lm-eval calls `custom_dataset(**metadata, **dataset_kwargs)`).

Run by hand: `lm_eval --include_path src/tessera/eval/lm_eval_tasks --metadata '{"task_data_dir": "DIR"}'`.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from tessera.errors import DataError


def jsonl_splits(
    task_data_dir: str | None = None, files: dict[str, str] | None = None, **_
) -> datasets.DatasetDict:
    """One split per entry of `files` (split name -> path relative to `task_data_dir`)."""
    if task_data_dir is None or not files:
        raise DataError("tessera task without task_data_dir metadata or dataset_kwargs.files; "
                        "set eval.task_data_dir (e.g. ../shared/data/eval)")
    splits = {}
    for split, relative in files.items():
        path = Path(task_data_dir) / relative
        if not path.is_file():
            raise DataError(f"{path}: task data file missing; set eval.task_data_dir to the folder holding "
                            f"{relative}")
        with path.open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)
