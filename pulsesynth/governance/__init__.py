"""Release governance: privacy ledger, candidates and steward decisions, publication, tokens.

Releases are split by concept: :mod:`.candidate` (candidate format, ids, registration),
:mod:`.record` (the release row, lookup, listing), :mod:`.lifecycle` (the status machine and
steward decisions), :mod:`.publisher` (atomic publication) and :mod:`.catalogue`
(``published/index.json``).

State lives in ``warehouse/governance.db`` (SQLite, WAL; see :mod:`.db`). Published files
live under ``published/`` and are the only thing the portal serves.
"""

from pulsesynth.governance.candidate import register_candidate
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
from pulsesynth.governance.lifecycle import approve, reject, withdraw
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.record import Release, catalogue_id, get_release, list_releases
from pulsesynth.governance.tokens import create_token, list_tokens, revoke_tokens, verify_token
from pulsesynth.release_kinds import KINDS

__all__ = [
    "KINDS", "BudgetExceeded", "CandidateError", "Charge", "GovernanceError", "Ledger",
    "LedgerError", "catalogue_id",
    "PublishError", "Release", "ReleaseNotFound", "ReleaseStateError", "RetrainDecision",
    "Spent", "TamperedCandidate", "TokenError", "approve", "create_token", "get_release",
    "list_releases", "list_tokens", "publish_approved", "register_candidate", "reject",
    "revoke_tokens", "verify_token", "withdraw",
]
