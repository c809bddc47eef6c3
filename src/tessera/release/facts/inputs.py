"""What the release reads, all under results/<run>/: the last stage's final checkpoint (tessera.json),
data/manifest.json, reports/eval.json, reports/energy.json, and the exported weights; plus the config.

A missing or stale input stops the release with a ReleaseError naming the file and the rule that
rebuilds it: the documents must never state another model's figures.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from tessera.config import RunConfig
from tessera.energy.summary import EnergySummary
from tessera.errors import DataError, ReleaseError
from tessera.io import sha256_file
from tessera.layout import RunLayout
from tessera.model.checkpoint import read_checkpoint_meta
from tessera.model.config import ModelConfig

__all__ = [
    "Facts",
    "WeightsFile",
    "gather_facts",
    "final_checkpoint_dir",
    "read_energy_summary",
    "read_exported_weights",
]


@dataclass(frozen=True)
class WeightsFile:
    """One exported weights file as it will be published: measured from the file itself."""

    name: str
    sha256: str
    num_bytes: int
    dtypes: tuple[str, ...]
    """safetensors dtype names of its tensors (e.g. F32, BF16), sorted."""

    @classmethod
    def read(cls, path: Path) -> WeightsFile:
        with safe_open(str(path), "pt") as f:
            dtypes = tuple(sorted({str(f.get_slice(name).get_dtype()) for name in f.keys()}))
        return cls(path.name, sha256_file(path), path.stat().st_size, dtypes)


@dataclass
class Facts:
    """The inputs the documents state, read once; tessera.release.facts.* turn them into facts."""

    cfg: RunConfig
    checkpoint: Path
    model_cfg: ModelConfig
    checkpoint_meta: dict[str, Any]
    manifest: dict[str, Any]
    eval_report: dict[str, Any]
    energy: EnergySummary
    built_utc: dt.datetime
    weights: tuple[WeightsFile, ...] = ()
    """The exported weights (set by the release build once they are written); empty before export."""

    def rel(self, path: Path) -> str:
        """`path` relative to the run folder, for a fact's `source`."""
        try:
            return str(path.relative_to(self.cfg.out_dir))
        except ValueError:
            return str(path)

    @property
    def checkpoint_src(self) -> str:
        return f"{self.rel(self.checkpoint)}/tessera.json"

    def final_eval(self) -> dict[str, Any]:
        return self.eval_report["final"]


def _read_json(path: Path, remedy: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"{path}: missing; {remedy}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReleaseError(f"{path}: not valid JSON ({err}); {remedy}") from None


def read_energy_summary(path: Path) -> EnergySummary:
    """reports/energy.json as the typed record; a missing, garbled or older-schema file stops the release
    (its message names the file and `snakemake energy_report`, which rebuilds it from the energy logs)."""
    try:
        return EnergySummary.read(path)
    except DataError as err:
        raise ReleaseError(str(err)) from None


def final_checkpoint_dir(cfg: RunConfig) -> Path:
    """The last stage's last published checkpoint (a stage always publishes its final step): the model
    the release exports."""
    stage = cfg.train.stages[-1]
    return RunLayout(cfg.out_dir).checkpoint(stage.name, stage.num_steps)


def _check_consistent(facts: Facts, eval_path: Path, energy_path: Path) -> None:
    """The reports must describe the checkpoint being released."""
    stage, step = facts.checkpoint_meta.get("stage"), facts.checkpoint_meta.get("step")
    final = facts.eval_report.get("final")
    if not final:
        missing = facts.eval_report.get("missing") or ["(none listed)"]
        raise ReleaseError(
            f"{eval_path}: no final evaluation (missing: {', '.join(missing)}); evaluate every published "
            "checkpoint (snakemake eval_report) before releasing"
        )
    if (final.get("stage"), final.get("step")) != (stage, step):
        raise ReleaseError(
            f"{eval_path}: its final result is {final.get('stage')} step {final.get('step')} but the "
            f"released checkpoint is {stage} step {step}; rebuild the report (snakemake eval_report)"
        )
    steps = {s.stage: s.steps for s in facts.energy.training.per_stage}
    if steps.get(stage) != step:
        raise ReleaseError(
            f"{energy_path}: training.per_stage has {stage} at step {steps.get(stage)}, "
            f"the released checkpoint is step {step}; rebuild the report (snakemake energy_report)"
        )
    if facts.energy.training.flops.value is None:
        raise ReleaseError(f"{energy_path}: training.flops is null; rebuild it after training finishes")


def gather_facts(cfg: RunConfig, now: dt.datetime | None = None) -> Facts:
    """Read the run's final checkpoint, manifest and reports; ReleaseError if one is missing or stale."""
    layout = RunLayout(cfg.out_dir)
    checkpoint = final_checkpoint_dir(cfg)
    model_cfg, meta = read_checkpoint_meta(checkpoint)
    eval_path, energy_path = layout.reports_dir / "eval.json", layout.reports_dir / "energy.json"
    facts = Facts(
        cfg=cfg,
        checkpoint=checkpoint,
        model_cfg=model_cfg,
        checkpoint_meta=meta,
        manifest=_read_json(layout.manifest, "run the data stage (snakemake prepare_data)"),
        eval_report=_read_json(eval_path, "build the evaluation report (snakemake eval_report)"),
        energy=read_energy_summary(energy_path),
        built_utc=now or dt.datetime.now(dt.UTC),
    )
    _check_consistent(facts, eval_path, energy_path)
    return facts


def read_exported_weights(facts: Facts, folder: Path) -> None:
    """Record the weights files of an export folder in `facts` (their sha256 and dtype are documented)."""
    facts.weights = tuple(WeightsFile.read(path) for path in sorted(folder.glob("*.safetensors")))
    if not facts.weights:
        raise ReleaseError(f"{folder}: the export wrote no .safetensors file; this is a tessera bug")
