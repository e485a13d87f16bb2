"""``pulsesynth release-classifier`` and ``pulsesynth predict`` (mechanism 1 on the CLI)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pulsesynth import cli_types as types
from pulsesynth.cli_progress import Progress
from pulsesynth.command import cli_command


def add_classifier_commands(sub: Any) -> None:
    """Register the classifier commands on the main parser's subcommands."""
    rcl = sub.add_parser("release-classifier",
                         help="train a DP classifier of a dataset's target, attack it, gate it "
                              "and register it as a release candidate (charges the ledger)")
    where = rcl.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", metavar="RUN_DIR",
                       help="reuse this run's snapshot and split (e.g. a nightly run)")
    where.add_argument("--dataset", type=types.dataset_id,
                       help="start a new run of this dataset")
    rcl.add_argument("--epsilon", type=types.run_epsilon,
                     help="target ε (default: the schema's per-run ε)")
    rcl.add_argument("--non-private", action="store_true",
                     help="train WITHOUT DP (comparison only; registered as blocked)")
    rcl.add_argument("--seed", type=types.seed,
                     help="with --dataset: fix every random choice (never releasable); "
                          "default: fresh secret randomness")
    rcl.add_argument("--max-rows", type=types.positive_count,
                     help="with --dataset: a slice of about N rows")
    rcl.add_argument("--epochs", type=types.epochs, help="override the default (30)")
    rcl.add_argument("--shadows", type=types.shadows, default=2,
                     help="shadow classifiers in the attack")
    rcl.add_argument("--policy", help="gate policy file (default: deployments/policy.yaml)")
    rcl.add_argument("--json", action="store_true", help="print the summary as JSON")
    rcl.set_defaults(handler=_release_classifier)

    prd = sub.add_parser("predict", help="predict with a published classifier release")
    prd.add_argument("--release", required=True, metavar="PUBLISHED_DIR",
                     help="published/<dataset>_classifier/<version>/ or a downloaded copy")
    prd.add_argument("--input", required=True, help="CSV or Parquet rows with the features")
    prd.add_argument("--out", help="write predictions to this CSV (default: stdout)")
    prd.set_defaults(handler=_predict)


def _release_classifier(args: argparse.Namespace) -> int:
    from pulsesynth import pipeline
    from pulsesynth.classifier.release import classifier_candidate
    from pulsesynth.governance.candidate import register_candidate
    from pulsesynth.paths import Paths
    from pulsesynth.release_kinds import CLASSIFIER

    paths = Paths.default()
    if args.run:
        run_dir = Path(args.run)
    else:
        run_dir = pipeline.new_run_dir(paths, args.dataset)
        pipeline.start_run(args.dataset, run_dir, seed=args.seed, max_rows=args.max_rows)
    config = {"epochs": args.epochs} if args.epochs else {}
    # The classifier's epochs with ε so far: a bar on a terminal (its shadows and the
    # attack follow without one; they report no progress).
    with Progress(f"{args.dataset or run_dir.parent.name}: classifier",
                  after="training shadow classifiers and attacking") as progress:
        out = classifier_candidate(run_dir, epsilon=args.epsilon,
                                   private=not args.non_private, n_shadows=args.shadows,
                                   policy_path=Path(args.policy) if args.policy else None,
                                   paths=paths, progress=progress.epoch, **config)
    run = pipeline.load_run(run_dir)
    rel = register_candidate(paths, run["dataset"], Path(out["candidate_dir"]),
                             model_id=out["privacy"]["model_hash"], kind=CLASSIFIER.name)
    summary = {"run_dir": str(run_dir), "candidate_id": rel.candidate_id,
               "status": rel.status, "label": rel.label, "gate": out["gate"],
               "charge": out["charge"], "test": out["utility"]["test"],
               "attack": out["audit"]["membership_attacks"]["classifier_mia"]}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    att, test = summary["attack"], summary["test"]
    eps = out["privacy"].get("epsilon")
    guarantee = f"ε = {eps:.4g}" if eps else "NON-PRIVATE"
    print(f"{run['dataset']} classifier: {guarantee}, "
          f"test accuracy {test['accuracy']:.3f} (majority {test['majority_accuracy']:.3f})")
    print(f"  shadow-model MIA accuracy {att['accuracy']:.3f} "
          f"(95% CI {att['ci_low']:.3f}–{att['ci_high']:.3f}), privacy {att['privacy']:.0%}")
    print(f"  label {rel.label} — {out['gate']['reason']}")
    print(f"release {rel.candidate_id[:12]} registered as {rel.status}")
    if rel.status == "candidate":
        cli = cli_command()
        print(f"next: {cli} releases approve {rel.candidate_id[:12]} --steward NAME; "
              f"{cli} publish")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from pulsesynth.artifacts import RELEASE_CONFIG_JSON, SCHEMA_YAML, WEIGHTS_PT, ReleaseDir
    from pulsesynth.classifier import DPClassifier
    from pulsesynth.errors import PulseSynthError
    from pulsesynth.frames import conform
    from pulsesynth.schema import load_schema

    release = ReleaseDir(Path(args.release))
    if not release.weights_pt.is_file() or not release.schema_yaml.is_file():
        raise PulseSynthError(f"{release.path}: not a classifier release directory "
                              f"(needs {WEIGHTS_PT}, {RELEASE_CONFIG_JSON} and {SCHEMA_YAML})")
    schema = load_schema(release.schema_yaml)
    clf = DPClassifier.from_release(release.path, schema)
    path = Path(args.input)
    try:
        rows = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PulseSynthError(f"{path}: cannot read rows ({exc.__class__.__name__})") from exc
    missing = [c for c in clf.metadata.get("input_columns", []) if c not in rows.columns]
    if missing:
        raise PulseSynthError(f"{path}: missing feature column(s): {', '.join(missing)}")
    proba = clf.predict_proba(conform(rows, schema))
    out = pd.DataFrame({f"p({c})": proba[:, i] for i, c in enumerate(clf.classes)})
    out.insert(0, f"predicted_{clf.target.name}",
               [clf.classes[i] for i in proba.argmax(axis=1)])
    if args.out:
        out.to_csv(args.out, index=False)
        print(f"{len(out)} predictions written to {args.out}", file=sys.stderr)
    else:
        out.to_csv(sys.stdout, index=False)
    return 0
