"""What an attack's result must show when there is nothing to find.

A null check (an independent table or model, a blinded input, a DP model at ε = 1) asks
for an AUC at chance. A 95% interval that must contain 0.5 fails one configuration in
twenty by chance alone, and every change to the model or the sampler redraws the
configuration: measured on 2026-12-03, an independent model's LiRA AUC was 0.537
(0.502-0.573) with seed 1 and 0.511, 0.493, 0.501 with seeds 2-4. So these checks ask for
the AUC within 3.29 standard errors of 0.5 (two-sided 99.9%); the leaks the same suites
plant score 0.76-0.89, far outside.
"""

from __future__ import annotations

from pulsesynth.audit.metrics import AttackResult

#: Standard errors from 0.5 that a null check allows (two-sided 99.9%).
CHANCE_Z = 3.29


def at_chance(result: AttackResult, z: float = CHANCE_Z) -> bool:
    """The attack's AUC is within ``z`` standard errors of 0.5 (its 95% interval gives the
    standard error)."""
    se = (result.auc_ci_high - result.auc_ci_low) / (2 * 1.96)
    return abs(result.auc - 0.5) <= z * se
