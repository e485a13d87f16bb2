"""A classifier release candidate from a run: charge → train → utility → attack → gate.

Works on a run directory made by :func:`pulsesynth.pipeline.start_run` (its recorded
snapshot and split), and writes ``<run>/classifier_candidate/`` with the files the
governance layer registers for kind ``classifier``: ``weights.pt``, ``model.json``,
``audit.json``, ``gate.json``, ``privacy.json``, ``utility.json``, ``schema.yaml``.

The ledger is charged *before* training, under an idempotency key made of the run and the
training recipe, so a retried command charges once; a non-private classifier charges
nothing and is blocked by the gate. The gate decides on the DP release report only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pulsesynth.artifacts import RunDir
from pulsesynth.classifier.model import DPClassifier
from pulsesynth.paths import Paths
from pulsesynth.release_kinds import CLASSIFIER
from pulsesynth.reports import AuditReport, PrivacyReport, UtilityReport


def recipe_key(dataset: str, run_id: str, config: dict[str, Any],
               epsilon: float, delta: float) -> str:
    """Ledger idempotency key of one classifier training run (the run's seed is secret and
    per run, so the run id stands for it)."""
    blob = json.dumps({"config": config, "epsilon": epsilon, "delta": delta},
                      sort_keys=True, default=str)
    return f"classifier:{dataset}:{run_id}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def public_pool(target: DPClassifier, rows: int, seed: int) -> pd.DataFrame:
    """The auditor's reference rows for shadow classifiers, made from public and DP
    outputs only: feature values drawn uniformly from the declared domains, each labelled
    by a class drawn from the released classifier's own predicted probabilities. Attack
    rules learnt on it are post-processing, so the DP release report can count their calls
    on real rows with a bounded sensitivity."""
    from pulsesynth.audit.one_run import make_canaries

    rng = np.random.default_rng(seed)
    pool = make_canaries(target.schema, rows, rng)
    proba = target.predict_proba(pool)
    cum = proba.cumsum(axis=1)
    picks = (rng.random(len(pool))[:, None] > cum).sum(axis=1).clip(0, len(target.classes) - 1)
    pool[target.target.name] = np.asarray(target.classes, dtype=object)[picks]
    return pool


def classifier_candidate(run_dir: Path, *, epsilon: float | None = None,
                         private: bool = True, n_shadows: int = 2,
                         policy_path: Path | None = None, paths: Paths | None = None,
                         charge: bool = True, progress=None, **config: Any) -> dict[str, Any]:
    """Train, evaluate, attack and gate a DP classifier on the run's training rows.

    The ledger is charged the run's (ε, δ) before any training (``charge=False`` is for
    non-private comparisons only: a private classifier cannot be trained without one). The
    ε is split like a synthesis run's (:class:`~pulsesynth.budget.BudgetSplit`): DP row
    counts, DP-SGD, and the DP release report the gate decides on. Returns
    ``{"candidate_dir", "privacy", "utility", "audit", "gate", "charge"}``.
    """
    from pulsesynth.audit.attacks.classifier_mia import ShadowClassifierAttack
    from pulsesynth.audit.release_stats import release_report
    from pulsesynth.budget import BudgetSplit, laplace_counts
    from pulsesynth.gate import DEFAULT_POLICY, evaluate_gate, load_policy
    from pulsesynth.governance.ledger import Budget, Ledger
    from pulsesynth.pipeline import (
        ACCOUNTANT,
        code_version,
        derived_seed,
        load_run,
        run_data,
        run_delta,
        run_epsilon,
    )
    from pulsesynth.randomness import CALLER, SECRET
    from pulsesynth.warehouse import file_sha256

    run_dir = Path(run_dir)
    paths = paths or Paths.default()
    run = load_run(run_dir)
    data = run_data(run_dir, paths)
    schema = data.schema
    k = schema.privacy.max_rows_per_unit
    eps_run = run_epsilon(schema, epsilon)
    split = BudgetSplit.of(eps_run)
    delta = run_delta(schema)
    clf = DPClassifier(schema, epsilon=split.training if private else None, delta=delta,
                       private=private, seed=derived_seed(run, "classifier"),
                       progress=progress, **config)
    charged = None
    if private:
        if not charge:
            raise ValueError("a private classifier is never trained without a ledger charge")
        key = recipe_key(schema.id, run["run_id"], clf.config.to_dict(), eps_run, delta)
        ledger = Ledger(paths)
        budget = ledger.budget(schema.id, Budget.declared(schema), actor="classifier")
        c = ledger.charge(schema.id, run_id=run["run_id"], snapshot_id=run["snapshot_id"],
                          epsilon=eps_run, delta=delta, accountant=ACCOUNTANT,
                          idempotency_key=key, lifetime_epsilon=budget.lifetime_epsilon,
                          actor="classifier")
        charged = {"epsilon": c.epsilon, "delta": c.delta, "new": c.new, "id": c.id}
    true_rows = {"train": len(data.train), "holdout": len(data.holdout),
                 "reference": len(data.reference)}
    rng = np.random.default_rng(derived_seed(run, "classifier-row-count"))
    sizes = laplace_counts(true_rows, k, split.row_count, rng) if private else true_rows
    clf.fit(data.train, snapshot_id=run["snapshot_id"], public_rows=sizes["train"])

    out = CLASSIFIER.candidate_of(RunDir(run_dir))
    if out.path.exists():
        shutil.rmtree(out.path)
    clf.export_release(out.path)
    test = clf.evaluate(data.holdout)
    utility: UtilityReport = {"kind": CLASSIFIER.name, "target": schema.target, "test": test,
               "reading": "accuracy of the released classifier on unseen real rows"}
    pool = public_pool(clf, max(1000, 2 * sizes["train"]), derived_seed(run, "classifier-pool"))
    # A public seed is fine here: the shadows train on the public pool (post-processing);
    # the secret randomness is in the training above and the report's noise below.
    attacker = ShadowClassifierAttack(n_shadows=n_shadows, seed=0)
    attack = attacker.run(clf, data.train, data.holdout, pool)
    audit: AuditReport = {
        "kind": CLASSIFIER.name, "membership_attacks": {attack.attack: attack.to_dict()},
        "reference": "uniform rows of the declared domains labelled by the classifier"}
    labels = clf._labels(data.holdout)
    labels = labels[labels < len(clf.classes)]
    correct = int(round(test["accuracy"] * test["rows"]))
    stats = release_report(
        decisions=[attacker.decisions] if attacker.decisions else [], unique_reproduced=None,
        tstr_correct=correct, class_counts=np.bincount(labels, minlength=len(clf.classes))
        .astype(int).tolist(), rows=sizes, k=k,
        epsilon=split.release_report if private else 1e12,
        rng=np.random.default_rng(derived_seed(run, "classifier-release-report")))
    stats |= {"private": private, "dataset_id": schema.id, "classifier": "released",
              "charge_id": int(charged["id"]) if charged else None}
    meta = clf.metadata
    privacy: PrivacyReport = {
        "private": private, "dataset_id": schema.id, "schema_hash": schema.hash,
        "mechanism": "DP-SGD (Opacus: Poisson sampling, ghost clipping, Gaussian noise)",
        "adjacency": "add or remove one privacy unit (all its rows) from the table",
        "privacy_unit": list(schema.privacy_unit) or ["<row>"], "max_rows_per_unit": k,
        "randomness": SECRET if run["seed_source"] == SECRET else CALLER,
        "code_version": code_version(), "model_hash": file_sha256(out.weights_pt),
        "kind": CLASSIFIER.name,
    }
    if private and charged:
        privacy |= {
            "epsilon": float(meta["epsilon"]) + split.row_count + split.release_report,
            "target_epsilon": eps_run, "delta": delta,
            "budget": {"epsilon_total": eps_run, "parts": split.to_dict()},
            "accountant": meta.get("accountant"), "noise_multiplier": meta.get("noise_multiplier"),
            "sample_rate": meta.get("sample_rate"), "steps": meta.get("steps"),
            "expected_batch_size": meta.get("batch_size"), "epochs": meta.get("epochs"),
            "max_grad_norm": meta.get("max_grad_norm"), "rows_dp": sizes["train"],
            "charge_id": int(charged["id"])}
    else:
        privacy |= {"epsilon": None, "delta": None, "charge_id": None}
    gate = evaluate_gate(load_policy(policy_path or DEFAULT_POLICY), privacy, stats,
                         kind=CLASSIFIER.name).to_dict()
    out.write_utility(utility)
    out.write_audit(audit)
    out.write_privacy(privacy)
    out.write_gate(gate)
    out.write_release_stats(stats)
    if schema.path:
        shutil.copyfile(schema.path, out.schema_yaml)
    return {"candidate_dir": str(out.path), "privacy": privacy, "utility": utility,
            "audit": audit, "gate": gate, "charge": charged}
