"""Compute-optimal scaling laws the plan checks its shapes against. Coefficients are the papers' fits;
their losses are in the papers' own units (their tokenizer and data), so the plan uses them to compare
shapes and token budgets, never as a forecast of this run's loss.

- Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (Chinchilla), Approach 3:
  L(N, D) = E + A / N^alpha + B / D^beta with E = 1.69, A = 406.4, B = 410.7, alpha = 0.34,
  beta = 0.28. Its compute-optimal split of C = 6ND is N_opt = G (C/6)^a, D_opt = (C/6)^b / G with
  a = beta/(alpha+beta), b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta)).
  Approaches 1 and 2 of the same paper give about 20 tokens per parameter (`CHINCHILLA_TOKENS_PER_PARAM`).
  For an MoE the plan puts the active parameters in N (compute per token is what C = 6ND counts).
- Krajewski et al. 2024, "Scaling Laws for Fine-Grained Mixture of Experts" (arXiv 2402.07871), at
  expansion rate 64: L(N, D, G) = c + (g / G^gamma + a) / N^alpha + b / D^beta with a = 18.1,
  alpha = 0.115, b = 30.8, beta = 0.147, g = 2.1, gamma = 0.58, c = 0.47; G is the granularity
  (a dense FFN's hidden size 4 d_model over one expert's), N the active non-embedding parameters.
  LABEL: these coefficients are as we transcribed them from the paper's fit; the search tool found no
  copy of its table to check them against, so verify them before relying on the predicted losses.
- Ludziejewski et al. 2025, "Joint MoE Scaling Laws: Mixture of Experts Can Be Memory Efficient"
  (arXiv 2502.05172, ICML 2025): L(N_act, D, E^) = a E^^delta N_act^(alpha + gamma ln E^) +
  b E^^omega D^(beta + zeta ln E^) + c, fitted on 280+ runs up to 2.7B active / 5B total parameters.
  Not used in the arithmetic (its transformed expert count E^ needs constants we could not check);
  cited for its finding that, at equal memory, an MoE with more tokens per active parameter than
  Chinchilla's 20 can beat a dense model: the plan shows tokens per active parameter for each shape.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHINCHILLA", "KRAJEWSKI", "CHINCHILLA_TOKENS_PER_PARAM", "Chinchilla", "Krajewski", "CITATIONS"]

CHINCHILLA_TOKENS_PER_PARAM = 20.0


@dataclass(frozen=True)
class Chinchilla:
    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28

    def loss(self, n: float, d: float) -> float:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def optimal(self, flops: float) -> tuple[float, float]:
        """(N_opt, D_opt) minimising loss under 6 N D = flops."""
        a = self.beta / (self.alpha + self.beta)
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        n = g * (flops / 6) ** a
        return n, flops / (6 * n)


@dataclass(frozen=True)
class Krajewski:
    a: float = 18.1
    alpha: float = 0.115
    b: float = 30.8
    beta: float = 0.147
    g: float = 2.1
    gamma: float = 0.58
    c: float = 0.47

    def loss(self, n: float, d: float, granularity: float) -> float:
        return self.c + (self.g / granularity**self.gamma + self.a) / n**self.alpha + self.b / d**self.beta


CHINCHILLA = Chinchilla()
KRAJEWSKI = Krajewski()
CITATIONS = (
    "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models (arXiv 2203.15556), Approach 3 "
    "fit E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28; ~20 tokens/parameter (Approaches 1-2)",
    "Krajewski et al. 2024, Scaling Laws for Fine-Grained Mixture of Experts (arXiv 2402.07871): "
    "a=18.1, alpha=0.115, b=30.8, beta=0.147, g=2.1, gamma=0.58, c=0.47 (transcribed, unverified here)",
    "Ludziejewski et al. 2025, Joint MoE Scaling Laws: Mixture of Experts Can Be Memory Efficient "
    "(arXiv 2502.05172): cited, not computed",
)
