"""The classification gate: policy thresholds → the most open passing label, or blocked.

Labels follow Dubai's data classification as it applies to synthetic releases: ``open``
(everyone) or ``confidential`` (Shared data, government entities holding a token).
Anything that passes neither is ``blocked``; the result lists every threshold with its
measured value, so a blocked report says which threshold failed and by how much.

Release kinds (white paper mechanisms 3, 1 and 2): ``table`` (a synthetic table),
``classifier`` (a DP-trained classifier's weights) and ``model`` (the DP-VAE itself).
The exact-match thresholds apply only to kinds that release rows;
ε and the membership attacks apply to every kind. Each kind has a most open label it may
get (the policy file's ``kinds`` section): a generative model is sensitive (seed 004) and
ranks below synthetic data in privacy (seed 000), so a ``model`` is never ``open`` — the
policy cannot lift that cap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pulsesynth.errors import PulseSynthError
from pulsesynth.labels import BLOCKED, OPEN, RELEASE_LABELS, at_most, more_open_than
from pulsesynth.release_kinds import KINDS, TABLE, UnknownReleaseKind, get_kind, kinds
from pulsesynth.reports import PrivacyReport, ReleaseStats
from pulsesynth.schema import YAMLFileError, read_yaml

# Labels and kinds are owned by pulsesynth.labels and pulsesynth.release_kinds; the names
# below stay importable from here for the callers that used them.
#: Kinds whose release holds rows: only these are checked for distances and exact matches.
ROW_KINDS = tuple(k.name for k in kinds() if k.releases_rows)
#: The most open label each kind may get when the policy file says nothing.
DEFAULT_KIND_CAPS = {k.name: k.default_max_label for k in kinds()}
#: Caps no policy may lift (seed 004: a released generative model is sensitive).
HARD_KIND_CAPS = {k.name: k.hard_max_label for k in kinds() if k.hard_max_label}
THRESHOLDS = (
    "max_epsilon",
    "max_attack_advantage",
    "max_attack_advantage_ci_high",
    "max_exact_match_excess",
    "exact_match_alpha",
)
#: Thresholds a value must reach rather than stay under (a p-value against its α).
AT_LEAST = frozenset({"exact_match_alpha"})
#: The release policy shipped inside the package (``deployments/policy.yaml`` in the checkout
#: is a link to it), so an installed package gates without a checkout. A plain ``Path``:
#: callers read and hash it; the package is always installed as files, never zipped.
DEFAULT_POLICY = Path(str(resources.files("pulsesynth").joinpath("policy.yaml")))


class PolicyError(PulseSynthError):
    """The policy file is missing or malformed."""


class Policy(dict):
    """Thresholds per release label (the mapping, most open first) plus per-kind caps.

    Iterating or indexing it gives the labels' thresholds, as before; ``kinds`` maps each
    release kind to the most open label it may get.
    """

    def __init__(self, labels: dict[str, dict[str, float | None]],
                 kinds: dict[str, str] | None = None) -> None:
        super().__init__(labels)
        self.kinds: dict[str, str] = dict(DEFAULT_KIND_CAPS) | dict(kinds or {})


def kind_cap(policy: dict[str, Any], kind: str) -> str:
    """The most open label ``kind`` may get under ``policy`` (never above a hard cap)."""
    try:
        spec = get_kind(kind)
    except UnknownReleaseKind as exc:
        raise PolicyError(str(exc)) from None
    caps = getattr(policy, "kinds", None) or DEFAULT_KIND_CAPS
    cap = caps.get(kind, spec.default_max_label)
    if spec.hard_max_label is not None and more_open_than(cap, spec.hard_max_label):
        cap = spec.hard_max_label
    return cap


@dataclass(frozen=True)
class Check:
    """One threshold compared with one measurement."""

    label: str
    name: str
    threshold: float
    value: float
    passed: bool
    subject: str | None = None
    #: The value must be at least the threshold (a p-value against α), not at most.
    at_least: bool = False

    @property
    def excess(self) -> float:
        """How far the value is on the wrong side of the threshold (0 when it passes)."""
        if not math.isfinite(self.value):
            return math.inf
        gap = self.threshold - self.value if self.at_least else self.value - self.threshold
        return max(0.0, gap)

    def describe(self) -> str:
        what = f"{self.name}[{self.subject}]" if self.subject else self.name
        if not math.isfinite(self.value):
            return f"{self.label}: {what} is missing from the DP release report FAILS"
        limit = (f"must be at least {self.threshold:g}" if self.at_least
                 else f"limit {self.threshold:g}")
        verdict = "ok" if self.passed else f"FAILS by {self.excess:.4g}"
        plain = "" if self.passed else PLAIN_FAILURE.get(self.name, "")
        if plain:
            plain = " — " + plain.format(value=self.value, threshold=self.threshold)
        return f"{self.label}: {what} = {self.value:.4g} ({limit}) {verdict}{plain}"


#: What a failed threshold means, in plain words (formatted with value and threshold).
PLAIN_FAILURE = {
    "max_epsilon": "the privacy budget spent is larger than this label allows",
    "max_attack_advantage": "an attack tells training rows from unseen rows better than "
                            "this label allows",
    "max_attack_advantage_ci_high": "an attack may tell training rows from unseen rows "
                                    "better than this label allows (upper end of its 95% "
                                    "interval)",
    "max_exact_match_excess": "the table reproduces verbatim {value:.1%} more of the unique "
                              "training rows than of unseen rows, above the {threshold:.1%} "
                              "this label allows",
    "exact_match_alpha": "unique training rows are reproduced verbatim more often than "
                         "unseen rows, beyond chance (one-sided p = {value:.2g}, below "
                         "α = {threshold:g}): the table copies training rows",
}


@dataclass
class GateResult:
    """The label a candidate earned, and the evidence."""

    label: str
    checks: list[Check] = field(default_factory=list)
    reason: str = ""
    kind: str = TABLE.name
    max_label: str = OPEN
    capped_from: str | None = None

    @property
    def releasable(self) -> bool:
        return self.label in RELEASE_LABELS

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "reason": self.reason, "kind": self.kind,
               "max_label": self.max_label,
               "checks": [asdict(c) | {"message": c.describe()} for c in self.checks]}
        if self.capped_from:
            out["capped_from"] = self.capped_from
        return out


def load_policy(path: str | Path = DEFAULT_POLICY) -> Policy:
    """Read and check the policy file: thresholds per release label, most open first, and
    the most open label per release kind (``policy.kinds``)."""
    path = Path(path)
    try:
        # Size-limited, no anchors/aliases: the same reader as the schema files.
        raw = read_yaml(path, "policy")
    except YAMLFileError as exc:
        raise PolicyError(str(exc)) from None
    if raw is not None and not isinstance(raw, dict):
        raise PolicyError(f"{path}: top level must be a mapping")
    labels = (raw or {}).get("labels")
    if not isinstance(labels, dict) or list(labels) != [lb for lb in RELEASE_LABELS
                                                        if lb in labels] or not labels:
        raise PolicyError(f"{path}: labels must map {' then '.join(RELEASE_LABELS)} to thresholds")
    policy: dict[str, dict[str, float | None]] = {}
    for label, thresholds in labels.items():
        if thresholds is not None and not isinstance(thresholds, dict):
            raise PolicyError(f"{path}: labels.{label}: must map thresholds to numbers")
        unknown = set(thresholds or {}) - set(THRESHOLDS)
        if unknown:
            raise PolicyError(f"{path}: labels.{label}.{sorted(unknown)[0]}: unknown threshold")
        policy[label] = {name: _threshold(path, label, name, (thresholds or {}).get(name))
                         for name in THRESHOLDS}
        if policy[label]["max_epsilon"] is None:
            # The ε ceiling is what a label promises first: no label may leave it out.
            raise PolicyError(f"{path}: labels.{label}.max_epsilon: every label needs its ε "
                              "ceiling")
    return Policy(policy, _load_kinds(path, (raw or {}).get("kinds")))


def _threshold(path: Path, label: str, name: str, value: Any) -> float | None:
    """A threshold: null (not checked) or a finite number ≥ 0 (``.inf`` or ``.nan`` would
    switch a check off without saying so)."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise PolicyError(f"{path}: labels.{label}.{name}: must be a finite number ≥ 0 "
                          "or null")
    return float(value)


def _load_kinds(path: Path, raw: Any) -> dict[str, str]:
    """``kinds: {<kind>: {max_label: open|confidential}}``; absent kinds keep the defaults."""
    if raw is None:
        return dict(DEFAULT_KIND_CAPS)
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: kinds must map {', '.join(KINDS)} to {{max_label: ...}}")
    caps = dict(DEFAULT_KIND_CAPS)
    for kind, spec in raw.items():
        if kind not in KINDS:
            raise PolicyError(f"{path}: kinds.{kind}: unknown release kind "
                              f"(expected one of {', '.join(KINDS)})")
        if not isinstance(spec, dict) or set(spec) - {"max_label"}:
            raise PolicyError(f"{path}: kinds.{kind}: expected {{max_label: "
                              f"{' | '.join(RELEASE_LABELS)}}}")
        release_kind = get_kind(kind)
        label = spec.get("max_label", release_kind.default_max_label)
        if label not in RELEASE_LABELS:
            raise PolicyError(f"{path}: kinds.{kind}.max_label: {label!r} is not one of "
                              f"{', '.join(RELEASE_LABELS)}")
        hard = release_kind.hard_max_label
        if hard is not None and more_open_than(label, hard):
            raise PolicyError(f"{path}: kinds.{kind}.max_label: a released {kind} is allowed "
                              f"at most at {hard} ({release_kind.hard_cap_reason}), not {label}")
        caps[kind] = label
    return caps


def evaluate_gate(policy: dict[str, dict[str, float | None]], privacy: PrivacyReport,
                  stats: ReleaseStats, kind: str = TABLE.name) -> GateResult:
    """Label a candidate of release ``kind`` from public facts and DP statistics only.

    ``privacy`` needs ``private`` and ``epsilon`` (public mechanism facts); ``stats`` is the
    DP release report (:mod:`pulsesynth.audit.release_stats`): its ``statistics`` hold
    ``max_attack_advantage`` (``value``, ``ci_high``) and, for kinds that release rows,
    ``exact_match_excess`` (``value``, ``p_value``; a missing figure fails its threshold).
    Because nothing else enters, the label is post-processing of DP outputs and may be
    published. The label is the most open one whose thresholds all
    pass *and* that the kind may get (``policy.kinds``; a ``model`` is capped at
    ``confidential``).
    """
    cap = kind_cap(policy, kind)
    spec = get_kind(kind)
    allowed = at_most(cap)
    if not privacy.get("private", False) or not stats.get("private", False):
        return GateResult(BLOCKED, reason="non-private (non-DP) artifact: never releasable",
                          kind=kind, max_label=cap)
    statistics = stats.get("statistics") or {}
    if "max_attack_advantage" not in statistics:
        return GateResult(BLOCKED, reason="no membership attack was run: nothing proves "
                          "privacy", kind=kind, max_label=cap)
    all_checks: list[Check] = []
    passing: list[str] = []
    for label, limits in policy.items():
        checks = _checks(label, limits, privacy, statistics, spec.releases_rows)
        all_checks += checks
        if all(c.passed for c in checks):
            passing.append(label)
    granted = [lb for lb in passing if lb in allowed]
    if granted:
        reason = f"all {granted[0]} thresholds pass"
        capped_from = passing[0] if passing[0] != granted[0] else None
        if capped_from:
            # A hard cap says why it exists; a policy cap is the policy's choice.
            why = (f": {spec.hard_cap_reason} — it can be attacked and sampled without limit"
                   if spec.hard_max_label else "")
            reason = (f"all {capped_from} thresholds pass, but a released {kind} is capped at "
                      f"{cap} (policy kinds.{kind}.max_label{why}); all {granted[0]} "
                      "thresholds pass")
        return GateResult(granted[0], all_checks, reason=reason, kind=kind, max_label=cap,
                          capped_from=capped_from)
    loosest = list(policy)[-1]
    failed = [c.describe() for c in all_checks if c.label == loosest and not c.passed]
    if not failed and passing:
        reason = (f"only {', '.join(passing)} thresholds pass, above the {kind}'s cap "
                  f"({cap})")
    else:
        reason = "; ".join(failed)
    return GateResult(BLOCKED, all_checks, reason=reason, kind=kind, max_label=cap)


def _checks(label: str, limits: dict[str, float | None], privacy: PrivacyReport,
            statistics: dict[str, Any], releases_rows: bool) -> list[Check]:
    checks = []

    def add(name: str, value: Any, subject: str | None = None) -> None:
        limit = limits.get(name)
        if limit is None:
            return
        at_least = name in AT_LEAST
        value = math.inf if value is None else float(value)  # missing: fails closed
        passed = math.isfinite(value) and (value >= limit if at_least else value <= limit)
        checks.append(Check(label, name, limit, value, passed, subject, at_least))

    add("max_epsilon", privacy.get("epsilon"))
    advantage = statistics.get("max_attack_advantage") or {}
    subject = "strongest of " + ", ".join(advantage.get("attacks") or []) + " (DP)"
    add("max_attack_advantage", advantage.get("value"), subject)
    add("max_attack_advantage_ci_high", advantage.get("ci_high"), subject)
    if releases_rows:  # kinds that release rows only
        excess = statistics.get("exact_match_excess") or {}
        add("max_exact_match_excess", excess.get("value"),
            "unique training rows reproduced, beyond unseen rows (DP)")
        add("exact_match_alpha", excess.get("p_value"),
            "p-value of 'training rows are reproduced no more often than unseen rows' (DP)")
    return checks
