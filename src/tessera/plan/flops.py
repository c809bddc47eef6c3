"""Training compute of a shape, in the two conventions the plan needs, and the AI Act thresholds.

- Hardware FLOPs (MFU basis): `tessera.model.config.train_flops_per_token`: 3 x the forward's matmul
  FLOPs (2 per multiply-add) plus attention scores over the full sequence. The trainer's MFU is measured
  against this count, so node-hours follow from it.
- Reported training compute (AI Act, model card): 6 x active parameters x tokens (Kaplan et al. 2020;
  Hoffmann et al. 2022, Appendix F, which counts the input embedding as a matmul), plus attention,
  shown separately. It is the larger of the two by the embedding lookup, so a threshold verdict from it
  errs on the side of notifying.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.model.config import ModelConfig, num_active_params, train_flops_per_token

__all__ = [
    "GPAI_INDICATIVE_FLOP", "SYSTEMIC_RISK_FLOP", "FlopsPerToken", "flops_per_token", "Threshold",
    "THRESHOLDS", "threshold_verdicts",
]


@dataclass(frozen=True)
class FlopsPerToken:
    dense: float
    """6 x active parameters: the 6ND convention."""
    attention: float
    """3 x 4 x seq_len x heads x head_dim x layers: scores and weighted values, forward and backward."""
    hardware: float
    """tessera's train_flops_per_token (matmuls + attention, no embedding lookup): the MFU basis."""

    @property
    def reported(self) -> float:
        return self.dense + self.attention


def flops_per_token(model: ModelConfig, seq_len: int) -> FlopsPerToken:
    attention = 3.0 * 4 * seq_len * model.num_heads * model.head_dim * model.num_layers
    return FlopsPerToken(6.0 * num_active_params(model), attention, train_flops_per_token(model, seq_len))


GPAI_INDICATIVE_FLOP = 1e23
"""Commission Guidelines on GPAI models (July 2025): an indicative criterion for general-purpose models."""
SYSTEMIC_RISK_FLOP = 1e25
"""AI Act Art. 51(2): above it a general-purpose model is presumed to have systemic risk."""


@dataclass(frozen=True)
class Threshold:
    flops: float
    name: str
    consequence: str


THRESHOLDS = (
    Threshold(
        GPAI_INDICATIVE_FLOP,
        "indicative general-purpose AI model",
        "Commission guidelines on GPAI (July 2025): above 1e23 FLOP a model that generates language is "
        "presumed general-purpose; Art. 53 obligations (technical documentation, copyright policy, "
        "training-content summary) apply",
    ),
    Threshold(
        SYSTEMIC_RISK_FLOP,
        "presumed systemic risk",
        "Art. 51(2): above 1e25 FLOP a GPAI model is presumed to have high-impact capabilities; Art. 52(1): "
        "notify the Commission within two weeks of knowing it will be met (before training ends), "
        "then Art. 55 obligations",
    ),
)


def threshold_verdicts(training_flops: float) -> list[str]:
    """One line per AI Act threshold: above or below it, with the consequence."""
    out = []
    for t in THRESHOLDS:
        side = "ABOVE" if training_flops > t.flops else "below"
        line = f"{side} {t.flops:.0e} FLOP ({t.name}): {training_flops / t.flops:.3g}x the threshold"
        out.append(line + (f"; {t.consequence}" if side == "ABOVE" else ""))
    return out
