"""The classification gate: policy thresholds → the most open passing label, or blocked.

Labels follow Dubai's data classification as it applies to synthetic releases: ``open``
(everyone) or ``confidential`` (Shared data, government entities holding a token).
Anything that passes neither is ``blocked``; the result lists every threshold with its
measured value, so a blocked report says which threshold failed and by how much.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pulsesynth.errors import PulseSynthError

RELEASE_LABELS = ("open", "confidential")
THRESHOLDS = (
    "max_epsilon",
    "max_attack_advantage",
    "max_attack_advantage_ci_high",
    "max_dcr_share",
    "max_unique_exact_matches",
)
DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "deployments" / "policy.yaml"


class PolicyError(PulseSynthError):
    """The policy file is missing or malformed."""


@dataclass(frozen=True)
class Check:
    """One threshold compared with one measurement."""

    label: str
    name: str
    threshold: float
    value: float
    passed: bool
    subject: str | None = None

    @property
    def excess(self) -> float:
        return max(0.0, self.value - self.threshold)

    def describe(self) -> str:
        what = f"{self.name}[{self.subject}]" if self.subject else self.name
        verdict = "ok" if self.passed else f"FAILS by {self.excess:.4g}"
        return f"{self.label}: {what} = {self.value:.4g} (limit {self.threshold:g}) {verdict}"


@dataclass
class GateResult:
    """The label a candidate earned, and the evidence."""

    label: str
    checks: list[Check] = field(default_factory=list)
    reason: str = ""

    @property
    def releasable(self) -> bool:
        return self.label in RELEASE_LABELS

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "reason": self.reason,
                "checks": [asdict(c) | {"message": c.describe()} for c in self.checks]}


def load_policy(path: str | Path = DEFAULT_POLICY) -> dict[str, dict[str, float | None]]:
    """Read and check the policy file: thresholds per release label, most open first."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: cannot read policy ({exc.__class__.__name__})") from exc
    labels = (raw or {}).get("labels")
    if not isinstance(labels, dict) or list(labels) != [lb for lb in RELEASE_LABELS
                                                        if lb in labels] or not labels:
        raise PolicyError(f"{path}: labels must map {' then '.join(RELEASE_LABELS)} to thresholds")
    policy: dict[str, dict[str, float | None]] = {}
    for label, thresholds in labels.items():
        unknown = set(thresholds or {}) - set(THRESHOLDS)
        if unknown:
            raise PolicyError(f"{path}: labels.{label}.{sorted(unknown)[0]}: unknown threshold")
        policy[label] = {name: (None if (thresholds or {}).get(name) is None
                                else float(thresholds[name])) for name in THRESHOLDS}
    return policy


def evaluate_gate(policy: dict[str, dict[str, float | None]], privacy: dict[str, Any],
                  audit: dict[str, Any]) -> GateResult:
    """Label a candidate from its privacy metadata and audit report.

    ``privacy`` needs ``private`` and ``epsilon``; ``audit`` needs ``membership_attacks``
    (name → result with ``advantage`` and ``advantage_ci_high``) and ``distances``
    (``dcr_share``, ``exact_matches_unique``).
    """
    if not privacy.get("private", False):
        return GateResult("blocked", reason="non-private (non-DP) artifact: never releasable")
    attacks = audit.get("membership_attacks") or {}
    if not attacks:
        return GateResult("blocked", reason="no membership attack was run: nothing proves privacy")
    distances = audit.get("distances") or {}
    all_checks: list[Check] = []
    passing: list[str] = []
    for label, limits in policy.items():
        checks = _checks(label, limits, privacy, attacks, distances)
        all_checks += checks
        if all(c.passed for c in checks):
            passing.append(label)
    if passing:
        return GateResult(passing[0], all_checks, reason=f"all {passing[0]} thresholds pass")
    loosest = list(policy)[-1]
    failed = [c.describe() for c in all_checks if c.label == loosest and not c.passed]
    return GateResult("blocked", all_checks, reason="; ".join(failed))


def _checks(label: str, limits: dict[str, float | None], privacy: dict[str, Any],
            attacks: dict[str, Any], distances: dict[str, Any]) -> list[Check]:
    checks = []

    def add(name: str, value: float, subject: str | None = None) -> None:
        limit = limits.get(name)
        if limit is None:
            return
        value = float(value)
        passed = math.isfinite(value) and value <= limit
        checks.append(Check(label, name, limit, value, passed, subject))

    add("max_epsilon", privacy.get("epsilon", math.inf))
    for name, result in sorted(attacks.items()):
        add("max_attack_advantage", result.get("advantage", math.inf), name)
        add("max_attack_advantage_ci_high", result.get("advantage_ci_high", math.inf), name)
    add("max_dcr_share", distances.get("dcr_share", math.inf))
    add("max_unique_exact_matches", distances.get("exact_matches_unique", math.inf))
    return checks
