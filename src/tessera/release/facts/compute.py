"""How the model was trained and on what (Annex XI 1.2(b), 1.2(d)): method, precision, stages, the
history of sites and layouts that ran them, training compute and time, hardware.

The training history is the `history` list of the released checkpoint's tessera.json (one span per
(stage, layout) run, written by the trainer: `measured`). Older checkpoints lack it; then one span per
stage is derived from the config and the energy report's train jobs (`computed`).
"""

from __future__ import annotations

from typing import Any

from tessera.energy.summary import JobRow
from tessera.errors import ReleaseError
from tessera.release.facts.basis import energy_fact, fact, table
from tessera.release.facts.inputs import Facts

__all__ = ["training", "compute", "history_spans", "training_precision"]

ENERGY = "reports/energy.json"
HISTORY_KEYS = (
    "stage",
    "site",
    "gpu_type",
    "num_nodes",
    "world_size",
    "expert_parallel_size",
    "zero_stage",
    "first_step",
    "last_step",
    "resume_changes",
)


def _train_jobs(facts: Facts, stage: str | None = None) -> list[JobRow]:
    """The energy report's train jobs, of one stage (its jobs' stage is `train/<stage>`) or all."""
    wanted = None if stage is None else f"train/{stage}"
    return [j for j in facts.energy.jobs if j.rule == "train" and wanted in (None, j.stage)]


def history_spans(facts: Facts) -> tuple[list[dict[str, Any]], bool]:
    """(spans, recorded): the checkpoint's training history, or one span per stage derived from the config
    and the energy report when the checkpoint predates it."""
    recorded = facts.checkpoint_meta.get("history")
    if recorded:
        return [{key: span.get(key) for key in HISTORY_KEYS} for span in recorded], True
    t, site = facts.cfg.train, facts.cfg.site
    spans = []
    for stage in t.stages:
        jobs = _train_jobs(facts, stage.name)
        if not jobs:
            raise ReleaseError(
                f"reports/energy.json: no train job of stage {stage.name}, and the released checkpoint has "
                "no training history; rebuild the report from the run's energy logs (snakemake energy_report)"
            )
        world = max(j.num_ranks for j in jobs)
        spans.append(
            {
                "stage": stage.name,
                "site": site.name,
                "gpu_type": site.gpu_type,
                "num_nodes": max(j.num_nodes for j in jobs),
                "world_size": world,
                "expert_parallel_size": t.expert_parallel_size,
                "zero_stage": t.zero_stage if world > 1 else 0,
                "first_step": 1,
                "last_step": stage.num_steps,
                "resume_changes": [],
            }
        )
    return spans, False


def training_precision(facts: Facts) -> tuple[str, str]:
    """(precision, how it was decided): train.precision, with 'auto' resolved per span as the engine
    resolves it (bf16 on a CUDA GPU, fp32 on CPU; tessera.parallel.deepspeed.engine_spec)."""
    setting = facts.cfg.train.precision
    if setting != "auto":
        return setting, f"config train.precision = {setting}"
    spans, _ = history_spans(facts)
    resolved = sorted({"bf16" if span["gpu_type"] else "fp32" for span in spans})
    return "+".join(
        resolved
    ), "train.precision 'auto' resolved per span's gpu_type (bf16 on GPUs, fp32 on CPU)"


def _history(facts: Facts) -> dict[str, Any]:
    spans, recorded = history_spans(facts)
    basis = "measured" if recorded else "computed"
    source = (
        f"{facts.checkpoint_src}: history (recorded by the trainer)"
        if recorded
        else "derived (the checkpoint has no history): config site, train; "
        "reports/energy.json: jobs[rule=train]"
    )
    labels = (
        "Stage",
        "Site",
        "GPU type",
        "Nodes",
        "Ranks",
        "Expert parallel",
        "ZeRO stage",
        "First step",
        "Last step",
        "Changes at resume",
    )
    return table(
        "Training history by site and layout",
        source,
        spans,
        *(
            (key, label, "declared" if key == "stage" else basis)
            for key, label in zip(HISTORY_KEYS, labels, strict=True)
        ),
    )


def _stages(facts: Facts) -> dict[str, Any]:
    per_stage = {s.stage: s for s in facts.energy.training.per_stage}
    rows = [
        {
            "stage": stage.name,
            "steps": stage.num_steps,
            "seq_len": stage.seq_len,
            "batch_size": stage.batch_size,
            "mixture": ", ".join(f"{k} {v:g}" for k, v in stage.mixture.items()),
            "lr_peak": stage.lr.peak,
            "lr_schedule": f"warmup {stage.lr.warmup_steps}, decay {stage.lr.decay}",
            "tokens": per_stage[stage.name].tokens if stage.name in per_stage else None,
            "flops": per_stage[stage.name].flops if stage.name in per_stage else None,
        }
        for stage in facts.cfg.train.stages
    ]
    return table(
        "Training stages",
        "config train.stages; reports/energy.json: training.per_stage (tokens = steps x "
        "batch_size x seq_len, "
        "FLOPs = tokens x tessera.model.config.train_flops_per_token)",
        rows,
        ("stage", "Stage", "declared"),
        ("steps", "Steps", "declared"),
        ("seq_len", "Sequence length", "declared"),
        ("batch_size", "Batch (sequences)", "declared"),
        ("mixture", "Language mixture", "declared"),
        ("lr_peak", "Peak LR", "declared"),
        ("lr_schedule", "LR schedule", "declared"),
        ("tokens", "Tokens", "computed"),
        ("flops", "FLOPs", "computed"),
    )


def training(facts: Facts) -> dict[str, dict]:
    t, moe = facts.cfg.train, facts.model_cfg.moe
    precision, how = training_precision(facts)
    method = (
        "Pre-training from scratch by next-token prediction (cross-entropy) with the MoE load-balancing "
        f"and router z-losses (weights {moe.aux_loss_weight:g}, {moe.z_loss_weight:g}); AdamW (betas "
        f"{t.betas[0]:g}/{t.betas[1]:g}, weight decay {t.weight_decay:g}), gradient "
        f"clipping {t.grad_clip:g}; "
        f"warmup-stable-decay learning rate over {len(t.stages)} stage(s); DeepSpeed ZeRO, expert "
        "parallelism "
        "(layouts per span in the training history)"
    )
    tokens = facts.energy.training.tokens
    return {
        "method": fact("Training method", method, "declared", "config train, model.moe"),
        "optimised_for": fact(
            "What the model is designed to optimise for",
            "the likelihood of the next token of the training mixture's text (cross-entropy), with the "
            "router "
            "kept balanced by the auxiliary losses",
            "computed",
            "tessera.model.losses and the training method above",
        ),
        "precision": fact("Training precision", precision, "computed", how),
        "stages": _stages(facts),
        "history": _history(facts),
        "tokens": fact(
            "Training tokens",
            tokens.value,
            "computed",
            "reports/energy.json: training.tokens",
            unit="tokens",
            method=tokens.method,
        ),
        "tokens_seen": fact(
            "Tokens seen by the released checkpoint",
            facts.checkpoint_meta["tokens_seen"],
            "computed",
            f"{facts.checkpoint_src}: tokens_seen",
            unit="tokens",
            method="the trainer adds batch_size x seq_len per step",
        ),
        "checkpoint": fact(
            "Released checkpoint",
            facts.rel(facts.checkpoint),
            "computed",
            "last published checkpoint of the last stage",
        ),
    }


def _jobs_fact(jobs: list[JobRow], label: str, key: str, combine, unit: str | None = None) -> dict[str, Any]:
    """`combine` (sum, max) of one field over the train jobs of the energy report, as measured."""
    return fact(
        label,
        combine(getattr(j, key) for j in jobs),
        "measured",
        f"{ENERGY}: jobs[rule=train].{key}",
        unit=unit,
    )


def compute(facts: Facts) -> dict[str, dict]:
    jobs = _train_jobs(facts)
    if not jobs:
        raise ReleaseError(
            "reports/energy.json: no train job; rebuild it after training (snakemake energy_report)"
        )
    totals = facts.energy.totals
    flops = energy_fact(facts.energy.training.flops, "Training compute", "training.flops")
    return {
        "training_flops": {**flops, "basis": "computed"},
        "training_gpu_hours": _jobs_fact(jobs, "GPU-hours of training", "gpu_hours", sum, unit="GPU-h"),
        "training_time_s": _jobs_fact(jobs, "Wall time of training jobs", "time_s", sum, unit="s"),
        "gpu_hours": energy_fact(totals.gpu_hours, "GPU-hours, whole pipeline", "totals.gpu_hours"),
        "wall_time_s": energy_fact(totals.wall_time_s, "Wall time, whole pipeline", "totals.wall_time_s"),
        "hardware": _hardware(facts),
        "max_gpus": _jobs_fact(jobs, "Largest training job, GPUs", "num_gpus", max),
        "max_nodes": _jobs_fact(jobs, "Largest training job, nodes", "num_nodes", max),
        "site": _site(facts),
    }


def _describe_gpu(facts: Facts, name: str | None) -> str:
    gpu_type = facts.cfg.energy.gpu_types.get(name) if name else None
    if gpu_type and gpu_type.description:
        return f"{name} ({gpu_type.description})"
    return name or "CPU only (site.gpu_type is null)"


def _hardware(facts: Facts) -> dict[str, Any]:
    """The configured site's GPU type, or each site's when the run used sites with different GPUs."""
    site = facts.cfg.site
    by_site = {s.name: s.gpu_type for s in facts.energy.sites} | {site.name: site.gpu_type}
    if len(set(by_site.values())) == 1:
        return fact(
            "Hardware",
            _describe_gpu(facts, site.gpu_type),
            "declared",
            "config site.gpu_type, energy.gpu_types",
        )
    return fact(
        "Hardware",
        "; ".join(f"{_describe_gpu(facts, gpu)} at {name}" for name, gpu in by_site.items()),
        "declared",
        f"config site.gpu_type, energy.gpu_types; {ENERGY}: sites[*].gpu_type (each site's config)",
    )


def _site(facts: Facts) -> dict[str, Any]:
    """The configured site, or every site the run used when it ran elsewhere too: the training history's
    spans and the sites the energy report counted jobs at (a run without recorded history still moved)."""
    site = facts.cfg.site
    spans, recorded = history_spans(facts)
    sites = {s.name for s in facts.energy.sites}
    sources = [f"{ENERGY}: sites[*].name"]
    if recorded:
        sites |= {span["site"] for span in spans}
        sources.insert(0, f"{facts.checkpoint_src}: history[*].site")
    if sites <= {site.name}:
        here = f"{site.name} ({site.country}, PUE {site.pue:g})"
        return fact("Site", here, "declared", "config site.name, site.country, site.pue")
    return fact(
        "Sites",
        f"{', '.join(sorted(sites))}; energy, PUE and CO2e per site in section 6 (energy consumption)",
        "measured",
        "; ".join(sources),
    )
