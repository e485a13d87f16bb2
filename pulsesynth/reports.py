"""The reports a run writes, typed: ``privacy.json``, ``utility.json``, ``audit.json`` and
``release_stats.json`` (the gate's decision is :class:`pulsesynth.gate.GateResult`).

They are ``TypedDict``\\ s, not classes, on purpose: the files are JSON that people, the
governance layer and the portal read as mappings, and a published card copies fields of
them byte for byte, so the in-memory form stays the plain dict that is written. The types
make every key a builder writes or a reader asks for a checked name (mypy refuses a key
that is not declared here), which is what a change of these files needs. Every key is
optional (``total=False``): kinds and non-private runs leave some out.

Privacy class of each field: see :mod:`pulsesynth.governance.publishable` (what may leave);
``audit.json`` holds exact attack figures on the private rows and is the steward's only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class GroupPrivacyBlock(TypedDict, total=False):
    """What :func:`group_privacy_block` returns: the block, or nothing."""

    group_privacy: dict[str, Any] | None


def group_privacy_block(source: Mapping[str, Any]) -> GroupPrivacyBlock:
    """``{"group_privacy": ...}`` copied from ``source`` where a privacy unit keeps k > 1
    rows (:meth:`pulsesynth.dp.GroupPrivacy.report` writes it only then), else ``{}``: the
    one rule for every card, report and model file that carries it (public: mechanism
    parameters), so that reports for k = 1 stay byte for byte as they were."""
    block = source.get("group_privacy")
    return GroupPrivacyBlock(group_privacy=block) if block else GroupPrivacyBlock()


class PrivacyReport(TypedDict, total=False):
    """``privacy.json``: the guarantee and the mechanism's public parameters."""

    kind: str
    fitted: bool
    private: bool
    dataset_id: str
    schema_hash: str
    mechanism: str
    adjacency: str
    privacy_unit: list[str]
    max_rows_per_unit: int | None
    unit_rule: str | None
    #: Where a unit keeps k > 1 rows: the row-level target every mechanism ran at (public).
    group_privacy: dict[str, Any] | None
    randomness: str
    code_version: str
    model_hash: str
    epsilon: float | None
    target_epsilon: float | None
    delta: float | None
    budget: dict[str, Any]
    accountant: str | None
    noise_multiplier: float | None
    sample_rate: float | None
    steps: int | None
    expected_batch_size: int | None
    epochs: int | None
    max_grad_norm: float | None
    marginals: dict[str, Any] | None
    dp_marginals: dict[str, Any] | None
    rows_dp: int | None
    charge_id: int | None
    collapse_warning: bool


class UtilityReport(TypedDict, total=False):
    """``utility.json``: how useful the release is (TSTR against TRTR for a table or a
    model, accuracy on unseen real rows for a classifier)."""

    kind: str
    target: str | None
    classes: list[Any] | None
    seed: int
    classifiers: list[str]
    majority_accuracy: float | None
    trtr: dict[str, Any] | None
    tstr: dict[str, Any] | None
    tsts: dict[str, Any] | None
    sra: float | None
    pmse: float | None
    pmse_ratio: float | None
    column_shapes: dict[str, Any]
    pair_trends: dict[str, Any]
    test: dict[str, Any]
    reading: str


class AuditReport(TypedDict, total=False):
    """``audit.json``: exact attack figures on the private rows (the steward's only)."""

    kind: str
    dataset: str
    membership_attacks: dict[str, Any]
    vulnerable_targets: dict[str, Any]
    verdict: dict[str, Any]
    distances: dict[str, Any]
    attribute_inference: list[Any]
    singling_out: dict[str, Any]
    rows: dict[str, Any]
    seed: int | None
    timings_s: dict[str, float]
    attack_costs: dict[str, Any]
    shadow_training: dict[str, Any]
    reference: str
    caveat: str | None


class ReleaseStats(TypedDict, total=False):
    """``release_stats.json``: the DP release report the gate decides on (noisy figures,
    each with the ε that paid for it)."""

    mechanism: str
    epsilon: float
    shares: dict[str, float]
    rows_dp: dict[str, int]
    max_rows_per_unit: int
    confidence: float
    statistics: dict[str, Any]
    private: bool
    dataset_id: str
    classifier: str | None
    charge_id: int | None


def three_decimals(value: Any) -> str:
    """A report's figure for reading: three decimals (0.9996 reads 1.000, not 1), or "—"
    where there is none. The one format of the steward's ``releases show`` and the nightly
    run summary."""
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"
