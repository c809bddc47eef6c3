"""The EU AI Act documents of a release, as JSON for machines (Markdown: tessera.release.render).

    training_content_summary   Art. 53(1)(d): the AI Office's template for the public summary of training
                               content (1 general information, 2 list of data sources, 3 data processing)
    technical_documentation    Art. 53(1)(a)-(b): Annex XI section 1 and Annex XII (information for
                               downstream providers), ordered as the Code of Practice's Model
                               Documentation Form (general, model properties, training, data, compute,
                               energy, evaluation, use)
    copyright_policy           Art. 53(1)(c): the copyright policy, by the Code of Practice's measures
    compute_thresholds         training compute against 10^23 FLOP (indicative) and 10^25 FLOP (Art. 51(2))

Every field is a fact or a table of tessera.release.facts, so every figure carries its basis (measured,
computed, estimated, declared) and the file it was read from. Each JSON document is `{"$schema",
"document", "schema_version", "title", "model", "generated_utc", "generator", "sections": {id: {"title",
"fields"}}}`; its schema is in tessera/release/schemas/.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from tessera.release.config import SOURCE_CATEGORIES
from tessera.release.facts import Facts, fact, table
from tessera.release.facts.compute import compute, training
from tessera.release.facts.data import data_counts, languages_table, source_category, sources_table
from tessera.release.facts.distribution import downstream, provider, use_policy
from tessera.release.facts.energy import energy
from tessera.release.facts.evaluation import evaluation
from tessera.release.facts.model import properties, tokenizer
from tessera.release.render import format_value, render_facts, render_markdown, render_table
from tessera.release.thresholds import compute_thresholds_sections, systemic_risk_section
from tessera.release.validate import SCHEMA_FILES, load_schema

__all__ = [
    "build_documents",
    "render_markdown",
    "render_facts",
    "render_table",
    "format_value",
    "DOCUMENT_TITLES",
    "SCHEMA_VERSION",
]

SCHEMA_VERSION = 2
DOCUMENT_TITLES = {
    "training_content_summary": "Public summary of training content",
    "technical_documentation": "Technical documentation (AI Act Annex XI section 1, Annex XII)",
    "copyright_policy": "Copyright policy",
    "compute_thresholds": "Training compute against the AI Act thresholds",
}
TOKEN_RANGES = (
    (1e9, "less than 1 billion tokens"),
    (1e13, "1 billion to 10 trillion tokens"),
    (float("inf"), "more than 10 trillion tokens"),
)
"""The template's size ranges for text (section 1.3)."""


def _pick(fields: dict[str, dict], *keys: str) -> dict[str, dict]:
    return {k: fields[k] for k in keys}


def _document(kind: str, facts: Facts, sections: dict[str, tuple[str, dict[str, dict]]]) -> dict[str, Any]:
    r = facts.cfg.release
    return {
        "$schema": load_schema(SCHEMA_FILES[kind])["$id"],
        "document": kind,
        "schema_version": SCHEMA_VERSION,
        "title": DOCUMENT_TITLES[kind],
        "model": f"{r.model_name} {r.version}",
        "generated_utc": facts.built_utc.isoformat(timespec="seconds"),
        "generator": f"tessera {version('tessera')}",
        "sections": {key: {"title": title, "fields": fields} for key, (title, fields) in sections.items()},
    }


# ---- public summary of training content ------------------------------------------------------------


def _categories(facts: Facts, sources: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for key, title in SOURCE_CATEGORIES.items():
        members = [s for s in sources["rows"] if s["category"] == key]
        rows.append(
            {
                "category": title,
                "used": "yes" if members else "no",
                "sources": ", ".join(s["name"] for s in members),
                "documents_out": sum(s["documents_out"] for s in members),
                "bytes_out": sum(s["bytes_out"] for s in members),
            }
        )
    return table(
        "Data sources by category",
        "config release.source_categories, release.default_source_category; data/manifest.json: sources",
        rows,
        ("category", "Category", "declared"),
        ("used", "Used", "computed"),
        ("sources", "Sources", "declared"),
        ("documents_out", "Documents", "measured"),
        ("bytes_out", "Bytes", "measured"),
    )


def _scraping(facts: Facts) -> dict[str, Any]:
    scraped = [n for n in facts.manifest["sources"] if source_category(facts, n) == "scraped"]
    value = (
        f"Sources collected by crawling: {', '.join(scraped)}; crawler, period and opt-out handling as "
        "stated for each in the data sources table (origin, TDM opt-out handling)."
        if scraped
        else "No data was crawled or scraped from online sources for this model."
    )
    return fact("Crawling and scraping", value, "computed", "source categories (config release)")


def _general_information(facts: Facts) -> dict[str, dict]:
    tokens = training(facts)["tokens"]
    collected = facts.manifest["created_utc"]
    p = provider(facts)
    return {
        **_pick(
            p,
            "provider_name",
            "contact",
            "authorised_representative",
            "model_name",
            "model_dependencies",
            "placed_on_market",
            "release_built",
        ),
        "modalities": fact(
            "Modalities of the training data",
            ["text"],
            "computed",
            "data/manifest.json: every source is read as text by tessera.data.sources",
        ),
        "training_data_size": {**tokens, "label": "Training data size (tokens trained on)"},
        "training_data_size_range": fact(
            "Training data size range (text)",
            next(label for limit, label in TOKEN_RANGES if (tokens["value"] or 0) < limit),
            "computed",
            "training tokens against the template's ranges",
        ),
        "dataset_bytes": data_counts(facts)["bytes_out"],
        "content_types": fact(
            "Types of content", facts.cfg.release.content_types, "declared", "config release.content_types"
        ),
        "latest_collection": fact(
            "Latest date of data acquisition (MM/YYYY)",
            f"{collected[5:7]}/{collected[0:4]}",
            "measured",
            "data/manifest.json: created_utc (the data stage read every source then)",
        ),
        "continuous_training": fact(
            "Continuously trained on new data", "no", "computed", "the release exports one fixed checkpoint"
        ),
        "languages": languages_table(facts),
    }


def _processing(facts: Facts, sources: dict[str, Any]) -> dict[str, dict]:
    counts = data_counts(facts)
    measures = facts.cfg.release.illegal_content_measures
    dropped = sum(counts["dropped"]["value"].values())
    redact = facts.manifest["settings"]["filters"].get("redact_pii")
    return {
        "tdm_opt_out": {
            **_subtable(sources, "name", "license", "tdm_opt_out"),
            "label": "Respect of reservations of rights from the text and data mining exception",
        },
        "source_admission": fact(
            "Admission of sources",
            "Only the configured sources are read; each must carry a licence on the allow-list "
            f"({', '.join(counts['allowed_licenses']['value'])}), its origin and a statement of how "
            "text-and-data-mining reservations were honoured, or the data stage and the release stop.",
            "computed",
            "tessera.data.config and tessera.release.validate",
        ),
        "illegal_content": fact(
            "Removal of illegal content",
            (measures + " " if measures else "") + "Pipeline measures: sources limited to the allow-listed "
            "licences with declared provenance; documents dropped by the quality, language and duplicate "
            f"filters: {dropped} of {counts['documents_in']['value']} (counts by filter below). No "
            "classifier for illegal content runs in the pipeline.",
            "declared" if measures else "computed",
            "config release.illegal_content_measures; data/manifest.json: sources.*.dropped",
        ),
        "dropped": counts["dropped"],
        "personal_data": counts["pii_redactions"],
        "personal_data_method": fact(
            "Personal data filtering",
            "redaction of e-mail addresses, IBANs, Italian tax codes and phone numbers in kept documents"
            if redact
            else "disabled",
            "declared",
            "data/manifest.json: settings.filters.redact_pii",
        ),
        **_pick(counts, "cleanup", "documents_in", "documents_out"),
    }


def _subtable(t: dict[str, Any], *names: str) -> dict[str, Any]:
    """The columns `names` of table `t` (same rows, same source)."""
    return {**t, "columns": [c for c in t["columns"] if c["name"] in names]}


def training_content_summary(facts: Facts) -> dict[str, Any]:
    sources = sources_table(facts)
    return _document(
        "training_content_summary",
        facts,
        {
            "general_information": ("1. General information", _general_information(facts)),
            "data_sources": (
                "2. List of data sources",
                {"categories": _categories(facts, sources), "sources": sources, "scraping": _scraping(facts)},
            ),
            "data_processing": ("3. Data processing aspects", _processing(facts, sources)),
        },
    )


# ---- technical documentation -------------------------------------------------------------------------


def technical_documentation(facts: Facts, hf_architecture: str) -> dict[str, Any]:
    general = {
        **_pick(
            provider(facts),
            "provider_name",
            "contact",
            "model_name",
            "placed_on_market",
            "release_built",
            "license",
            "distribution",
            "monetised",
            "model_dependencies",
        ),
        **use_policy(facts),
        "systemic_risk_documentation": systemic_risk_section(facts),
    }
    counts = data_counts(facts)
    data = {
        "sources": sources_table(facts),
        "languages": languages_table(facts),
        **_pick(
            counts,
            "documents_in",
            "documents_out",
            "bytes_out",
            "dropped",
            "pii_redactions",
            "cleanup",
            "filters",
            "allowed_licenses",
            "collected_utc",
            "bias_detection",
        ),
    }
    return _document(
        "technical_documentation",
        facts,
        {
            "general": ("1. General information", general),
            "model_properties": (
                "2. Model properties",
                {**properties(facts, hf_architecture), "tokenizer": tokenizer(facts)},
            ),
            "training_process": ("3. Training process", training(facts)),
            "training_data": ("4. Data used for training, testing and validation", data),
            "computational_resources": ("5. Computational resources", compute(facts)),
            "energy_consumption": ("6. Energy consumption", energy(facts)),
            "evaluation": ("7. Evaluation results", evaluation(facts)),
            "downstream_use": ("8. Information for downstream providers (Annex XII)", downstream(facts)),
        },
    )


# ---- copyright policy ----------------------------------------------------------------------------------


def copyright_policy(facts: Facts) -> dict[str, Any]:
    p, r, sources = provider(facts), facts.cfg.release, sources_table(facts)
    scope = {
        **_pick(p, "provider_name", "model_name"),
        "scope": fact(
            "Scope",
            "All content used to train this model: the sources listed below, and nothing else "
            "(the data stage reads only configured sources and records each in the manifest).",
            "computed",
            "tessera.data.prepare; data/manifest.json",
        ),
    }
    lawful = {
        "sources": {
            **_subtable(sources, "name", "origin", "license", "license_basis"),
            "label": "Sources and the terms they are used under",
        },
        "allowed_licenses": data_counts(facts)["allowed_licenses"],
        "admission": fact(
            "Admission rule",
            "A source is trained on only with a licence on the allow-list and its licence basis and origin "
            "recorded; otherwise the data stage and the release stop.",
            "computed",
            "tessera.data.config, tessera.release.validate",
        ),
    }
    reservations = {
        "tdm_opt_out": {
            **_subtable(sources, "name", "tdm_opt_out"),
            "label": "Text and data mining reservations per source",
        },
        "crawling": _scraping(facts),
    }
    outputs = {
        "acceptable_use": {
            **use_policy(facts)["out_of_scope_use"],
            "label": "Terms against infringing uses of the model",
        },
        "license": p["license"],
    }
    complaints = {
        "contact": fact(
            "Point of contact for rightsholders' complaints", r.contact, "declared", "config release.contact"
        ),
    }
    return _document(
        "copyright_policy",
        facts,
        {
            "policy": ("1. Scope of the policy", scope),
            "lawful_access": ("2. Lawfully accessible content and licences", lawful),
            "rights_reservations": ("3. Reservations of rights (TDM opt-outs)", reservations),
            "infringing_outputs": ("4. Mitigation of infringing outputs", outputs),
            "complaints": ("5. Point of contact and complaints", complaints),
        },
    )


def compute_thresholds(facts: Facts) -> dict[str, Any]:
    sections = compute_thresholds_sections(facts)
    return _document(
        "compute_thresholds",
        facts,
        {
            "training_compute": ("1. Training compute", sections["training_compute"]),
            "conclusions": ("2. Conclusions", sections["conclusions"]),
        },
    )


def build_documents(facts: Facts, hf_architecture: str) -> dict[str, dict[str, Any]]:
    """The four documents by kind (the keys of tessera.release.validate.SCHEMA_FILES)."""
    return {
        "training_content_summary": training_content_summary(facts),
        "technical_documentation": technical_documentation(facts, hf_architecture),
        "copyright_policy": copyright_policy(facts),
        "compute_thresholds": compute_thresholds(facts),
    }
