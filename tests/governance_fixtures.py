"""Fake candidates for governance and portal tests: small tables of our own making.

``plant_real_table`` writes a stand-in *real* table (with a canary value) into the test
root's warehouse; ``make_candidate`` writes a candidate directory that says it came from
that table's snapshot, with a synthetic table drawn only from the declared domains (so the
canary can appear in it only if something leaks real rows) and a stray sensitive file
that publication must never copy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pulsesynth.audit.release_stats import excess_p_value
from pulsesynth.paths import Paths

CANARY = "CANARY-7f3c-real-row-do-not-publish"
CANARY_NUMBER = 8675309.125
COMPANIES = ["Flash Cab", "City Service", "Sun Taxi", "other"]
SCHEMA: dict[str, Any] = {
    "id": "taxi_trips",
    "title": "Taxi trips",
    "description": "Fake taxi trips for governance tests.",
    "classification": "confidential",
    "steward": "transport-data-office",
    "target": "tip",
    "columns": [
        {"name": "rownames", "type": "integer", "role": "identifier", "bounds": [1, 10**7]},
        {"name": "tip", "type": "categorical", "role": "target", "categories": ["no", "yes"]},
        {"name": "distance", "type": "float", "role": "quasi_identifier", "bounds": [0, 100],
         "bins": [0, 1, 2, 5, 10, 20, 50, 100]},
        {"name": "company", "type": "categorical", "role": "other", "categories": COMPANIES},
        {"name": "hour", "type": "integer", "role": "quasi_identifier", "bounds": [0, 23],
         "bins": [0, 6, 12, 18, 23]},
    ],
}


def dp_marginals(dataset: str = "taxi_trips", seed: int = 0) -> dict[str, Any]:
    """DP marginals as a model stores them (:meth:`NoisyMarginals.to_dict`): here the
    (column, target) tables of another synthetic draw, standing in for the Gaussian
    mechanism's estimate of the real table."""
    from pulsesynth.quality import _encoder
    from pulsesynth.synth.marginals import MarginalPlan, NoisyMarginals

    encoder = _encoder(schema_for(dataset))
    widths = [b.width for b in encoder.block_specs]
    plan = MarginalPlan.for_columns(encoder.column_names, widths, "tip")
    levels = encoder.levels(synthetic_table(400, seed + 1000))
    probs = []
    for group in plan.groups:
        _, cell = plan.cell_index(levels, group)
        counts = np.bincount(cell, minlength=plan.cells(group)).astype(np.float64) + 1.0
        probs.append(counts / counts.sum())
    return NoisyMarginals(plan, 1.1, tuple(probs)).to_dict()


def schema_for(dataset: str) -> dict[str, Any]:
    return SCHEMA | {"id": dataset, "title": dataset.replace("_", " ").capitalize()}


def plant_real_table(paths: Paths, dataset: str = "taxi_trips", rows: int = 200) -> str:
    """Write a fake real table holding the canary; returns its snapshot id (file SHA-256)."""
    rng = np.random.default_rng(123)
    frame = pd.DataFrame({
        "rownames": np.arange(1, rows + 1),
        "tip": rng.choice(["no", "yes"], rows),
        "distance": rng.uniform(0, 30, rows).round(2),
        "company": rng.choice(COMPANIES, rows).astype(object),
        "hour": rng.integers(0, 24, rows),
    })
    frame.loc[7, "company"] = CANARY
    frame.loc[7, "distance"] = CANARY_NUMBER
    path = paths.tables / f"{dataset}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def synthetic_table(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """A synthetic-looking table drawn from the declared domains only."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "tip": rng.choice(["no", "yes"], rows, p=[0.3, 0.7]),
        "distance": rng.gamma(2.0, 2.5, rows).clip(0, 100).round(3),
        "company": rng.choice(COMPANIES, rows),
        "hour": rng.integers(0, 24, rows),
    })


def ledger_charge(paths: Paths, dataset: str, run_id: str, epsilon: float) -> int:
    """A real ledger charge backing a fake candidate (idempotent per run id)."""
    from pulsesynth.governance.ledger import Ledger

    return Ledger(paths).charge(dataset, run_id=run_id, snapshot_id="0" * 64, epsilon=epsilon,
                                delta=1e-6, accountant="prv",
                                idempotency_key=f"test:{dataset}:{run_id}:{epsilon}",
                                lifetime_epsilon=1000.0).id


def release_stats(charge_id: int | None, advantage: float = 0.01, private: bool = True,
                  excess: float = 0.0) -> dict[str, Any]:
    """A DP release report shaped like :func:`pulsesynth.audit.release_stats.release_report`."""

    def stat(value: float, width: float = 0.03) -> dict[str, float]:
        return {"value": value, "ci_low": value - width, "ci_high": value + width,
                "sensitivity": 0.005, "epsilon": 0.036, "laplace_scale": 0.14}

    return {"mechanism": "Laplace", "epsilon": 0.12, "private": private,
            "rows_dp": {"train": 120, "holdout": 40}, "max_rows_per_unit": 1,
            "confidence": 0.95, "charge_id": charge_id, "classifier": "hist_gb",
            "statistics": {
                "max_attack_advantage": stat(advantage) | {
                    "attacks": ["distance_mia", "model_mia", "synthetic_mia"]},
                "exact_match_excess": stat(excess) | {
                    "sampling_sd": 0.04, "p_value": excess_p_value(excess, 0.04, 0.14)},
                "tstr_accuracy": stat(0.71), "majority_accuracy": stat(0.62)}}


def make_candidate(paths: Paths, dataset: str = "taxi_trips", run_id: str = "run1", *,
                   label: str = "open", private: bool = True, seed: int = 0,
                   epsilon: float = 1.0, snapshot_id: str | None = None,
                   rows: int = 120) -> Path:
    """Write a complete candidate directory under ``state/candidates/<dataset>/<run_id>/``."""
    out = paths.state / "candidates" / dataset / run_id
    out.mkdir(parents=True, exist_ok=True)
    synthetic_table(rows, seed).to_parquet(out / "synthetic.parquet", index=False)
    attack = {"accuracy": 0.5 + seed * 0.001, "ci_low": 0.47, "ci_high": 0.53,
              "advantage": 0.01, "auc": 0.5}
    audit = {"attacks": {"model_mia": attack, "synthetic_mia": dict(attack, accuracy=0.51)},
             "dcr_share": 0.51, "exact_matches": 0, "exact_matches_unique": 0,
             "median_gower": 0.12, "gower_reference": 0.11}
    (out / "audit.json").write_text(json.dumps(audit, indent=2))
    passed = label != "blocked"
    gate = {"label": label, "reason": "all thresholds pass" if passed
            else "open: epsilon = 9 (limit 1) FAILS by 8",
            "checks": [{"label": "open", "name": "max_epsilon", "threshold": 1.0,
                        "value": epsilon, "passed": passed}]}
    (out / "gate.json").write_text(json.dumps(gate, indent=2))
    charge_id = ledger_charge(paths, dataset, run_id, epsilon) if private else None
    privacy = {"epsilon": epsilon, "delta": 1e-6, "accountant": "prv", "private": private,
               "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500,
               "max_grad_norm": 1.0, "schema_hash": "1" * 64, "model_hash": "2" * 64,
               "code_version": "0.1.0-test", "randomness": "secret", "charge_id": charge_id,
               "rows_dp": rows, "dp_marginals": dp_marginals(dataset, seed)}
    (out / "privacy.json").write_text(json.dumps(privacy, indent=2))
    (out / "release_stats.json").write_text(json.dumps(
        release_stats(charge_id, private=private), indent=2))
    utility = {"tstr": {"hist_gb": {"accuracy": 0.71, "auc": 0.66}},
               "trtr": {"hist_gb": {"accuracy": 0.74, "auc": 0.70}},
               "majority_accuracy": 0.62,
               "column_shapes": {"mean": 0.93, "columns": {"tip": 0.97, "distance": 0.9}}}
    (out / "utility.json").write_text(json.dumps(utility, indent=2))
    (out / "schema.yaml").write_text(yaml.safe_dump(schema_for(dataset), sort_keys=False))
    # Sensitive working file a careless publisher might copy: real rows with the canary.
    (out / "audit_members.json").write_text(json.dumps({"member": CANARY,
                                                        "distance": CANARY_NUMBER}))
    return out
