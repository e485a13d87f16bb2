"""Anonymeter-style risks detect copied data and stay near zero for independent data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pulsesynth.audit.attacks.anonymeter import attribute_inference, singling_out
from pulsesynth.schema import parse_schema

LEVELS = [f"l{i}" for i in range(10)]
SCHEMA = parse_schema({
    "id": "people", "title": "People", "classification": "secret", "steward": "s",
    "target": "outcome", "row_key": "rid", "min_rows": 2,
    "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
    "columns": [
        {"name": "rid", "type": "integer", "role": "identifier", "bounds": [0, 10**6]},
        *[{"name": f"q{i}", "type": "categorical", "role": "quasi_identifier",
           "categories": LEVELS} for i in range(4)],
        {"name": "salary", "type": "float", "role": "sensitive", "bounds": [0, 100],
         "bins": list(range(0, 101, 10))},
        {"name": "outcome", "type": "categorical", "role": "target", "categories": ["a", "b"]},
    ],
})


def people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"q{i}": rng.choice(LEVELS, n) for i in range(4)})
    frame.insert(0, "rid", np.arange(n))
    frame["salary"] = rng.uniform(0, 100, n)
    frame["outcome"] = rng.choice(["a", "b"], n)
    return frame


def test_attribute_inference_detects_a_copy_of_the_training_data() -> None:
    train, holdout = people(600, 1), people(600, 2)
    leaked = attribute_inference(SCHEMA, train, holdout, train.copy(), n_attacks=300)
    by_column = {r.column: r for r in leaked}
    assert by_column["salary"].risk > 0.5 and by_column["salary"].risk_ci_low > 0.3
    assert by_column["outcome"].risk > 0.5


def test_attribute_inference_risk_is_near_zero_for_independent_data() -> None:
    train, holdout = people(600, 1), people(600, 2)
    for result in attribute_inference(SCHEMA, train, holdout, people(600, 3), n_attacks=300):
        assert result.risk < 0.15, result


def test_singling_out_detects_copies_not_independent_rows() -> None:
    train, holdout = people(500, 4), people(500, 5)
    copied = singling_out(SCHEMA, train, holdout, train.copy(), n_attacks=400)
    fresh = singling_out(SCHEMA, train, holdout, people(500, 6), n_attacks=400)
    assert copied.risk > 0.25 and copied.risk_ci_low > 0.1
    assert fresh.risk < 0.1
