"""The one owner of release label names and their order.

Labels follow Dubai's data classification as it applies to synthetic releases: ``open``
(everyone) or ``confidential`` (Shared data, government entities holding a token);
anything that passes neither is ``blocked``. Every module that names a label or compares
two labels (the gate, the release store, the cards, the portal, the release-kind registry)
takes them from here, so a new label is added in one place.
"""

from __future__ import annotations

OPEN = "open"
CONFIDENTIAL = "confidential"
#: The label of a candidate that may not be released at all.
BLOCKED = "blocked"
#: Releasable labels, most open first (the policy file lists its thresholds in this order).
RELEASE_LABELS = (OPEN, CONFIDENTIAL)
#: Dataset classifications that no release may carry: a source can be this sensitive, a
#: synthetic release never is (the gate labels it at most ``confidential``, else blocks it).
SENSITIVE = "sensitive"
SECRET = "secret"
#: Every classification a source dataset's schema may declare, most open first: the
#: release labels, then the levels above them. Its order is the one schema errors list.
DATASET_CLASSIFICATIONS = (*RELEASE_LABELS, SENSITIVE, SECRET)


def more_open_than(label: str, other: str) -> bool:
    """Whether release label ``label`` is strictly more open than release label ``other``."""
    return RELEASE_LABELS.index(label) < RELEASE_LABELS.index(other)


def at_most(cap: str) -> tuple[str, ...]:
    """The release labels no more open than ``cap``, most open first."""
    return RELEASE_LABELS[RELEASE_LABELS.index(cap):]
