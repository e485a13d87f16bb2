"""A fit-for-purpose verdict per release, measured from its DP release report.

A card must not say "suitable for training models" when a model trained on the release
does no better than guessing. The verdict compares the DP TSTR accuracy (a classifier
trained on the released table, or the released classifier itself, scored on unseen real
rows) with the DP majority baseline (always guessing the most common class), using the
report's 95% intervals. It reads DP figures only, so it is post-processing and may be
published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pulsesynth.release_kinds import TABLE, get_kind

USEFUL = "useful"
NOT_USEFUL = "not useful"
UNCLEAR = "unclear"


def verdict(stats: Mapping[str, Any], target: str | None,
            kind: str = TABLE.name) -> dict[str, Any]:
    """``{"target", "verdict", "suitable", "not_suitable"}`` for predicting ``target``.

    Useful when the accuracy beats the baseline by more than the 95% half-width of their
    difference; not useful when its interval does not reach the baseline's value; unclear
    in between (the noise and the holdout size cannot tell).
    """
    figures = stats.get("statistics") or {}
    tstr, majority = figures.get("tstr_accuracy"), figures.get("majority_accuracy")
    if not target or not tstr or not majority:
        return {"target": target, "verdict": None, "suitable": [], "not_suitable": []}
    what = get_kind(kind).fit_subject
    numbers = (f"accuracy {tstr['value']:.2f} on unseen real rows against "
               f"{majority['value']:.2f} by always guessing the most common class "
               "(differentially private figures)")
    # The two figures carry independent noise: the difference's 95% half-width is about
    # the root of the sum of squares of theirs (summing them would be needlessly strict).
    spread = math.hypot(max(tstr["value"] - tstr["ci_low"], tstr["ci_high"] - tstr["value"]),
                        max(majority["value"] - majority["ci_low"],
                            majority["ci_high"] - majority["value"]))
    if tstr["value"] - majority["value"] > spread:
        return {"target": target, "verdict": USEFUL,
                "suitable": [f"predicting `{target}`: {what} beats guessing ({numbers})"],
                "not_suitable": []}
    if tstr["ci_high"] <= majority["value"]:
        return {"target": target, "verdict": NOT_USEFUL, "suitable": [],
                "not_suitable": [f"predicting `{target}`: {what} does no better than "
                                 f"guessing ({numbers})"]}
    return {"target": target, "verdict": UNCLEAR, "suitable": [],
            "not_suitable": [f"predicting `{target}` with confidence: {what} is not clearly "
                             f"better than guessing ({numbers})"]}
