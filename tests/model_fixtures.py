"""Classifier and model release candidates for governance and portal tests.

``tiny_model`` trains a real (small, fast) DP-VAE on a table of our own making under a
taxi-like declared schema; ``make_model_candidate`` writes a ``model`` candidate from it
the way :func:`pulsesynth.pipeline.model_candidate` does (export_release, model MIA only,
gate with ``kind="model"``). ``make_classifier_candidate`` writes a ``classifier``
candidate with a tiny torch network (the governance layer only needs its files);
``make_untrained_model_candidate`` a ``model`` candidate with fixed weights and no
training at all (unit tier: publication and model-card tests).
"""

from __future__ import annotations

import copy
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from governance_fixtures import SCHEMA, ledger_charge, release_stats, synthetic_table

from pulsesynth.gate import evaluate_gate, load_policy
from pulsesynth.paths import Paths
from pulsesynth.schema import DatasetSchema, parse_schema

FAST = {"epochs": 3, "hidden": (32, 32), "latent_dim": 4}
PRIVACY = {"epsilon": 1.0, "delta": None, "lifetime_epsilon": 10.0, "refresh_days": 30,
           "max_rows_per_unit": 1}


def model_schema_raw(dataset: str = "taxi_trips") -> dict[str, Any]:
    """A complete declared schema (taxi-like columns) that ``parse_schema`` accepts."""
    raw = copy.deepcopy(SCHEMA)
    raw.update(id=dataset, title=dataset.replace("_", " ").capitalize(), row_key="rownames",
               privacy=dict(PRIVACY))
    for column in raw["columns"]:
        if column["name"] == "hour":
            column["bins"] = [0, 6, 12, 18, 23]
    return raw


def model_schema(dataset: str = "taxi_trips") -> DatasetSchema:
    return parse_schema(model_schema_raw(dataset))


def fake_real_table(rows: int = 400, seed: int = 42) -> pd.DataFrame:
    """A stand-in *real* table inside the declared domains."""
    frame = synthetic_table(rows, seed)
    frame.insert(0, "rownames", np.arange(1, rows + 1))
    return frame


@lru_cache(maxsize=4)
def tiny_model(dataset: str = "taxi_trips", private: bool = True, seed: int = 0):
    """A real DP-VAE (3 epochs, 32-unit layers) trained in a few seconds; cached."""
    from pulsesynth.synth import DPVAESynthesizer

    synth = DPVAESynthesizer(model_schema(dataset), private=private, seed=seed, **FAST)
    return synth.fit(fake_real_table(), snapshot_id="f" * 64)


def attack(accuracy: float = 0.505, advantage: float = 0.01,
           advantage_ci_high: float = 0.04) -> dict[str, Any]:
    """An ``AttackResult.to_dict()``-shaped model MIA result."""
    return {"attack": "model_mia", "accuracy": accuracy, "ci_low": accuracy - 0.03,
            "ci_high": accuracy + 0.03, "auc": 0.51, "tpr_at_1pct_fpr": 0.01,
            "advantage": advantage, "advantage_ci_high": advantage_ci_high,
            "effective_epsilon": 0.0, "n_members": 400, "n_non_members": 400,
            "details": {}, "privacy": round(2 * (1 - accuracy), 6)}


def _write_common(out: Path, kind: str, privacy: dict[str, Any], audit: dict[str, Any],
                  utility: dict[str, Any], schema_raw: dict[str, Any],
                  policy_path: Path | None, paths: Paths, advantage: float = 0.01,
                  advantage_ci_high: float = 0.04) -> None:
    policy = load_policy(policy_path) if policy_path else load_policy()
    private = bool(privacy.get("private"))
    charge_id = ledger_charge(paths, schema_raw["id"], out.name,
                              float(privacy.get("epsilon") or 1.0)) if private else None
    privacy |= {"charge_id": charge_id, "randomness": "secret"}
    stats = release_stats(charge_id, advantage, private)
    stats["statistics"]["max_attack_advantage"]["ci_high"] = advantage_ci_high
    (out / "release_stats.json").write_text(json.dumps(stats, indent=2))
    gate = evaluate_gate(policy, privacy, stats, kind=kind).to_dict()
    (out / "gate.json").write_text(json.dumps(gate, indent=2))
    (out / "privacy.json").write_text(json.dumps(privacy, indent=2, default=str))
    (out / "audit.json").write_text(json.dumps(audit, indent=2))
    (out / "utility.json").write_text(json.dumps(utility, indent=2))
    (out / "schema.yaml").write_text(yaml.safe_dump(schema_raw, sort_keys=False))


def make_model_candidate(paths: Paths, synth: Any = None, dataset: str = "taxi_trips",
                         run_id: str = "m1", *, private: bool | None = None,
                         accuracy: float = 0.505, advantage: float = 0.01,
                         advantage_ci_high: float = 0.04,
                         policy_path: Path | None = None) -> Path:
    """A ``model`` candidate directory from a trained synthesizer."""
    synth = synth if synth is not None else tiny_model(dataset)
    out = paths.state / "model_candidates" / dataset / run_id
    out.mkdir(parents=True, exist_ok=True)
    synth.export_release(out)
    privacy = dict(synth.privacy_report) | {"model_hash": "2" * 64,
                                            "code_version": "0.1.0-test"}
    if private is not None:
        privacy["private"] = private
    audit = {"dataset": dataset, "kind": "model", "seed": 0,
             "membership_attacks": {"model_mia": attack(accuracy, advantage,
                                                        advantage_ci_high)}}
    utility = {"target": "tip", "tstr": {"hist_gb": {"accuracy": 0.70, "auc": 0.64}},
               "trtr": {"hist_gb": {"accuracy": 0.74, "auc": 0.70}},
               "majority_accuracy": 0.62,
               "column_shapes": {"mean": 0.9, "columns": {"tip": 0.95}}}
    _write_common(out, "model", privacy, audit, utility, synth.schema.raw, policy_path, paths,
                  advantage, advantage_ci_high)
    return out


def make_classifier_candidate(paths: Paths, dataset: str = "taxi_trips", run_id: str = "c1",
                              *, seed: int = 0, private: bool = True, epsilon: float = 1.0,
                              advantage: float = 0.01) -> Path:
    """A ``classifier`` candidate: a tiny torch network and a value-free model.json."""
    import torch

    out = paths.state / "classifier_candidates" / dataset / run_id
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(14, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save(net.state_dict(), out / "weights.pt")
    schema_raw = model_schema_raw(dataset)
    config = {"format_version": 1, "kind": "classifier", "model": "dp-mlp",
              "architecture": {"class": "MLP", "input_dim": 14, "hidden": [8],
                               "output_dim": 2},
              "schema_id": dataset, "schema_hash": parse_schema(schema_raw).hash,
              "target": "tip", "classes": ["no", "yes"],
              "features": ["distance", "company", "hour"],
              "privacy": {"private": private, "epsilon": epsilon, "delta": 1e-5}}
    (out / "model.json").write_text(json.dumps(config, indent=2))
    privacy = {"private": private, "epsilon": epsilon, "delta": 1e-5, "accountant": "prv",
               "noise_multiplier": 1.2, "sample_rate": 0.01, "steps": 400,
               "max_grad_norm": 1.0, "schema_hash": config[
                   "schema_hash"], "model_hash": "3" * 64, "code_version": "0.1.0-test"}
    audit = {"dataset": dataset, "kind": "classifier",
             "membership_attacks": {"classifier_mia": attack(0.5 + advantage / 2, advantage,
                                                             advantage + 0.03)
                                    | {"attack": "classifier_mia"}}}
    utility = {"target": "tip", "test_accuracy": 0.71 + seed / 1000, "test_auc": 0.66,
               "test_f1": 0.6, "majority_accuracy": 0.62, "test_rows": 800}
    _write_common(out, "classifier", privacy, audit, utility, schema_raw, None, paths,
                  advantage, advantage + 0.03)
    return out


def _fixed_state_dict_bytes() -> bytes:
    """Weights bytes that do not depend on torch's RNG (fixed values, saved to memory)."""
    import torch

    state = {"layer.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 10,
             "layer.bias": torch.tensor([0.5, -0.25, 0.125])}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def make_untrained_model_candidate(paths: Paths, dataset: str = "taxi_trips",
                                   run_id: str = "m1") -> Path:
    """A ``model`` candidate without training: fixed weights, a value-free model.json."""
    out = paths.state / "model_candidates" / dataset / run_id
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.pt").write_bytes(_fixed_state_dict_bytes())
    schema_raw = model_schema_raw(dataset)
    config = {"format_version": 1, "kind": "model", "model": "dp-vae",
              "architecture": {"class": "VAE", "input_dim": 4, "hidden": [3],
                               "latent_dim": 2},
              "schema_id": dataset, "schema_hash": parse_schema(schema_raw).hash,
              "target": "tip"}
    (out / "model.json").write_text(json.dumps(config, indent=2))
    privacy = {"private": True, "epsilon": 1.0, "delta": 1e-5, "accountant": "prv",
               "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 300,
               "max_grad_norm": 1.0, "schema_hash": config["schema_hash"],
               "model_hash": "2" * 64, "code_version": "0.1.0-test"}
    audit = {"dataset": dataset, "kind": "model",
             "membership_attacks": {"model_mia": {"attack": "model_mia", "accuracy": 0.505,
                                                  "advantage": 0.01,
                                                  "advantage_ci_high": 0.04}}}
    utility = {"target": "tip", "tstr": {"hist_gb": {"accuracy": 0.70, "auc": 0.64}},
               "trtr": {"hist_gb": {"accuracy": 0.74, "auc": 0.70}},
               "majority_accuracy": 0.62}
    _write_common(out, "model", privacy, audit, utility, schema_raw, None, paths)
    return out
