"""Which records an audit attacks: random members, and the records most at risk.

Average-case figures hide the few people an attack can single out (Meeus et al. 2023,
"Achilles' heels"): outliers are memorised first. Vulnerability here is a record's mean
Gower distance to its ``k`` nearest neighbours among all candidate records (members and
non-members together, itself excluded). The same rule picks the most isolated members and
the most isolated non-members, so the two vulnerable sets are comparable and an attack on
them still starts from 50%.

Which rows are vulnerable is a fact about real records: the sets and their scores stay in
the steward's audit, never in a published file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pulsesynth.audit.distances import EncodedRows, GowerSpace, mean_knn_distance
from pulsesynth.schema import DatasetSchema

#: Neighbours the vulnerability score averages over (Meeus et al. use 5).
NEIGHBOURS = 5
#: Share of each side called vulnerable, and the smallest number of records per side.
VULNERABLE_SHARE = 0.05
MIN_VULNERABLE = 50
#: Records per side considered (a seeded sample beyond it): the k-NN search is quadratic,
#: and on census_income's 29k + 10k rows it alone took 44 s of a 190 s audit.
MAX_CANDIDATES = 5000


@dataclass(frozen=True)
class Targets:
    """Members and non-members an attack is scored on, and how they were chosen."""

    kind: str
    members: pd.DataFrame
    non_members: pd.DataFrame


def vulnerability(schema: DatasetSchema, rows: pd.DataFrame, population: pd.DataFrame,
                  k: int = NEIGHBOURS) -> np.ndarray:
    """Each row's mean Gower distance to its ``k`` nearest rows of ``population`` (which
    contains the rows themselves: the nearest, itself, is skipped)."""
    space = GowerSpace(schema)
    encoded: EncodedRows = space.encode(rows)
    return mean_knn_distance(encoded, space.encode(population), k, skip_first=True)


def vulnerable_targets(schema: DatasetSchema, members: pd.DataFrame,
                       non_members: pd.DataFrame, share: float = VULNERABLE_SHARE,
                       minimum: int = MIN_VULNERABLE, k: int = NEIGHBOURS,
                       max_candidates: int = MAX_CANDIDATES, seed: int = 0) -> Targets:
    """The most isolated ``share`` of members and of non-members (at least ``minimum``
    each, at most all of the smaller side), by :func:`vulnerability` over both sets.

    Sides larger than ``max_candidates`` are first cut to a seeded random sample of that
    size (both sides alike, so the two vulnerable sets stay comparable)."""
    rng = np.random.default_rng(seed)

    def sample(side: pd.DataFrame) -> pd.DataFrame:
        if len(side) <= max_candidates:
            return side
        return side.iloc[np.sort(rng.choice(len(side), max_candidates, replace=False))]

    members, non_members = sample(members), sample(non_members)
    population = pd.concat([members, non_members], ignore_index=True)
    count = min(len(members), len(non_members),
                max(minimum, int(round(share * min(len(members), len(non_members))))))
    picked = []
    for side in (members, non_members):
        score = vulnerability(schema, side, population, k)
        # Most isolated first; ties broken by position so the choice is deterministic.
        order = np.lexsort((np.arange(len(side)), -score))[:count]
        picked.append(side.iloc[np.sort(order)])
    return Targets("vulnerable", picked[0], picked[1])


def random_targets(members: pd.DataFrame, non_members: pd.DataFrame) -> Targets:
    """Every member and non-member (each attack draws its balanced sample)."""
    return Targets("random", members, non_members)
