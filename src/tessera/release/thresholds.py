"""Training compute against the AI Act's thresholds, and what follows from it.

    10^23 FLOP  Commission Guidelines on the scope of the obligations for GPAI models (July 2025): an
                *indicative* criterion. A model trained with more that can generate language is indicatively
                general-purpose; generality and the range of tasks decide, not the number alone.
    10^25 FLOP  AI Act Art. 51(2): cumulative training compute above it presumes high-impact capabilities
                (systemic risk); the Commission may also designate a model below it (Art. 51(1)(b)).

The document compares; it does not classify. Each row says which side of a threshold the training compute
lies on, with the threshold's legal weight in its caveat.
"""

from __future__ import annotations

from typing import Any

from tessera.model.config import num_active_params
from tessera.plan.flops import GPAI_INDICATIVE_FLOP, SYSTEMIC_RISK_FLOP
from tessera.release.facts import Facts, fact, table
from tessera.release.facts.compute import compute as compute_facts
from tessera.release.facts.distribution import PROVIDER_TO_DECLARE, open_source_exemption

__all__ = [
    "compute_thresholds_sections",
    "systemic_risk_section",
    "GPAI_INDICATIVE_FLOP",
    "SYSTEMIC_RISK_FLOP",
]

_GUIDELINES = "Commission Guidelines on the scope of the obligations for GPAI models (July 2025)"
_INDICATIVE = (
    "indicative only: above it a model that generates text is presumed general-purpose unless it lacks "
    "significant generality; below it a model can still be general-purpose"
)
_PRESUMPTION = (
    "a comparison of training compute with the Art. 51(2) threshold, not a classification: the Commission "
    "may designate a model with systemic risk on other criteria (Art. 51(1)(b), Annex XIII)"
)


def _flops(facts: Facts) -> float:
    return facts.energy.training.flops.value


def systemic_risk_section(facts: Facts) -> dict[str, Any]:
    """Annex XI section 2 (models with systemic risk only): not applicable below 10^25, owed above."""
    above = _flops(facts) > SYSTEMIC_RISK_FLOP
    return fact(
        "Annex XI section 2 (evaluation strategies, adversarial testing, system architecture)",
        f"{PROVIDER_TO_DECLARE}: owed, training compute is above 1e25 FLOP"
        if above
        else "not applicable because training compute is below 1e25 FLOP and no designation is recorded",
        "computed",
        "reports/energy.json: training.flops against Art. 51(2)",
    )


def _thresholds(flops: float) -> dict[str, Any]:
    rows = [
        {
            "threshold": "indicative criterion of a general-purpose AI model",
            "flop": GPAI_INDICATIVE_FLOP,
            "basis": _GUIDELINES,
            "caveat": _INDICATIVE,
        },
        {
            "threshold": "presumption of high-impact capabilities (systemic risk)",
            "flop": SYSTEMIC_RISK_FLOP,
            "basis": "AI Act Art. 51(2)",
            "caveat": _PRESUMPTION,
        },
    ]
    for row in rows:
        row["above"], row["ratio"] = flops > row["flop"], flops / row["flop"]
    return table(
        "Thresholds",
        "tessera.release.thresholds (thresholds as published); reports/energy.json: training.flops",
        rows,
        ("threshold", "Threshold", "declared"),
        ("flop", "FLOP", "declared"),
        ("basis", "Legal basis", "declared"),
        ("caveat", "Legal weight", "declared"),
        ("above", "Training compute above it", "computed"),
        ("ratio", "Training compute / threshold", "computed"),
    )


def _obligations(exempt: bool, systemic: bool) -> list[str]:
    return (
        ["Art. 53(1)(c) copyright policy", "Art. 53(1)(d) public summary of training content"]
        + (
            []
            if exempt
            else [
                "Art. 53(1)(a) technical documentation (Annex XI)",
                "Art. 53(1)(b) information for downstream providers (Annex XII)",
            ]
        )
        + (["Art. 55 obligations of models with systemic risk"] if systemic else [])
    )


def compute_thresholds_sections(facts: Facts) -> dict[str, dict[str, Any]]:
    """The fields of the compute-thresholds document: (training compute, conclusions)."""
    flops = _flops(facts)
    tokens = facts.energy.training.tokens.value
    systemic = flops > SYSTEMIC_RISK_FLOP
    exemption = open_source_exemption(facts, systemic)
    figures = {
        "training_flops": compute_facts(facts)["training_flops"],
        "flops_6nd": fact(
            "Cross-check: 6 x active parameters x training tokens",
            6.0 * num_active_params(facts.model_cfg) * tokens,
            "computed",
            "technical documentation: active parameters; reports/energy.json: training.tokens",
            unit="FLOP",
            method="6 N D approximation (attention not counted)",
        ),
        "thresholds": _thresholds(flops),
    }
    conclusions = {
        "gpai_indicative": fact(
            "Training compute above the indicative 1e23 FLOP criterion",
            flops > GPAI_INDICATIVE_FLOP,
            "computed",
            "reports/energy.json: training.flops > 1e23",
            note=_INDICATIVE,
        ),
        "systemic_risk_presumed": fact(
            "Training compute above the 1e25 FLOP of Art. 51(2)",
            systemic,
            "computed",
            "reports/energy.json: training.flops > 1e25",
            note=_PRESUMPTION,
        ),
        "open_source_exemption": exemption,
        "obligations": fact(
            "Provider obligations that apply if the model is a general-purpose AI model",
            _obligations(exemption["value"], systemic),
            "computed",
            "AI Act Art. 53, 55 from the facts above",
        ),
    }
    return {"training_compute": figures, "conclusions": conclusions}
