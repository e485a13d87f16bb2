"""Release governance: privacy ledger, candidates and steward decisions, publication, tokens.

State lives in ``warehouse/governance.db`` (SQLite, WAL; see :mod:`.db`). Published files
live under ``published/`` and are the only thing the portal serves.
"""

from pulsesynth.governance.errors import (
    BudgetExceeded,
    CandidateError,
    GovernanceError,
    LedgerError,
    PublishError,
    ReleaseNotFound,
    ReleaseStateError,
    TamperedCandidate,
    TokenError,
)
from pulsesynth.governance.ledger import Charge, Ledger, RetrainDecision, Spent
from pulsesynth.governance.releases import (
    KINDS,
    Release,
    approve,
    catalogue_id,
    get_release,
    list_releases,
    publish_approved,
    register_candidate,
    reject,
    withdraw,
)
from pulsesynth.governance.tokens import create_token, list_tokens, revoke_tokens, verify_token

__all__ = [
    "KINDS", "BudgetExceeded", "CandidateError", "Charge", "GovernanceError", "Ledger",
    "LedgerError", "catalogue_id",
    "PublishError", "Release", "ReleaseNotFound", "ReleaseStateError", "RetrainDecision",
    "Spent", "TamperedCandidate", "TokenError", "approve", "create_token", "get_release",
    "list_releases", "list_tokens", "publish_approved", "register_candidate", "reject",
    "revoke_tokens", "verify_token", "withdraw",
]
