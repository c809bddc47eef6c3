"""The model card: README.md with the Hugging Face Hub's YAML header, written from the release documents.

The header is built with huggingface_hub's `ModelCardData`, so its keys and the `model-index` layout are
the Hub's own: licence, languages (ISO 639-1 where one exists), datasets, metrics, tags, pipeline_tag
text-generation, library_name transformers, and the evaluation results of the released checkpoint. There
is no `base_model` key: the model is trained from scratch, and the Hub reads an absent key as "none".
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from tessera.eval.report import score_metrics
from tessera.release.documents import format_value, render_facts, render_table
from tessera.release.facts import ISO_639_1, Facts
from tessera.release.how_to_run import how_to_run

__all__ = ["model_card", "card_metadata", "DOCUMENTS_DIR"]

DOCUMENTS_DIR = "ai_act"
"""Folder of the release that holds the AI Act documents (Markdown, JSON and their schemas)."""


def _datasets(facts: Facts) -> list[str]:
    # Hub dataset ids for hub sources; other sources by their name in the manifest.
    return [s.hf_name if s.kind == "hf" and s.hf_name else s.name for s in facts.cfg.data.sources]


def _eval_results(facts: Facts) -> list[EvalResult]:
    final = facts.final_eval()
    run = facts.cfg.run.name
    results = [
        EvalResult(
            task_type="text-generation",
            task_name="Language modelling",
            dataset_type="tessera-heldout",
            dataset_name=f"{run} held-out test split ({lang})",
            dataset_config=lang,
            dataset_split="test",
            metric_type="bits_per_byte",
            metric_value=float(scores["bits_per_byte"]),
            metric_name="bits per byte",
        )
        for lang, scores in final["intrinsic"].items()
    ]
    for task, metrics in final["tasks"].items():
        for metric, value in score_metrics(metrics).items():
            if not isinstance(value, int | float):
                continue
            results.append(
                EvalResult(
                    task_type="text-generation",
                    dataset_type=task,
                    dataset_name=task,
                    metric_type=metric,
                    metric_value=float(value),
                    metric_name=metric,
                )
            )
    return results


def card_metadata(facts: Facts, model_type: str) -> ModelCardData:
    r = facts.cfg.release
    languages = [ISO_639_1.get(lang, lang) for lang in facts.manifest["languages"]]
    results = _eval_results(facts)
    tags = list(dict.fromkeys(["moe", "mixture-of-experts", model_type, "tessera", "eu-ai-act", *r.tags]))
    return ModelCardData(
        model_name=r.model_name,
        license=r.license,
        language=languages,
        datasets=_datasets(facts),
        metrics=list(dict.fromkeys(result.metric_type for result in results)),
        tags=tags,
        pipeline_tag="text-generation",
        library_name="transformers",
        eval_results=results,
    )


def _section(title: str, fields: dict[str, dict], keys: list[str]) -> list[str]:
    return [f"## {title}", "", *render_facts([fields[k] for k in keys])]


def _per_site(sites: dict[str, Any]) -> list[str]:
    """The energy per site, on the card only when the run used several sites (else it repeats the totals)."""
    return render_table(sites) if len(sites["rows"]) > 1 else []


_MODEL_KEYS = [
    "hf_architecture",
    "total_parameters",
    "active_parameters",
    "context_length",
    "max_context_length",
    "vocab_size",
    "weights_dtype",
    "weights_sha256",
]
"""The technical documentation's model facts shown on the card, in order."""

_COMPUTE_KEYS = [
    "training_flops",
    "training_gpu_hours",
    "hardware",
    "training_energy_kwh",
    "it_energy_kwh",
    "co2e_kg",
    "systemic_risk_presumed",
]
"""The compute, energy and threshold facts on the card, in order."""


def model_card(facts: Facts, documents: dict[str, dict[str, Any]], model_type: str) -> str:
    """README.md: the Hub header, then the card's sections in reading order."""
    r = facts.cfg.release
    tech = {k: s["fields"] for k, s in documents["technical_documentation"]["sections"].items()}
    thresholds = documents["compute_thresholds"]["sections"]["conclusions"]["fields"]
    lines = [
        "---",
        card_metadata(facts, model_type).to_yaml().rstrip(),
        "---",
        "",
        f"# {r.model_name} {r.version}",
        "",
        _summary(facts, tech),
        "",
        *_use(facts),
        *_section("Model", tech["model_properties"], _MODEL_KEYS),
        *_evaluation(tech),
        "## Training",
        "",
        *render_table(tech["training_process"]["stages"]),
        *_section(
            "Compute and energy",
            {**tech["computational_resources"], **tech["energy_consumption"], **thresholds},
            _COMPUTE_KEYS,
        ),
        *_per_site(tech["energy_consumption"]["sites"]),
        "## Training data",
        "",
        *render_table(tech["training_data"]["languages"]),
        *render_table(tech["training_data"]["sources"]),
        *_documents_section(facts, documents),
    ]
    return "\n".join(lines)


def _summary(facts: Facts, tech: dict[str, dict]) -> str:
    """The paragraph under the title: what the model is, its size and data, where its figures come from."""
    r = facts.cfg.release
    model = tech["model_properties"]
    architecture = model["architecture"]["value"]
    return (
        f"{architecture[:1].upper()}{architecture[1:]}: "
        f"{format_value(model['total_parameters']['value'])} parameters, "
        f"{format_value(model['active_parameters']['value'])} active per token, trained from scratch on "
        f"{format_value(tech['training_process']['tokens']['value'])} tokens of "
        f"{', '.join(facts.manifest['languages'])} text by {r.provider} with tessera. Every figure on this "
        "card and in the documents under `ai_act/` is read from what the training pipeline measured, "
        "computed, estimated or was configured with; each says which."
    )


def _use(facts: Facts) -> list[str]:
    """Intended and out-of-scope use, limitations, loading with transformers, and how to run it."""
    r = facts.cfg.release
    load_from = r.repository or "path/to/release"
    lines = ["## Use", "", f"**Intended use.** {r.intended_use}", ""]
    if r.out_of_scope_use:
        lines += [f"**Out of scope.** {r.out_of_scope_use}", ""]
    if r.limitations:
        lines += [f"**Limitations.** {r.limitations}", ""]
    return [
        *lines,
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{load_from}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{load_from}")',
        "```",
        "",
        *how_to_run(r.model_name, load_from),
    ]


def _evaluation(tech: dict[str, dict]) -> list[str]:
    """The evaluated checkpoint, intrinsic scores, and task scores when tasks were run."""
    evaluation = tech["evaluation"]
    lines = ["## Evaluation", "", *render_facts([evaluation["checkpoint"]])]
    lines += render_table(evaluation["intrinsic"])
    if evaluation["tasks"]["rows"]:
        lines += render_table(evaluation["tasks"])
    return lines


def _documents_section(facts: Facts, documents: dict[str, dict[str, Any]]) -> list[str]:
    """Links to each AI Act document in both forms, the schemas, the checksums and the provider's contact."""
    r = facts.cfg.release
    return [
        "## EU AI Act documents",
        "",
        "| document | for people | for machines |",
        "|---|---|---|",
        *(
            f"| {doc['title']} | [{kind}.md]({DOCUMENTS_DIR}/{kind}.md) "
            f"| [{kind}.json]({DOCUMENTS_DIR}/{kind}.json) |"
            for kind, doc in documents.items()
        ),
        "",
        f"JSON schemas: `{DOCUMENTS_DIR}/schemas/`. Checksums of every file: `MANIFEST.sha256` "
        "(`sha256sum -c MANIFEST.sha256`).",
        "",
        f"Provider: {r.provider}. Contact (also for rightsholders): {r.contact}.",
        "",
    ]
