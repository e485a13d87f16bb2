"""Secret per-dataset keys kept in the governance store (never in a file that travels).

The data roles of a run (train / holdout / reference) and the per-unit row cap are keyed
hashes of unit ids (:mod:`pulsesynth.splits`). Their salt is made once per dataset from OS
entropy and kept here, beside the ledger: stable across runs (a unit held out once stays
held out, so the holdout is never seen by any model) and unknown outside the trust
boundary (nobody can tell which units trained a published model).
"""

from __future__ import annotations

from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.paths import Paths
from pulsesynth.randomness import fresh_salt


def role_salt(paths: Paths, dataset: str) -> bytes:
    """The dataset's secret role salt, created on first use (race-safe)."""
    with open_db(paths) as conn, transaction(conn):
        row = conn.execute("SELECT role_salt FROM dataset_secrets WHERE dataset = ?",
                           (dataset,)).fetchone()
        if row is not None:
            return bytes(row["role_salt"])
        salt = fresh_salt()
        conn.execute("INSERT INTO dataset_secrets (dataset, role_salt, created_at) "
                     "VALUES (?, ?, ?)", (dataset, salt, now_iso()))
        log_event(conn, "pipeline", "secrets.role_salt_created", dataset, {})
    return salt
