"""Who places the model on the market, when, how it is distributed, and what downstream providers need
to build it into an AI system (Annex XI 1.1, Annex XII 1 and 2(a)), and whether the open-source
exemption of Art. 53(2) applies, decided from the publication record, not from the licence alone."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from tessera.release.facts.basis import fact
from tessera.release.facts.inputs import Facts

__all__ = [
    "provider",
    "use_policy",
    "downstream",
    "open_source_exemption",
    "OPEN_SOURCE_LICENSES",
    "PROVIDER_TO_DECLARE",
]

PROVIDER_TO_DECLARE = "provider to declare"
"""The value of an item the AI Act asks for that only the provider can state and has not stated."""

# Licences under which the open-source exemption of Art. 53(2) can apply (free and open-source, allowing
# access, use, modification and distribution); Hub licence ids. Not OpenRAIL: its use-based restrictions
# make it a licence that limits use, not an open-source one.
OPEN_SOURCE_LICENSES = frozenset(
    {
        "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc0-1.0",
        "mpl-2.0", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "eupl-1.2",
    }
)  # fmt: skip


def _declared(label: str, key: str, value: Any, absent: str = PROVIDER_TO_DECLARE) -> dict[str, Any]:
    """A release key as a fact; an empty one says so instead of vanishing."""
    return fact(label, value if value else absent, "declared", f"config release.{key}")


def _placement(facts: Facts) -> dict[str, Any]:
    placed = facts.cfg.release.placed_on_market
    if placed:
        return fact(
            "Date of placement on the Union market", placed, "declared", "config release.placed_on_market"
        )
    return fact(
        "Date of placement on the Union market",
        "not yet placed on the market",
        "computed",
        "config release.placed_on_market is null",
        note="the date the documents were built is `release_built`, not a placement date",
    )


def _distribution(facts: Facts) -> dict[str, Any]:
    r = facts.cfg.release
    if r.publication_url:
        return fact(
            "Distribution",
            f"published at {r.publication_url} (weights, tokenizer, model card and these documents)",
            "declared",
            "config release.publication_url",
        )
    return fact("Distribution", "not yet published", "computed", "config release.publication_url is null")


def provider(facts: Facts) -> dict[str, dict]:
    """Provider, model identity, dates and distribution (template 1.1-1.2, Annex XII 1(b), 1(c), 1(h))."""
    r = facts.cfg.release
    return {
        "provider_name": fact("Provider", r.provider, "declared", "config release.provider"),
        "contact": fact("Contact", r.contact, "declared", "config release.contact"),
        "authorised_representative": _declared(
            "Authorised representative",
            "authorised_representative",
            r.authorised_representative,
            "none declared (required only of providers established outside the Union, Art. 54)",
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
        "placed_on_market": _placement(facts),
        "release_built": fact(
            "Release built (documents generated)",
            facts.built_utc.date().isoformat(),
            "measured",
            "clock of the machine that ran `tessera release`",
        ),
        "license": fact("Licence", r.license, "declared", "config release.license"),
        "distribution": _distribution(facts),
        "monetised": fact(
            "Monetised (paid access, or use tied to paid services)",
            {True: "yes", False: "no"}.get(r.monetised, PROVIDER_TO_DECLARE),
            "declared",
            "config release.monetised",
        ),
    }


def use_policy(facts: Facts) -> dict[str, dict]:
    """What the model is for, what it can be built into, and what is excluded (Annex XII 1(a)-(b))."""
    r = facts.cfg.release
    return {
        "intended_use": fact("Intended use", r.intended_use, "declared", "config release.intended_use"),
        "ai_system_types": _declared(
            "Type and nature of AI systems the model can be integrated into",
            "ai_system_types",
            r.ai_system_types,
        ),
        "out_of_scope_use": _declared(
            "Uses not intended (acceptable-use policy)", "out_of_scope_use", r.out_of_scope_use, "none stated"
        ),
    }


def downstream(facts: Facts) -> dict[str, dict]:
    """What a downstream provider integrating the model needs (Annex XII 1(d)-(e), 2(a))."""
    r = facts.cfg.release
    software = ", ".join(f"{p} {version(p)}" for p in ("transformers", "torch", "safetensors", "tokenizers"))
    return {
        "integration": fact(
            "Technical means for integration",
            "transformers: AutoModelForCausalLM.from_pretrained(<release folder>) and AutoTokenizer; "
            "weights in safetensors",
            "computed",
            "the release folder (tessera.model.hf.export_hf)",
        ),
        "hardware_software_interaction": fact(
            "Interaction with hardware or software outside the model",
            "none of its own: the model maps token ids to next-token scores inside the runtime that loads it "
            "(PyTorch on CPU or GPU); it was not trained to call tools or functions, so any action on other "
            "software is the integrating AI system's",
            "computed",
            "tessera.model.transformer (a decoder over token ids) and the training data (plain text)",
        ),
        "required_software": fact(
            "Software versions the release was built and checked with",
            software,
            "measured",
            "installed package versions at build time (importlib.metadata)",
        ),
        "limitations": _declared(
            "Known limitations", "limitations", r.limitations, "see the evaluation results"
        ),
    }


def open_source_exemption(facts: Facts, systemic: bool) -> dict[str, Any]:
    """Art. 53(2): a free and open-source licence, weights and architecture published, no monetisation, no
    systemic risk. Every condition not shown by the publication record is a reason for "no"."""
    r = facts.cfg.release
    reasons = []
    if r.license.lower() not in OPEN_SOURCE_LICENSES:
        reasons.append(f"licence {r.license!r} is not in tessera's list of free and open-source licences")
    if not r.publication_url:
        reasons.append("nothing is published: release.publication_url is null")
    if r.monetised is not False:
        reasons.append(
            "monetisation is not declared absent: release.monetised is "
            + ("true" if r.monetised else "not set")
        )
    if systemic:
        reasons.append("training compute presumes systemic risk (Art. 51(2))")
    return fact(
        "Open-source exemption from Art. 53(1)(a)-(b) applies",
        not reasons,
        "computed",
        "config release.license, release.publication_url, release.monetised; training compute (Art. 53(2))",
        note="; ".join(reasons) if reasons else None,
    )
