"""Non-private baselines that the audit must catch (seed 000 §6.5).

Feature shuffling: for each column independently, a random ``fraction`` of the rows swap
their values among themselves. At 20% most rows keep most of their values — a thin
disguise over real records, which exact-match, DCR and surrogate attacks should expose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pulsesynth.schema import DatasetSchema


def shuffle_features(frame: pd.DataFrame, schema: DatasetSchema, fraction: float,
                     seed: int = 0) -> pd.DataFrame:
    """A copy of the synthesized columns with ``fraction`` of each column's values shuffled."""
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within [0, 1]")
    rng = np.random.default_rng(seed)
    names = [c.name for c in schema.released_columns]
    out = frame[names].reset_index(drop=True).copy()
    n = len(out)
    k = int(round(fraction * n))
    for name in names:
        rows = rng.choice(n, k, replace=False)
        values = out[name].to_numpy(copy=True)
        values[rows] = values[rng.permutation(rows)]
        out[name] = pd.Series(values, dtype=out[name].dtype)
    return out


def shuffle_release(schema: DatasetSchema, fraction: float):
    """The shuffling baseline as a release mechanism ``(members, seed) -> table``."""

    def release(members: pd.DataFrame, seed: int) -> pd.DataFrame:
        return shuffle_features(members, schema, fraction, seed)

    return release
