"""The facts a release documents, gathered from what the pipeline wrote: never typed into a document.

Every fact is a mapping `{"label", "value", "basis", "source"}` (plus `unit`, `method`, `note` where they
apply), and every table `{"label", "columns": [{"name", "label", "basis"}], "rows", "source"}`, where
`basis` says how the figure came about:

    measured   observed by the pipeline: counted by the data stage, the energy meters, the evaluation
    computed   derived by a stated formula from measured facts or from the model's configuration
    declared   written by a person in the run's config (licences, provenance, provider, the model shape)

Inputs, all under results/<run>/: the last stage's final checkpoint (tessera.json), data/manifest.json,
reports/eval.json, reports/energy.json; and the config. A missing or stale input stops the release with
a ReleaseError naming the file and the rule that rebuilds it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tessera.config import RunConfig
from tessera.energy.records import combine_kinds
from tessera.errors import ReleaseError
from tessera.eval.report import score_metrics
from tessera.layout import RunLayout
from tessera.model.checkpoint import read_checkpoint_meta
from tessera.model.config import ModelConfig, num_active_params, num_params

__all__ = ["Facts", "gather_facts", "fact", "table", "column", "final_checkpoint_dir", "Basis"]

Basis = Literal["measured", "computed", "declared"]

# ISO 639-3 (tessera's language codes) -> ISO 639-1 (the Hub's `language:` metadata).
ISO_639_1 = {
    "ita": "it",
    "eng": "en",
    "fra": "fr",
    "deu": "de",
    "spa": "es",
    "por": "pt",
    "cat": "ca",
    "nld": "nl",
    "pol": "pl",
    "ron": "ro",
    "slv": "sl",
    "hrv": "hr",
}


def fact(
    label: str,
    value: Any,
    basis: Basis,
    source: str,
    *,
    unit: str | None = None,
    method: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One documented figure or statement with how it came about and where it was read."""
    out: dict[str, Any] = {"label": label, "value": value, "basis": basis, "source": source}
    for key, extra in (("unit", unit), ("method", method), ("note", note)):
        if extra:
            out[key] = extra
    return out


def column(name: str, label: str, basis: Basis) -> dict[str, str]:
    return {"name": name, "label": label, "basis": basis}


def table(
    label: str, columns: list[dict[str, str]], rows: list[dict[str, Any]], source: str
) -> dict[str, Any]:
    """Rows with one basis per column (a source's licence is declared, its document count measured)."""
    names = [c["name"] for c in columns]
    return {
        "label": label,
        "columns": columns,
        "rows": [{n: row.get(n) for n in names} for row in rows],
        "source": source,
    }


def _read_json(path: Path, remedy: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"{path}: missing; {remedy}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReleaseError(f"{path}: not valid JSON ({err}); {remedy}") from None


def final_checkpoint_dir(cfg: RunConfig) -> Path:
    """The last stage's last published checkpoint (a stage always publishes its final step): the model
    the release exports."""
    stage = cfg.train.stages[-1]
    return RunLayout(cfg.out_dir).checkpoint(stage.name, stage.num_steps)


def energy_basis(kind: str) -> Basis:
    """The energy report labels figures measured / estimated / none / mixes; only a figure read entirely
    from hardware counters is `measured` here, everything modelled (CodeCarbon, PUE, grid) `computed`."""
    return "measured" if kind == "measured" else "computed"


def _energy_fact(label: str, figure: dict[str, Any], where: str) -> dict[str, Any]:
    """A figure of reports/energy.json as a fact; the report's own kind travels along in `method`."""
    return fact(
        label,
        figure["value"],
        energy_basis(figure["kind"]),
        f"reports/energy.json: {where}",
        unit=figure["unit"],
        method=f"{figure['kind']}: {figure['method']}",
    )


@dataclass
class Facts:
    """Everything the documents state, grouped by topic; each value a fact or a table."""

    cfg: RunConfig
    checkpoint: Path
    model_cfg: ModelConfig
    checkpoint_meta: dict[str, Any]
    manifest: dict[str, Any]
    eval_report: dict[str, Any]
    energy_report: dict[str, Any]
    built_utc: dt.datetime

    # ---- inputs' paths, relative to the run folder, for `source` -----------------------------------

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.cfg.out_dir))
        except ValueError:
            return str(path)

    @property
    def manifest_src(self) -> str:
        return "data/manifest.json"

    @property
    def checkpoint_src(self) -> str:
        return f"{self._rel(self.checkpoint)}/tessera.json"

    # ---- provider and model identification (declared) ----------------------------------------------

    def provider(self) -> dict[str, dict]:
        r = self.cfg.release
        placed = r.placed_on_market or self.built_utc.date().isoformat()
        return {
            "provider_name": fact("Provider", r.provider, "declared", "config release.provider"),
            "contact": fact("Contact", r.contact, "declared", "config release.contact"),
            "authorised_representative": fact(
                "Authorised representative",
                r.authorised_representative or "not applicable",
                "declared",
                "config release.authorised_representative",
            ),
            "model_name": fact(
                "Versioned model name",
                f"{r.model_name} {r.version}",
                "declared",
                "config release.model_name, release.version",
            ),
            "model_dependencies": fact(
                "Model dependencies",
                "none: trained from random initialisation (no base model)",
                "computed",
                "train stages: the first stage starts from a freshly initialised model",
            ),
            "placed_on_market": fact(
                "Date of placement on the Union market",
                placed,
                "declared" if r.placed_on_market else "computed",
                "config release.placed_on_market" if r.placed_on_market else "date the release was built",
            ),
            "license": fact("Licence", r.license, "declared", "config release.license"),
            "distribution": fact(
                "Distribution", r.repository or "not yet published", "declared", "config release.repository"
            ),
        }

    # ---- model ----------------------------------------------------------------------------------

    def model(self, hf_architecture: str) -> dict[str, dict]:
        m, src = self.model_cfg, self.checkpoint_src
        moe = m.moe
        shape = (
            f"decoder-only Mixture-of-Experts transformer, {m.num_layers} layers "
            f"({m.num_moe_layers} MoE), d_model {m.d_model}, {m.num_heads} query / {m.num_kv_heads} "
            f"key-value heads of {m.head_dim}, {moe.num_experts} routed experts of hidden size "
            f"{moe.expert_hidden} with top-{moe.top_k} {moe.router} routing"
            + (f", {moe.num_shared_experts} shared expert" if moe.num_shared_experts else "")
            + ", SwiGLU, RoPE, RMSNorm"
            + (", QK-norm" if m.qk_norm else "")
        )
        return {
            "architecture": fact(
                "Architecture", shape, "declared", f"{src}: model (config model.preset, model.overrides)"
            ),
            "hf_architecture": fact(
                "transformers class",
                hf_architecture,
                "computed",
                "config.json of the export (tessera.model.hf)",
            ),
            "total_parameters": fact(
                "Total parameters",
                num_params(m),
                "computed",
                f"{src}: model",
                unit="parameters",
                method="tessera.model.config.num_params",
            ),
            "active_parameters": fact(
                "Active parameters per token",
                num_active_params(m),
                "computed",
                f"{src}: model",
                unit="parameters",
                method="tessera.model.config.num_active_params (top-k routed experts)",
            ),
            "context_length": fact(
                "Context length", m.max_seq_len, "declared", f"{src}: model.max_seq_len", unit="tokens"
            ),
            "vocab_size": fact(
                "Vocabulary size",
                m.vocab_size,
                "measured",
                f"{src}: model.vocab_size",
                method="size of the trained tokenizer's vocabulary",
            ),
            "input_modalities": fact(
                "Input modalities",
                ["text"],
                "computed",
                "tessera.model: a text-only decoder over byte-level BPE tokens",
            ),
            "output_modalities": fact(
                "Output modalities",
                ["text"],
                "computed",
                "tessera.model: a text-only decoder over byte-level BPE tokens",
            ),
        }

    def tokenizer(self) -> dict:
        """Our tokenizer's fertility per dataset and language, from the tokenizer report."""
        from tessera.tokenizer.report import OURS

        path = RunLayout(self.cfg.out_dir).reports_dir / "tokenizer.csv"
        if not path.is_file():
            return fact(
                "Tokenizer fertility",
                None,
                "measured",
                "reports/tokenizer.csv",
                note="absent: build it with snakemake tokenizer_report",
            )
        with path.open(encoding="utf-8", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["tokenizer"] == OURS]
        numbers = ("tokens_per_word", "bytes_per_token", "parity_ratio")
        return table(
            "Tokenizer fertility",
            [
                column("dataset", "Dataset", "declared"),
                column("language", "Language", "declared"),
                column("tokens_per_word", "Tokens per word", "measured"),
                column("bytes_per_token", "Bytes per token", "measured"),
                column("parity_ratio", "Parity (worst / best language)", "computed"),
            ],
            [{**r, **{k: float(r[k]) if r[k] else None for k in numbers}} for r in rows],
            f"reports/tokenizer.csv: rows of tokenizer {OURS}",
        )

    # ---- training ---------------------------------------------------------------------------------

    def training(self) -> dict[str, dict]:
        t = self.cfg.train
        energy_stages = {s["stage"]: s for s in self.energy_report["training"]["per_stage"]}
        rows = []
        for stage in t.stages:
            measured = energy_stages.get(stage.name, {})
            rows.append(
                {
                    "stage": stage.name,
                    "steps": stage.num_steps,
                    "seq_len": stage.seq_len,
                    "batch_size": stage.batch_size,
                    "mixture": ", ".join(f"{k} {v:g}" for k, v in stage.mixture.items()),
                    "lr_peak": stage.lr.peak,
                    "lr_schedule": f"warmup {stage.lr.warmup_steps}, decay {stage.lr.decay}",
                    "tokens": measured.get("tokens"),
                    "flops": measured.get("flops"),
                }
            )
        stages = table(
            "Training stages",
            [
                column("stage", "Stage", "declared"),
                column("steps", "Steps", "declared"),
                column("seq_len", "Sequence length", "declared"),
                column("batch_size", "Batch (sequences)", "declared"),
                column("mixture", "Language mixture", "declared"),
                column("lr_peak", "Peak LR", "declared"),
                column("lr_schedule", "LR schedule", "declared"),
                column("tokens", "Tokens", "measured"),
                column("flops", "FLOPs", "computed"),
            ],
            rows,
            "config train.stages; reports/energy.json: training.per_stage",
        )
        method = (
            "Pre-training from scratch by next-token prediction (cross-entropy) with the MoE load-balancing "
            f"and router z-losses (weights {self.model_cfg.moe.aux_loss_weight:g}, "
            f"{self.model_cfg.moe.z_loss_weight:g}); AdamW (betas {t.betas[0]:g}/{t.betas[1]:g}, "
            "weight decay "
            f"{t.weight_decay:g}), gradient clipping {t.grad_clip:g}; warmup-stable-decay learning rate over "
            f"{len(t.stages)} stage(s); DeepSpeed ZeRO stage {t.zero_stage}, expert parallelism "
            f"{t.expert_parallel_size}, precision {t.precision}"
        )
        return {
            "method": fact("Training method", method, "declared", "config train, model.moe"),
            "stages": stages,
            "tokens": _energy_fact(
                "Training tokens", self.energy_report["training"]["tokens"], "training.tokens"
            ),
            "tokens_seen": fact(
                "Tokens seen by the released checkpoint",
                self.checkpoint_meta["tokens_seen"],
                "measured",
                f"{self.checkpoint_src}: tokens_seen",
                unit="tokens",
            ),
            "checkpoint": fact(
                "Released checkpoint",
                self._rel(self.checkpoint),
                "computed",
                "last published checkpoint of the last stage",
            ),
        }

    # ---- compute and energy ----------------------------------------------------------------------

    def compute(self) -> dict[str, dict]:
        e = self.energy_report
        totals = e["totals"]
        site = self.cfg.site
        train_jobs = [j for j in e["jobs"] if j.get("rule") == "train"]
        gpu_type = self.cfg.energy.gpu_types.get(site.gpu_type) if site.gpu_type else None
        hardware = (
            f"{site.gpu_type} ({gpu_type.description})"
            if gpu_type and gpu_type.description
            else site.gpu_type or "CPU only (site.gpu_type is null)"
        )
        return {
            "training_flops": _energy_fact("Training compute", e["training"]["flops"], "training.flops"),
            "training_gpu_hours": fact(
                "GPU-hours of training",
                sum(j["gpu_hours"] for j in train_jobs),
                "measured",
                "reports/energy.json: jobs[rule=train].gpu_hours",
                unit="GPU-h",
            ),
            "training_time_s": fact(
                "Wall time of training jobs",
                sum(j["time_s"] for j in train_jobs),
                "measured",
                "reports/energy.json: jobs[rule=train].time_s",
                unit="s",
            ),
            "gpu_hours": _energy_fact("GPU-hours, whole pipeline", totals["gpu_hours"], "totals.gpu_hours"),
            "wall_time_s": _energy_fact(
                "Wall time, whole pipeline", totals["wall_time_s"], "totals.wall_time_s"
            ),
            "hardware": fact("Hardware", hardware, "declared", "config site.gpu_type, energy.gpu_types"),
            "max_gpus": fact(
                "Largest training job, GPUs",
                max((j["num_gpus"] for j in train_jobs), default=0),
                "measured",
                "reports/energy.json: jobs[rule=train].num_gpus",
            ),
            "max_nodes": fact(
                "Largest training job, nodes",
                max((j["num_nodes"] for j in train_jobs), default=0),
                "measured",
                "reports/energy.json: jobs[rule=train].num_nodes",
            ),
            "site": fact(
                "Site",
                f"{site.name} ({site.country}, PUE {site.pue:g})",
                "declared",
                "config site.name, site.country, site.pue",
            ),
        }

    def energy(self) -> dict[str, dict]:
        e = self.energy_report
        totals, training, components = e["totals"], e["training"], e["components"]

        out = {
            "training_energy_kwh": _energy_fact(
                "Energy of training (IT)", training["energy_it_kwh"], "training.energy_it_kwh"
            ),
            "training_gpu_energy_kwh": _energy_fact(
                "GPU energy of training", training["energy_gpu_kwh"], "training.energy_gpu_kwh"
            ),
            "it_energy_kwh": _energy_fact("Energy, whole pipeline (IT)", totals["it_kwh"], "totals.it_kwh"),
            "it_measured_kwh": _energy_fact(
                "of which measured", totals["it_measured_kwh"], "totals.it_measured_kwh"
            ),
            "it_estimated_kwh": _energy_fact(
                "of which estimated", totals["it_estimated_kwh"], "totals.it_estimated_kwh"
            ),
            "facility_energy_kwh": _energy_fact(
                "Facility energy (IT x PUE)", totals["facility_kwh"], "totals.facility_kwh"
            ),
            "co2e_kg": _energy_fact("Emissions", totals["co2e_kg"], "totals.co2e_kg"),
        }
        out["components"] = table(
            "Energy by component, whole pipeline",
            [
                column("component", "Component", "computed"),
                # One basis per column: measured only if every component came from a counter.
                column("kwh", "kWh", energy_basis(combine_kinds({f["kind"] for f in components.values()}))),
                column("kind", "Kind", "computed"),
                column("method", "Method", "computed"),
            ],
            [
                {"component": c, "kwh": f["value"], "kind": f["kind"], "method": f["method"]}
                for c, f in components.items()
            ],
            "reports/energy.json: components (kWh measured by counters or estimated, as 'Kind' says)",
        )
        out["notes"] = fact(
            "What the figures leave out", e.get("notes", []), "computed", "reports/energy.json: notes"
        )
        return out

    # ---- evaluation ----------------------------------------------------------------------------

    def final_eval(self) -> dict[str, Any]:
        return self.eval_report["final"]

    def evaluation(self) -> dict[str, dict]:
        final = self.final_eval()
        intrinsic = table(
            "Held-out bits per byte (test split of the training corpus)",
            [
                column("language", "Language", "declared"),
                column("bits_per_byte", "Bits per byte", "measured"),
                column("perplexity", "Perplexity", "measured"),
                column("gap_to_best", "Gap to best", "computed"),
                column("num_bytes", "Bytes scored", "measured"),
            ],
            [{"language": lang, **scores} for lang, scores in final["intrinsic"].items()],
            "reports/eval.json: final.intrinsic",
        )
        task_rows = []
        for task, metrics in final["tasks"].items():
            for metric, value in score_metrics(metrics).items():
                task_rows.append(
                    {
                        "task": task,
                        "metric": metric,
                        "value": value,
                        "stderr": metrics.get(f"{metric}_stderr"),
                        "num_samples": metrics.get("num_samples"),
                    }
                )
        tasks = table(
            "Benchmark tasks (lm-evaluation-harness)",
            [
                column("task", "Task", "declared"),
                column("metric", "Metric", "declared"),
                column("value", "Value", "measured"),
                column("stderr", "Std. error", "computed"),
                column("num_samples", "Examples", "measured"),
            ],
            task_rows,
            "reports/eval.json: final.tasks",
        )
        skipped = []
        for result in self.eval_report.get("checkpoints", []):
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
                "Tasks not scored",
                skipped,
                "measured",
                "reports/eval.json: checkpoints[final].skipped, errors",
            ),
        }

    # ---- data -----------------------------------------------------------------------------------

    def source_category(self, name: str) -> str:
        r = self.cfg.release
        return r.source_categories.get(name, r.default_source_category)

    def sources_table(self) -> dict:
        rows = []
        for name, s in self.manifest["sources"].items():
            rows.append(
                {
                    "name": name,
                    "category": self.source_category(name),
                    "kind": s["kind"],
                    "language": s["language"],
                    "license": s["license"],
                    "license_basis": s.get("license_basis"),
                    "origin": s["origin"],
                    "tdm_opt_out": s["tdm_opt_out"],
                    "documents_in": s["documents_in"],
                    "documents_out": s["documents_out"],
                    "bytes_out": s["bytes_out"],
                }
            )
        return table(
            "Data sources",
            [
                column("name", "Source", "declared"),
                column("category", "Category", "declared"),
                column("kind", "Kind", "declared"),
                column("language", "Language", "declared"),
                column("license", "Licence", "declared"),
                column("license_basis", "Licence basis", "declared"),
                column("origin", "Origin", "declared"),
                column("tdm_opt_out", "TDM opt-out handling", "declared"),
                column("documents_in", "Documents read", "measured"),
                column("documents_out", "Documents kept", "measured"),
                column("bytes_out", "Bytes kept", "measured"),
            ],
            rows,
            f"{self.manifest_src}: sources (declared in config data.sources; counts by the data stage)",
        )

    def languages_table(self) -> dict:
        total = self.manifest["totals"]["bytes_out"] or 1
        rows = [
            {
                "language": lang,
                "documents_out": v["documents_out"],
                "bytes_out": v["bytes_out"],
                "train_bytes": v["splits"]["train"]["bytes"],
                "share": v["bytes_out"] / total,
            }
            for lang, v in self.manifest["languages"].items()
        ]
        return table(
            "Training data by language (modality: text)",
            [
                column("language", "Language", "declared"),
                column("documents_out", "Documents", "measured"),
                column("bytes_out", "Bytes (UTF-8)", "measured"),
                column("train_bytes", "Bytes in train split", "measured"),
                column("share", "Share of bytes", "computed"),
            ],
            rows,
            f"{self.manifest_src}: languages",
        )

    def data_counts(self) -> dict[str, dict]:
        """Totals of the data stage's filters over all sources (the manifest's per-source counters)."""
        sources = self.manifest["sources"].values()

        def summed(group: str) -> dict[str, int]:
            out: dict[str, int] = {}
            for s in sources:
                for key, n in s.get(group, {}).items():
                    out[key] = out.get(key, 0) + n
            return out

        totals = self.manifest["totals"]
        settings = self.manifest["settings"]
        src = self.manifest_src
        return {
            "documents_in": fact("Documents read", totals["documents_in"], "measured", f"{src}: totals"),
            "documents_out": fact("Documents kept", totals["documents_out"], "measured", f"{src}: totals"),
            "bytes_in": fact("Bytes read", totals["bytes_in"], "measured", f"{src}: totals", unit="bytes"),
            "bytes_out": fact("Bytes kept", totals["bytes_out"], "measured", f"{src}: totals", unit="bytes"),
            "dropped": fact(
                "Documents dropped, by filter",
                summed("dropped"),
                "measured",
                f"{src}: sources.*.dropped (summed)",
            ),
            "pii_redactions": fact(
                "Personal data redacted, by kind",
                summed("pii_redactions"),
                "measured",
                f"{src}: sources.*.pii_redactions (summed, kept documents)",
            ),
            "cleanup": fact(
                "Documents changed by clean-up",
                summed("cleanup"),
                "measured",
                f"{src}: sources.*.cleanup (summed)",
            ),
            "filters": fact("Filter settings", settings["filters"], "declared", f"{src}: settings.filters"),
            "allowed_licenses": fact(
                "Licences allowed",
                settings["allowed_licenses"],
                "declared",
                f"{src}: settings.allowed_licenses",
            ),
            "collected_utc": fact(
                "Data collected (data stage run)",
                self.manifest["created_utc"],
                "measured",
                f"{src}: created_utc",
            ),
        }


def _check_consistent(facts: Facts, eval_path: Path, energy_path: Path) -> None:
    """The reports must describe the checkpoint being released, or the documents would state another
    model's figures."""
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
            "released "
            f"checkpoint is {stage} step {step}; rebuild the report (snakemake eval_report)"
        )
    per_stage = {s["stage"]: s for s in facts.energy_report.get("training", {}).get("per_stage", [])}
    if per_stage.get(stage, {}).get("steps") != step:
        raise ReleaseError(
            f"{energy_path}: training.per_stage has {stage} at step {per_stage.get(stage, {}).get('steps')}, "
            f"the released checkpoint is step {step}; rebuild the report (snakemake energy_report)"
        )
    if facts.energy_report["training"]["flops"]["value"] is None:
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
        energy_report=_read_json(energy_path, "build the energy report (snakemake energy_report)"),
        built_utc=now or dt.datetime.now(dt.UTC),
    )
    _check_consistent(facts, eval_path, energy_path)
    return facts
