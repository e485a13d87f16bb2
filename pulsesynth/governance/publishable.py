"""What may leave the trust boundary: every published field, with its class.

Every field of a published card, ``index.json`` and the portal's JSON API is one of:

- ``public`` — the declared schema, the mechanism's parameters, ε and δ, the code version,
  the release's own bookkeeping (ids, version, label, approval, files);
- ``dp`` — the synthetic rows and anything computed from them alone (plots, the weights
  of a DP model, hashes of those files), or a statistic of the real rows released through
  a DP mechanism with a stated sensitivity and charged to the ledger (the DP row count,
  the release report: :mod:`pulsesynth.audit.release_stats`).

Anything else computed on real rows — exact attack scores, distances, exact-match counts,
TRTR, real marginals, the exact row count, the private snapshot's hash — is *private*
and stays in ``state/`` for the steward. :data:`PUBLISHABLE` is the one declared list;
:func:`unlisted_fields` finds any field of a published document that is not on it (a
test runs it over every published file and API response).
"""

from __future__ import annotations

import fnmatch
from typing import Any

#: Field path (dots; ``*`` one key or list position) → class. Lists of records use ``*``.
PUBLISHABLE: dict[str, str] = {
    # release bookkeeping
    "id": "public", "dataset": "public", "kind": "public", "kind_text": "public",
    "title": "public", "description": "public", "version": "public",
    "candidate_id": "dp", "label": "public", "label_text": "public",
    "terms.*": "public", "caveat": "public", "suitable_for.*": "dp",
    "not_suitable_for.*": "dp", "plots.*": "dp", "columns.*": "public",
    "fit_for_purpose.target": "public", "fit_for_purpose.verdict": "dp",
    "fit_for_purpose.suitable": "dp", "fit_for_purpose.suitable.*": "dp",
    "fit_for_purpose.not_suitable": "dp", "fit_for_purpose.not_suitable.*": "dp",
    "rows": "dp",
    # the DP mechanism
    "privacy.epsilon": "public", "privacy.delta": "public", "privacy.ln2": "public",
    "privacy.epsilon_vs_ln2": "public", "privacy.accountant": "public",
    "privacy.mechanism": "public", "privacy.noise_multiplier": "public",
    "privacy.sample_rate": "public", "privacy.steps": "public",
    "privacy.expected_batch_size": "public", "privacy.epochs": "public",
    "privacy.max_grad_norm": "public", "privacy.private": "public",
    "privacy.post_processing": "public", "privacy.adjacency": "public",
    "privacy.privacy_unit.*": "public", "privacy.max_rows_per_unit": "public",
    "privacy.unit_rule": "public", "privacy.randomness": "public",
    "privacy.group_privacy": "public", "privacy.group_privacy.*": "public",
    "privacy.budget": "public", "privacy.budget.*": "public", "privacy.budget.*.*": "public",
    "privacy.privacy_unit": "public", "privacy.rows_dp": "dp",
    # which columns are paired with the target is chosen from DP scores (post-processing);
    # how many tables (one per non-target column) is a function of the schema
    "privacy.marginals.columns.*.*": "dp", "privacy.marginals.count": "public",
    "privacy.marginals_text": "dp",
    "privacy.marginals.selection.share": "public", "privacy.marginals.selection.*": "dp",
    "privacy.marginals.selection.*.*": "dp",
    # whether any column's values were placed by its sub-bin shares is decided from the
    # noisy sub-bin counts (post-processing)
    "privacy.marginals.sub_bins": "dp",
    "privacy.marginals": "public", "privacy.marginals.*": "public",
    "privacy.marginals.*.*": "public", "privacy.marginals.*.*.*": "public",
    # the DP release report
    "release_statistics.mechanism": "public", "release_statistics.epsilon": "public",
    "release_statistics.confidence": "public", "release_statistics.rows_dp.*": "dp",
    "release_statistics.reading": "public",
    "release_statistics.statistics.*.value": "dp",
    "release_statistics.statistics.*.ci_low": "dp",
    "release_statistics.statistics.*.ci_high": "dp",
    "release_statistics.statistics.*.sensitivity": "dp",
    "release_statistics.statistics.*.epsilon": "public",
    "release_statistics.statistics.*.laplace_scale": "dp",
    "release_statistics.statistics.*.attacks.*": "public",
    "release_statistics.statistics.*.text": "public",
    "release_statistics.statistics.*.sampling_sd": "dp",
    "release_statistics.statistics.*.p_value": "dp",
    "release_statistics.statistics.*.question": "public",
    "release_statistics.statistics.*.answer": "dp",
    # the quality report: synthetic rows against the model's DP marginals (post-processing)
    "quality.*": "dp", "quality.*.*": "dp", "quality.*.*.*": "dp", "quality.*.*.*.*": "dp",
    # the gate (post-processing of public and DP figures)
    "gate.label": "public", "gate.reason": "dp", "gate.max_label": "public",
    "gate.capped_from": "public", "gate.checks.*.*": "dp",
    # the model (mechanisms 1 and 2)
    "model.*": "public", "model.*.*": "public", "model.*.*.*": "public", "usage.*": "public",
    "usage.*.*": "public",
    # the declared schema
    "schema.refresh_days": "public",  # the declared refresh policy (update frequency)
    "schema.*": "public", "schema.source.*": "public", "schema.columns.*.*": "public",
    "schema.columns.*.categories.*": "public", "schema.columns.*.bounds.*": "public",
    # provenance and approval
    "provenance.dataset": "public", "provenance.schema_hash": "public",
    "provenance.model_id": "dp", "provenance.model_hash": "dp",
    "provenance.code_version": "public",
    "approval.steward": "public", "approval.role": "public", "approval.approved_at": "public",
    "approval.note": "public",
    "files.*.*": "dp",
    # index.json entries and the catalogue
    "identifier": "public", "type": "public", "status": "public", "epsilon": "public",
    "delta": "public", "issued": "public", "path": "public",
    "@context": "public", "modified": "public", "dataset.*.id": "public",
    "dataset.*.dataset": "public", "dataset.*.kind": "public",
    "dataset.*.identifier": "public", "dataset.*.type": "public", "dataset.*.title": "public",
    "dataset.*.description": "public", "dataset.*.label": "public",
    "dataset.*.label_text": "public", "dataset.*.version": "public",
    "dataset.*.status": "public", "dataset.*.epsilon": "public", "dataset.*.delta": "public",
    "dataset.*.issued": "public", "dataset.*.candidate_id": "dp", "dataset.*.path": "public",
    "dataset.*.files.*.*": "dp",
}


def _paths(doc: Any, prefix: str = "") -> list[str]:
    if isinstance(doc, dict):
        if not doc:
            return [prefix] if prefix else []
        out = []
        for key, value in doc.items():
            out += _paths(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(doc, list):
        out = []
        for i, value in enumerate(doc):
            out += _paths(value, f"{prefix}.{i}")
        return out or [prefix]
    return [prefix]


def _matches(path: str, pattern: str) -> bool:
    parts, pats = path.split("."), pattern.split(".")
    return len(parts) == len(pats) and all(
        fnmatch.fnmatchcase(p, q) if q != "*" else True for p, q in zip(parts, pats,
                                                                       strict=True))


def field_class(path: str) -> str | None:
    """The declared class of a field path, or None when it is not declared publishable."""
    for pattern, cls in PUBLISHABLE.items():
        if _matches(path, pattern):
            return cls
    return None


def unlisted_fields(doc: Any) -> list[str]:
    """Every leaf path of ``doc`` that :data:`PUBLISHABLE` does not declare."""
    return sorted({p for p in _paths(doc) if field_class(p) is None})


def unlisted_api_fields(detail: dict[str, Any]) -> list[str]:
    """:func:`unlisted_fields` for a portal API answer: its index entries (the list, or a
    detail's own entry and ``versions``) and a detail's ``datacard``."""
    if isinstance(detail, list):
        return unlisted_fields({"dataset": detail})
    entries = [{k: v for k, v in detail.items() if k not in ("datacard", "versions")},
               *detail.get("versions", [])]
    return sorted(set(unlisted_fields({"dataset": entries}))
                  | set(unlisted_fields(detail.get("datacard") or {})))
