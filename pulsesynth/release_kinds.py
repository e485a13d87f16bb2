"""The release-kind registry: every kind of release is declared here, once.

A release has a *kind* (white paper mechanisms 3, 1 and 2): a synthetic ``table``, a
DP-trained ``classifier``'s weights, or the DP generative ``model`` itself. Everything
that differs between kinds — which candidate files it needs and which one its id covers,
whether it releases rows (and so is checked for exact matches), the most open label it may
get, its card and the function that builds its release directory, the function that builds
its candidate, what the portal offers for it — is a field of its :class:`ReleaseKind`.
The gate, the release store, the cards, the CLIs and the portal look a kind up with
:func:`get_kind` (or loop over :data:`KINDS`) instead of branching on its name, so a new
kind is added by registering one more object here (in the style of Opacus' accountant
registry, a name → object mapping with one clear error for an unknown name).

Functions that live in heavier modules (the card builders, the candidate builders) are
named as ``"module:function"`` and imported on first use: the gate and the portal import
this module, and importing the governance or training code from it would make cycles.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pulsesynth.artifacts import (
    CANDIDATE_DIR,
    CLASSIFIER_CANDIDATE_DIR,
    DATACARD_JSON,
    DATACARD_MD,
    MODEL_CANDIDATE_DIR,
    MODELCARD_JSON,
    MODELCARD_MD,
    SYNTHETIC_CSV,
    SYNTHETIC_PARQUET,
    TABLE_CANDIDATE_FILES,
    WEIGHTS_CANDIDATE_FILES,
    WEIGHTS_PT,
    WEIGHTS_RELEASE_FILES,
    CandidateDir,
    RunDir,
)
from pulsesynth.errors import PulseSynthError
from pulsesynth.labels import CONFIDENTIAL, OPEN, RELEASE_LABELS, at_most


class UnknownReleaseKind(PulseSynthError, ValueError):
    """A release kind that is not registered in :data:`REGISTRY`."""


def _resolve(ref: str) -> Callable[..., Any]:
    """The callable a ``"module:function"`` reference names (imported on first use)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ReleaseKind:
    """One kind of release and everything the pipeline does differently for it."""

    #: The kind's name as stored in the release store, ``gate.json`` and ``index.json``.
    name: str
    #: Short description shown in the portal catalogue.
    text: str
    #: The files a candidate must hold, in hashing order (an approval binds to this order).
    candidate_files: tuple[str, ...]
    #: The file the kind releases; the candidate id covers its bytes.
    primary_file: str
    #: Whether the release holds rows: only such kinds get the exact-match threshold.
    releases_rows: bool
    #: Whether the release is weights (+ ``model.json``) that must be value-free and bound
    #: to the candidate's schema before registration.
    ships_weights: bool
    #: The most open label the kind gets when the policy file says nothing.
    default_max_label: str
    #: A cap no policy may lift, and why (``None``: the policy decides).
    hard_max_label: str | None
    hard_cap_reason: str
    #: The card of a published release, and its readable twin.
    card_json: str
    card_md: str
    #: ``"module:function"`` writing a release directory: ``(out, files, release,
    #: approval, version, paths) -> card``.
    card_builder_ref: str
    #: The directory of a run (:class:`~pulsesynth.artifacts.RunDir`) holding the kind's
    #: candidate.
    candidate_dir: str
    #: ``"module:function"`` building the candidate from a run directory, where one
    #: function does (a table candidate is written step by step by the pipeline).
    candidate_builder_ref: str | None
    #: Table releases predate kinds: their catalogue id is the bare dataset and their
    #: candidate id does not hash the kind, so that existing ids and approvals still hold.
    predates_kinds: bool
    #: Whether the release predicts a declared target (its card names target and classes,
    #: and leaves the target out of the features).
    predicts_target: bool
    #: Whether token holders may draw rows from it through the portal's sample route.
    samplable: bool
    #: What the portal's release page offers for download, in this order.
    downloads: tuple[str, ...]
    #: The portal template of its release page.
    portal_template: str
    #: What the fit-for-purpose verdict is about ("... is useful for predicting <target>").
    fit_subject: str

    @property
    def label_caps(self) -> tuple[str, ...]:
        """Release labels the kind may carry whatever the policy says, most open first."""
        return at_most(self.hard_max_label) if self.hard_max_label else RELEASE_LABELS

    def catalogue_id(self, dataset: str) -> str:
        """The portal id of ``dataset``'s releases of this kind."""
        return dataset if self.predates_kinds else f"{dataset}_{self.name}"

    def candidate_of(self, run: RunDir) -> CandidateDir:
        """The candidate directory of this kind in ``run``."""
        return CandidateDir(run.path / self.candidate_dir)

    def card_builder(self) -> Callable[..., Any]:
        """The function that writes a published release directory of this kind."""
        return _resolve(self.card_builder_ref)

    def candidate_builder(self) -> Callable[..., Any] | None:
        """The function that builds a candidate of this kind from a run, if one does."""
        return _resolve(self.candidate_builder_ref) if self.candidate_builder_ref else None


_MODEL_DOWNLOADS = (*WEIGHTS_RELEASE_FILES, MODELCARD_MD, MODELCARD_JSON)

TABLE = ReleaseKind(
    name="table", text="synthetic table",
    candidate_files=TABLE_CANDIDATE_FILES, primary_file=SYNTHETIC_PARQUET,
    releases_rows=True, ships_weights=False,
    default_max_label=OPEN, hard_max_label=None, hard_cap_reason="",
    card_json=DATACARD_JSON, card_md=DATACARD_MD,
    card_builder_ref="pulsesynth.governance.datacard:build_release_dir",
    candidate_dir=CANDIDATE_DIR, candidate_builder_ref=None,
    predates_kinds=True, predicts_target=False, samplable=False,
    downloads=(SYNTHETIC_CSV, SYNTHETIC_PARQUET, DATACARD_MD, DATACARD_JSON),
    portal_template="dataset.html", fit_subject="a model trained on this table",
)
CLASSIFIER = ReleaseKind(
    name="classifier", text="DP classifier",
    candidate_files=WEIGHTS_CANDIDATE_FILES, primary_file=WEIGHTS_PT,
    releases_rows=False, ships_weights=True,
    default_max_label=OPEN, hard_max_label=None, hard_cap_reason="",
    card_json=MODELCARD_JSON, card_md=MODELCARD_MD,
    card_builder_ref="pulsesynth.governance.modelcard:build_model_release_dir",
    candidate_dir=CLASSIFIER_CANDIDATE_DIR,
    candidate_builder_ref="pulsesynth.classifier.release:classifier_candidate",
    predates_kinds=False, predicts_target=True, samplable=False,
    downloads=_MODEL_DOWNLOADS, portal_template="model.html",
    fit_subject="this classifier",
)
# Seed 004: a released generative model is sensitive (it can be attacked and sampled
# without limit), and seed 000 ranks it below synthetic data in privacy — hence the cap.
MODEL = ReleaseKind(
    name="model", text="DP generative model",
    candidate_files=WEIGHTS_CANDIDATE_FILES, primary_file=WEIGHTS_PT,
    releases_rows=False, ships_weights=True,
    default_max_label=CONFIDENTIAL, hard_max_label=CONFIDENTIAL,
    hard_cap_reason="a generative model is sensitive",
    card_json=MODELCARD_JSON, card_md=MODELCARD_MD,
    card_builder_ref="pulsesynth.governance.modelcard:build_model_release_dir",
    candidate_dir=MODEL_CANDIDATE_DIR,
    candidate_builder_ref="pulsesynth.pipeline:model_candidate",
    predates_kinds=False, predicts_target=False, samplable=True,
    downloads=_MODEL_DOWNLOADS, portal_template="model.html",
    fit_subject="a model trained on rows sampled from this model",
)

#: Every registered kind by name, in the order they are listed to people.
REGISTRY: dict[str, ReleaseKind] = {k.name: k for k in (TABLE, CLASSIFIER, MODEL)}
#: The registered kind names (CLI choices, error messages, policy validation).
KINDS: tuple[str, ...] = tuple(REGISTRY)


def get_kind(name: str) -> ReleaseKind:
    """The registered kind called ``name``; :class:`UnknownReleaseKind` otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownReleaseKind(f"unknown release kind {name!r} (expected one of "
                                 f"{', '.join(KINDS)})") from None


def kinds() -> Iterator[ReleaseKind]:
    """Every registered kind, in registry order."""
    return iter(REGISTRY.values())
