"""A classifier release candidate from a run: charge → train → utility → attack → gate.

Works on a run directory made by :func:`pulsesynth.pipeline.start_run` (its recorded
snapshot and split), and writes ``<run>/classifier_candidate/`` with the files the
governance layer registers for kind ``classifier``: ``weights.pt``, ``model.json``,
``audit.json``, ``gate.json``, ``privacy.json``, ``utility.json``, ``schema.yaml``.

The ledger is charged *before* training, under an idempotency key made of the run, the
seed and the training recipe, so a retried command charges once; a non-private classifier
charges nothing and is blocked by the gate.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from pulsesynth.classifier.model import WEIGHTS_FILE, DPClassifier
from pulsesynth.paths import Paths

CANDIDATE_DIR = "classifier_candidate"


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def recipe_key(dataset: str, run_id: str, seed: int, config: dict[str, Any],
               epsilon: float, delta: float) -> str:
    """Ledger idempotency key of one classifier training run."""
    blob = json.dumps({"config": config, "seed": seed, "epsilon": epsilon, "delta": delta},
                      sort_keys=True, default=str)
    return f"classifier:{dataset}:{run_id}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def classifier_candidate(run_dir: Path, *, epsilon: float | None = None,
                         private: bool = True, seed: int = 0, n_shadows: int = 2,
                         policy_path: Path | None = None, paths: Paths | None = None,
                         charge: bool = True, progress=None, **config: Any) -> dict[str, Any]:
    """Train, evaluate, attack and gate a DP classifier on the run's training rows.

    Returns ``{"candidate_dir", "privacy", "utility", "audit", "gate", "charge"}``; the
    ledger charge (when ``charge`` and ``private``) happens before any training.
    """
    from pulsesynth.audit.attacks.classifier_mia import ShadowClassifierAttack
    from pulsesynth.gate import DEFAULT_POLICY, evaluate_gate, load_policy
    from pulsesynth.governance.ledger import Ledger
    from pulsesynth.pipeline import code_version, load_run, run_data
    from pulsesynth.synth.train import default_delta
    from pulsesynth.warehouse import file_sha256

    run_dir = Path(run_dir)
    paths = paths or Paths.default()
    run = load_run(run_dir)
    data = run_data(run_dir, paths)
    schema = data.schema
    clf = DPClassifier(schema, epsilon=epsilon, private=private, seed=seed,
                       progress=progress, **config)
    n = len(clf.training_rows(data.train))
    charged = None
    if private:
        assert clf.epsilon is not None
        clf.delta = schema.privacy.delta if schema.privacy.delta is not None \
            else default_delta(n)
        if charge:
            key = recipe_key(schema.id, run["run_id"], seed, clf.config.to_dict(),
                             clf.epsilon, clf.delta)
            c = Ledger(paths).charge(schema.id, run["run_id"], run["snapshot_id"], clf.epsilon,
                                     clf.delta, clf.config.accountant, key,
                                     schema.privacy.lifetime_epsilon, actor="classifier")
            charged = {"epsilon": c.epsilon, "delta": c.delta, "new": c.new, "id": c.id}
    clf.fit(data.train, snapshot_id=run["snapshot_id"])

    out = run_dir / CANDIDATE_DIR
    if out.exists():
        shutil.rmtree(out)
    clf.export_release(out)
    utility = {"kind": "classifier", "target": schema.target,
               "test": clf.evaluate(data.holdout),
               "reading": "accuracy of the released classifier on unseen real rows"}
    attack = ShadowClassifierAttack(n_shadows=n_shadows, seed=seed).run(
        clf, data.train, data.holdout, data.reference)
    audit = {"kind": "classifier", "membership_attacks": {attack.attack: attack.to_dict()}}
    privacy = clf.privacy_report | {"model_hash": file_sha256(out / WEIGHTS_FILE),
                                    "code_version": code_version()}
    gate = evaluate_gate(load_policy(policy_path or DEFAULT_POLICY), privacy, audit,
                         kind="classifier").to_dict()
    for name, value in (("utility.json", utility), ("audit.json", audit),
                        ("privacy.json", privacy), ("gate.json", gate)):
        _write(out / name, value)
    if schema.path:
        shutil.copyfile(schema.path, out / "schema.yaml")
    return {"candidate_dir": str(out), "privacy": privacy, "utility": utility,
            "audit": audit, "gate": gate, "charge": charged}
