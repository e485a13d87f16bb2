"""Governance errors: each message names the dataset, release or entity a steward acts on."""

from __future__ import annotations

from pulsesynth.errors import PulseSynthError


class GovernanceError(PulseSynthError):
    """Base class of governance failures (ledger, releases, tokens, publication)."""


class BudgetChanged(GovernanceError):
    """A declared privacy block differs from the one the steward governs for a dataset."""


class BudgetExceeded(GovernanceError):
    """A charge would take a dataset past its lifetime privacy budget."""

    def __init__(self, dataset: str, spent: float, requested: float, lifetime: float) -> None:
        self.dataset = dataset
        self.spent = spent
        self.requested = requested
        self.lifetime = lifetime
        self.remaining = max(0.0, lifetime - spent)
        super().__init__(
            f"{dataset}: privacy budget exhausted: spent ε={spent:g} of lifetime ε={lifetime:g}, "
            f"requested ε={requested:g}, remaining ε={self.remaining:g}; training refused"
        )


class LedgerError(GovernanceError):
    """A ledger request is malformed (e.g. an idempotency key reused with other values)."""


class ReleaseNotFound(GovernanceError):
    """No release has this candidate id (or the prefix is ambiguous)."""


class ReleaseStateError(GovernanceError):
    """The requested decision is not allowed from the release's current status."""


class CandidateError(GovernanceError):
    """A candidate directory is missing files or holds malformed metadata."""


class TamperedCandidate(GovernanceError):
    """A candidate's files changed after approval: the approval no longer counts."""


class PublishError(GovernanceError):
    """Publication could not complete; the previously published state is unchanged."""


class TokenError(GovernanceError):
    """An access-token request names no known token or entity."""
