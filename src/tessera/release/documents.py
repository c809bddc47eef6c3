"""The EU AI Act documents of a release, as JSON for machines and Markdown for people.

    training_content_summary   Art. 53(1)(d): the AI Office's template for the public summary of training
                               content (1 general information, 2 list of data sources, 3 data processing)
    technical_documentation    Art. 53(1)(a)-(b): Annex XI section 1 and Annex XII (information for
                               downstream providers), ordered as the Code of Practice's Model
                               Documentation Form (general, model properties, training, data, compute,
                               energy, evaluation, use)
    copyright_policy           Art. 53(1)(c): the copyright policy, by the Code of Practice's measures
    compute_thresholds         training compute against 10^23 FLOP (indicative criterion of a
                               general-purpose model) and 10^25 FLOP (presumed systemic risk, Art. 51(2))

Every field is a fact or a table of tessera.release.facts, so every figure carries its basis (measured,
computed, declared) and the file it was read from. Each JSON document is `{"$schema", "document",
"schema_version", "title", "model", "generated_utc", "generator", "sections": {id: {"title",
"fields"}}}`; its schema is in tessera/release/schemas/.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from tessera.model.config import num_active_params
from tessera.release.config import SOURCE_CATEGORIES
from tessera.release.facts import Facts, column, fact, table
from tessera.release.validate import SCHEMA_FILES, load_schema

__all__ = [
    "build_documents",
    "render_markdown",
    "render_facts",
    "render_table",
    "format_value",
    "GPAI_INDICATIVE_FLOP",
    "SYSTEMIC_RISK_FLOP",
    "DOCUMENT_TITLES",
]

SCHEMA_VERSION = 1
GPAI_INDICATIVE_FLOP = 1e23
"""Commission Guidelines on the scope of the obligations for GPAI models (July 2025): a model trained with
more than 10^23 FLOP that can generate language is indicatively a general-purpose AI model."""
SYSTEMIC_RISK_FLOP = 1e25
"""AI Act Art. 51(2): cumulative training compute above 10^25 FLOP presumes high-impact capabilities."""

# Licences under which the open-source exemption of Art. 53(2) can apply (free and open-source, allowing
# access, use, modification and distribution); Hub licence ids. Not OpenRAIL: its use-based restrictions
# make it a licence that limits use, not an open-source one.
OPEN_SOURCE_LICENSES = {
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc0-1.0",
    "mpl-2.0",
    "gpl-3.0",
    "lgpl-3.0",
    "agpl-3.0",
    "eupl-1.2",
}

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


def _section(title: str, fields: dict[str, dict]) -> dict[str, Any]:
    return {"title": title, "fields": fields}


def _document(kind: str, facts: Facts, sections: dict[str, dict]) -> dict[str, Any]:
    r = facts.cfg.release
    return {
        "$schema": load_schema(SCHEMA_FILES[kind])["$id"],
        "document": kind,
        "schema_version": SCHEMA_VERSION,
        "title": DOCUMENT_TITLES[kind],
        "model": f"{r.model_name} {r.version}",
        "generated_utc": facts.built_utc.isoformat(timespec="seconds"),
        "generator": f"tessera {version('tessera')}",
        "sections": sections,
    }


# ---- public summary of training content ------------------------------------------------------------


def _categories(facts: Facts) -> dict:
    sources = facts.sources_table()["rows"]
    rows = []
    for key, title in SOURCE_CATEGORIES.items():
        members = [s for s in sources if s["category"] == key]
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
        [
            column("category", "Category", "declared"),
            column("used", "Used", "computed"),
            column("sources", "Sources", "declared"),
            column("documents_out", "Documents", "measured"),
            column("bytes_out", "Bytes", "measured"),
        ],
        rows,
        "config release.source_categories, release.default_source_category; data/manifest.json: sources",
    )


def _scraping(facts: Facts) -> dict:
    scraped = [n for n in facts.manifest["sources"] if facts.source_category(n) == "scraped"]
    if not scraped:
        value = "No data was crawled or scraped from online sources for this model."
    else:
        value = (
            f"Sources collected by crawling: {', '.join(scraped)}; crawler, period and opt-out handling "
            "as stated for each in the data sources table (origin, TDM opt-out handling)."
        )
    return fact("Crawling and scraping", value, "computed", "source categories (config release)")


def training_content_summary(facts: Facts) -> dict[str, Any]:
    p = facts.provider()
    counts = facts.data_counts()
    tokens = facts.training()["tokens"]
    size_range = next(label for limit, label in TOKEN_RANGES if (tokens["value"] or 0) < limit)
    collected = counts["collected_utc"]["value"]
    general = {
        **{
            k: p[k]
            for k in (
                "provider_name",
                "contact",
                "authorised_representative",
                "model_name",
                "model_dependencies",
                "placed_on_market",
            )
        },
        "modalities": fact(
            "Modalities of the training data",
            ["text"],
            "computed",
            "data/manifest.json: every source is read as text by tessera.data.sources",
        ),
        "training_data_size": {**tokens, "label": "Training data size (tokens trained on)"},
        "training_data_size_range": fact(
            "Training data size range (text)",
            size_range,
            "computed",
            "training tokens against the template's ranges",
        ),
        "dataset_bytes": counts["bytes_out"],
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
        "languages": facts.languages_table(),
    }
    sources = {
        "categories": _categories(facts),
        "sources": facts.sources_table(),
        "scraping": _scraping(facts),
    }
    measures = facts.cfg.release.illegal_content_measures
    dropped = counts["dropped"]["value"]
    processing = {
        "tdm_opt_out": table(
            "Respect of reservations of rights from the text and data mining exception",
            [
                column("name", "Source", "declared"),
                column("license", "Licence", "declared"),
                column("tdm_opt_out", "How opt-outs were honoured", "declared"),
            ],
            facts.sources_table()["rows"],
            "data/manifest.json: sources.*.tdm_opt_out",
        ),
        "source_admission": fact(
            "Admission of sources",
            "Only the configured sources are read; each must carry a licence on the "
            f"allow-list ({', '.join(counts['allowed_licenses']['value'])}), its origin and a statement of "
            "how "
            "text-and-data-mining reservations were honoured, or the data stage and the release stop.",
            "computed",
            "tessera.data.config and tessera.release.validate",
        ),
        "illegal_content": fact(
            "Removal of illegal content",
            (measures + " " if measures else "") + "Pipeline measures: sources limited to the allow-listed "
            f"licences with declared provenance; documents dropped by the quality, language and duplicate "
            f"filters: {sum(dropped.values())} of {counts['documents_in']['value']} "
            "(counts by filter below). No classifier for illegal content runs in the pipeline.",
            "declared" if measures else "computed",
            "config release.illegal_content_measures; data/manifest.json: sources.*.dropped",
        ),
        "dropped": counts["dropped"],
        "personal_data": counts["pii_redactions"],
        "personal_data_method": fact(
            "Personal data filtering",
            "redaction of e-mail addresses, IBANs, Italian tax codes and phone numbers in kept documents"
            if facts.manifest["settings"]["filters"].get("redact_pii")
            else "disabled",
            "declared",
            "data/manifest.json: settings.filters.redact_pii",
        ),
        "cleanup": counts["cleanup"],
        "documents_in": counts["documents_in"],
        "documents_out": counts["documents_out"],
    }
    return _document(
        "training_content_summary",
        facts,
        {
            "general_information": _section("1. General information", general),
            "data_sources": _section("2. List of data sources", sources),
            "data_processing": _section("3. Data processing aspects", processing),
        },
    )


# ---- technical documentation -------------------------------------------------------------------------


def technical_documentation(facts: Facts, hf_architecture: str) -> dict[str, Any]:
    r = facts.cfg.release
    p, model, training = facts.provider(), facts.model(hf_architecture), facts.training()
    counts = facts.data_counts()
    general = {
        **{
            k: p[k]
            for k in (
                "provider_name",
                "contact",
                "model_name",
                "placed_on_market",
                "license",
                "distribution",
                "model_dependencies",
            )
        },
        "intended_use": fact("Intended use", r.intended_use, "declared", "config release.intended_use"),
        "out_of_scope_use": fact(
            "Uses not intended (acceptable-use policy)",
            r.out_of_scope_use or "none stated",
            "declared",
            "config release.out_of_scope_use",
        ),
    }
    use = {
        "integration": fact(
            "Technical means for integration",
            "transformers: AutoModelForCausalLM.from_pretrained(<release folder>) and AutoTokenizer; "
            "weights in safetensors",
            "computed",
            "the release folder (tessera.model.hf.export_hf)",
        ),
        "required_software": fact(
            "Required software",
            f"transformers >= {version('transformers')} (the version the release was built with)",
            "computed",
            "installed transformers at build time",
        ),
        "limitations": fact(
            "Known limitations",
            r.limitations or "see the evaluation results",
            "declared",
            "config release.limitations",
        ),
    }
    data = {
        "sources": facts.sources_table(),
        "languages": facts.languages_table(),
        **{
            k: counts[k]
            for k in (
                "documents_in",
                "documents_out",
                "bytes_out",
                "dropped",
                "pii_redactions",
                "cleanup",
                "filters",
                "allowed_licenses",
                "collected_utc",
            )
        },
    }
    return _document(
        "technical_documentation",
        facts,
        {
            "general": _section("1. General information", general),
            "model_properties": _section("2. Model properties", {**model, "tokenizer": facts.tokenizer()}),
            "training_process": _section("3. Training process", training),
            "training_data": _section("4. Data used for training, testing and validation", data),
            "computational_resources": _section("5. Computational resources", facts.compute()),
            "energy_consumption": _section("6. Energy consumption", facts.energy()),
            "evaluation": _section("7. Evaluation results", facts.evaluation()),
            "downstream_use": _section("8. Information for downstream providers (Annex XII)", use),
        },
    )


# ---- copyright policy ----------------------------------------------------------------------------------


def copyright_policy(facts: Facts) -> dict[str, Any]:
    p = facts.provider()
    r = facts.cfg.release
    sources = facts.sources_table()
    provenance = table(
        "Sources and the terms they are used under",
        [c for c in sources["columns"] if c["name"] in ("name", "origin", "license", "license_basis")],
        sources["rows"],
        sources["source"],
    )
    scope = {
        "provider_name": p["provider_name"],
        "model_name": p["model_name"],
        "scope": fact(
            "Scope",
            "All content used to train this model: the sources listed below, and nothing else "
            "(the data stage reads only configured sources and records each in the manifest).",
            "computed",
            "tessera.data.prepare; data/manifest.json",
        ),
    }
    lawful = {
        "sources": provenance,
        "allowed_licenses": facts.data_counts()["allowed_licenses"],
        "admission": fact(
            "Admission rule",
            "A source is trained on only with a licence on the allow-list and "
            "its licence basis and origin recorded; otherwise the data stage and the release stop.",
            "computed",
            "tessera.data.config, tessera.release.validate",
        ),
    }
    reservations = {
        "tdm_opt_out": table(
            "Text and data mining reservations per source",
            [c for c in sources["columns"] if c["name"] in ("name", "tdm_opt_out")],
            sources["rows"],
            sources["source"],
        ),
        "crawling": _scraping(facts),
    }
    outputs = {
        "acceptable_use": fact(
            "Terms against infringing uses of the model",
            r.out_of_scope_use or "none stated",
            "declared",
            "config release.out_of_scope_use",
        ),
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
            "policy": _section("1. Scope of the policy", scope),
            "lawful_access": _section("2. Lawfully accessible content and licences", lawful),
            "rights_reservations": _section("3. Reservations of rights (TDM opt-outs)", reservations),
            "infringing_outputs": _section("4. Mitigation of infringing outputs", outputs),
            "complaints": _section("5. Point of contact and complaints", complaints),
        },
    )


# ---- compute thresholds --------------------------------------------------------------------------------


def compute_thresholds(facts: Facts) -> dict[str, Any]:
    compute = facts.compute()
    flops = compute["training_flops"]["value"]
    active = num_active_params(facts.model_cfg)
    tokens = facts.training()["tokens"]["value"]
    rows = [
        {
            "threshold": "indicative criterion of a general-purpose AI model",
            "flop": GPAI_INDICATIVE_FLOP,
            "basis": "Commission Guidelines on the scope of the obligations for GPAI models (July 2025)",
            "exceeded": flops > GPAI_INDICATIVE_FLOP,
            "ratio": flops / GPAI_INDICATIVE_FLOP,
        },
        {
            "threshold": "presumption of systemic risk",
            "flop": SYSTEMIC_RISK_FLOP,
            "basis": "AI Act Art. 51(2)",
            "exceeded": flops > SYSTEMIC_RISK_FLOP,
            "ratio": flops / SYSTEMIC_RISK_FLOP,
        },
    ]
    systemic = flops > SYSTEMIC_RISK_FLOP
    open_license = facts.cfg.release.license.lower() in OPEN_SOURCE_LICENSES
    exemption = open_license and not systemic
    obligations = (
        ["Art. 53(1)(c) copyright policy", "Art. 53(1)(d) public summary of training content"]
        + (
            []
            if exemption
            else [
                "Art. 53(1)(a) technical documentation (Annex XI)",
                "Art. 53(1)(b) information for downstream providers (Annex XII)",
            ]
        )
        + (["Art. 55 obligations of models with systemic risk"] if systemic else [])
    )
    figures = {
        "training_flops": compute["training_flops"],
        "flops_6nd": fact(
            "Cross-check: 6 x active parameters x training tokens",
            6.0 * active * tokens,
            "computed",
            "technical documentation: active parameters; reports/energy.json: training.tokens",
            unit="FLOP",
            method="6 N D approximation (attention not counted)",
        ),
        "thresholds": table(
            "Thresholds",
            [
                column("threshold", "Threshold", "declared"),
                column("flop", "FLOP", "declared"),
                column("basis", "Legal basis", "declared"),
                column("exceeded", "Exceeded", "computed"),
                column("ratio", "Training compute / threshold", "computed"),
            ],
            rows,
            "tessera.release.documents (thresholds as published); reports/energy.json: training.flops",
        ),
    }
    conclusions = {
        "gpai_indicative": fact(
            "Above the indicative general-purpose criterion",
            rows[0]["exceeded"],
            "computed",
            "training compute > 1e23 FLOP (the model generates text)",
        ),
        "systemic_risk_presumed": fact(
            "Systemic risk presumed", systemic, "computed", "training compute > 1e25 FLOP"
        ),
        "open_source_exemption": fact(
            "Open-source exemption from Art. 53(1)(a)-(b) applies",
            exemption,
            "computed",
            "config release.license is free and open-source, and no systemic risk (Art. 53(2))",
            note=None
            if open_license
            else f"licence {facts.cfg.release.license!r} is not in tessera's list of "
            "free and open-source licences",
        ),
        "obligations": fact(
            "Provider obligations that apply if the model is a general-purpose AI model",
            obligations,
            "computed",
            "AI Act Art. 53, 55 from the facts above",
        ),
    }
    return _document(
        "compute_thresholds",
        facts,
        {
            "training_compute": _section("1. Training compute", figures),
            "conclusions": _section("2. Conclusions", conclusions),
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


# ---- Markdown ---------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A value for a Markdown cell: 4 significant digits for floats, thousands separators for ints."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {format_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "; ".join(format_value(v) for v in value) or "none"
    return str(value)


def _cell(value: Any) -> str:
    return format_value(value).replace("|", "\\|").replace("\n", " ")


def _render_fact_row(f: dict[str, Any]) -> str:
    value = _cell(f["value"]) + (f" {f['unit']}" if f.get("unit") else "")
    extra = " ".join(_cell(f[k]) for k in ("method", "note") if f.get(k))
    source = _cell(f["source"]) + (f" ({extra})" if extra else "")
    return f"| {_cell(f['label'])} | {value} | {f['basis']} | {source} |"


def render_facts(facts: list[dict[str, Any]]) -> list[str]:
    """Facts as one Markdown table: field, value (with unit), basis, source (with method and note)."""
    return ["| Field | Value | Basis | Source |", "|---|---|---|---|", *map(_render_fact_row, facts), ""]


def render_table(t: dict[str, Any]) -> list[str]:
    cols = t["columns"]
    lines = [
        f"**{t['label']}**",
        "",
        "| " + " | ".join(f"{c['label']} ({c['basis']})" for c in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_cell(row[c["name"]]) for c in cols) + " |" for row in t["rows"]]
    return [*lines, "", f"Source: {t['source']}", ""]


def render_markdown(document: dict[str, Any]) -> str:
    """The document for people: a table of facts per section, then its tables."""
    lines = [
        f"# {document['title']}: {document['model']}",
        "",
        f"Generated {document['generated_utc']} by {document['generator']} from the run's measured reports, "
        "data manifest and config. Basis of each figure: **measured** (observed by the pipeline), "
        "**computed** "
        "(derived by the stated formula), **declared** (written in the config). "
        f"Machine-readable: `{document['document']}.json` (schema `{document['$schema']}`).",
        "",
    ]
    for section in document["sections"].values():
        lines += [f"## {section['title']}", ""]
        facts = [f for f in section["fields"].values() if "columns" not in f]
        if facts:
            lines += render_facts(facts)
        for t in (f for f in section["fields"].values() if "columns" in f):
            lines += render_table(t)
    return "\n".join(lines).rstrip() + "\n"
