"""The ``pulsesynth`` command: a thin layer over the library.

Exit codes: 0 success, 1 a validation or gate failure (the report is printed), 2 a usage
or input error (a one-line message on stderr). Output never contains cell values. Every
argument is checked by its type (:mod:`pulsesynth.cli_types`) before anything is read or
written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from pulsesynth import cli_types as types
from pulsesynth.cli_progress import Progress
from pulsesynth.command import cli_command
from pulsesynth.errors import PulseSynthError, ValidationFailed
from pulsesynth.threads import compute_threads, thread_limit


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pulsesynth`` command; returns the exit code."""
    parser = build_parser()
    args = types.parse_args(parser, argv)
    if isinstance(args, int):
        return args
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        # Only computing commands load torch and scikit-learn to cap their threads; every
        # command refuses a malformed setting alike (one line, before it does anything).
        thread_limit()
        with nullcontext() if types.is_light(args.handler) else compute_threads():
            return args.handler(args)
    except ValidationFailed as exc:
        if getattr(args, "json", False):
            print(json.dumps(_validation_json(exc.report), indent=2))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PulseSynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = types.OneLineParser(
        prog="pulsesynth", description="Private synthetic data for sensitive city tables."
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    wh = sub.add_parser("warehouse", help="build the embedded DuckDB/Parquet warehouse")
    wh.set_defaults(handler=types.list_actions(wh))
    wh_sub = wh.add_subparsers(metavar="ACTION")
    build = wh_sub.add_parser("build", help="fill warehouse/ from the packaged real tables")
    build.add_argument("--dataset", action="append", type=types.dataset_id,
                       help="only this dataset (repeatable)")
    build.set_defaults(handler=_warehouse_build)

    cat = sub.add_parser("catalog", help="list or show catalogued datasets")
    cat.set_defaults(handler=types.list_actions(cat))
    cat_sub = cat.add_subparsers(metavar="ACTION")
    lst = cat_sub.add_parser("list", help="every catalogued dataset")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=_catalog_list)
    show = cat_sub.add_parser("show", help="one dataset's catalog entry")
    show.add_argument("id", type=types.dataset_id, help="dataset id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_catalog_show)

    val = sub.add_parser("validate", help="validate a table against its declared schema")
    val.add_argument("id", type=types.dataset_id, help="dataset id")
    val.add_argument("--file", help="validate this CSV, Parquet or Excel (.xlsx) file, read "
                                    "as ingest reads it, instead of the warehouse table")
    val.add_argument("--show-values", action="store_true",
                     help="also print each failing column's unexpected values with counts "
                          "and a schema fragment to accept or clean them, and numeric "
                          "values holding 20%% or more of their column that are not "
                          "declared exact_values (to this terminal only: never logged or "
                          "stored)")
    val.add_argument("--json", action="store_true", help='print {"success": ..., "failed": [...]}')
    val.set_defaults(handler=_validate)

    ing = sub.add_parser("ingest", help="add a CSV, Parquet or Excel file as a catalogued "
                                        "table (through the schema's ingest: mapping)")
    ing.add_argument("file", help="the CSV, Parquet or Excel (.xlsx) file to add")
    ing.add_argument("--dataset", required=True, type=types.dataset_id,
                     help="dataset id (must match the schema's id)")
    ing.add_argument("--schema", required=True, help="path to the declared schema YAML")
    ing.add_argument("--classification", help="override: open|confidential|sensitive|secret")
    ing.set_defaults(handler=_ingest)

    trn = sub.add_parser("train", help="train the DP-VAE on a warehouse table (starts a run)")
    trn.add_argument("id", type=types.dataset_id, help="dataset id")
    _add_training_arguments(trn)
    trn.add_argument("--json", action="store_true", help="print the privacy report as JSON")
    trn.set_defaults(handler=_train)

    smp = sub.add_parser("sample", help="sample a synthetic table from a trained run")
    smp.add_argument("run_dir", help="a trained run directory (state/runs/<id>/<run>)")
    smp.add_argument("--rows", type=types.sample_rows,
                     help="rows to draw (default: the DP count of the training rows)")
    smp.add_argument("--seed", type=types.seed, help="fix the draw (never releasable); default: "
                                              "secret randomness derived from the run")
    smp.add_argument("--out", help="also write the table to this .parquet or .csv file")
    smp.set_defaults(handler=_sample)

    evl = sub.add_parser("evaluate", help="utility of a run's synthetic table (TSTR vs TRTR)")
    evl.add_argument("run_dir", help="a sampled run directory (state/runs/<id>/<run>)")
    evl.add_argument("--json", action="store_true", help="print the utility report as JSON")
    evl.set_defaults(handler=_evaluate)

    aud = sub.add_parser("audit", help="attack a run's model and synthetic table, then gate it")
    aud.add_argument("run_dir", help="a sampled run directory (state/runs/<id>/<run>)")
    aud.add_argument("--seed", type=types.seed, default=0,
                     help="seed of the shadow models (post-processing: public is fine)")
    aud.add_argument("--shadows", type=types.shadows, default=1,
                     help="shadow models and shadow releases, shared by the attacks")
    aud.add_argument("--policy", help="gate policy file (default: the shipped policy.yaml)")
    aud.add_argument("--json", action="store_true", help="print the audit and gate as JSON")
    aud.set_defaults(handler=_audit)

    run = sub.add_parser("run", help="train → sample → evaluate → audit a warehouse table in "
                                     "one command (a new run; charged as train is)")
    run.add_argument("id", type=types.dataset_id, help="dataset id")
    _add_training_arguments(run)
    run.add_argument("--shadows", type=types.shadows, default=1,
                     help="the audit's shadow models and shadow releases")
    run.add_argument("--policy", help="gate policy file (default: the shipped policy.yaml)")
    run.add_argument("--json", action="store_true",
                     help="print every step's report as one JSON object")
    run.set_defaults(handler=_run)

    rmd = sub.add_parser("release-model", help="build and register a run's DP-VAE as a model "
                                               "release candidate (at most confidential)")
    rmd.add_argument("--run", required=True, metavar="RUN_DIR",
                     help="a trained, sampled, evaluated and audited run")
    rmd.add_argument("--policy", help="gate policy file (default: deployments/policy.yaml)")
    rmd.add_argument("--json", action="store_true", help="print the registered release as JSON")
    rmd.set_defaults(handler=_release_model)

    srl = sub.add_parser("sample-release", help="draw synthetic rows from a published model "
                                                "release directory (no privacy cost)")
    srl.add_argument("--release", required=True, metavar="PUBLISHED_DIR",
                     help="published/<dataset>_model/<version>/ or a downloaded copy")
    srl.add_argument("-n", "--rows", type=types.sample_rows, required=True, help="rows to draw")
    srl.add_argument("--seed", type=types.seed, default=0,
                     help="same seed, same rows (default 0)")
    srl.add_argument("--out", help="write a .csv or .parquet file (default: CSV on stdout)")
    srl.set_defaults(handler=_sample_release)

    from pulsesynth.classifier.cli import add_classifier_commands
    from pulsesynth.governance_cli import add_governance_commands

    add_classifier_commands(sub)

    add_governance_commands(sub)

    sch = sub.add_parser("schemas", help="declared schemas and their expectation suites")
    sch.set_defaults(handler=types.list_actions(sch))
    sch_sub = sch.add_subparsers(metavar="ACTION")
    sync = sch_sub.add_parser("sync", help="regenerate schemas/<id>.suite.json from the schemas")
    sync.set_defaults(handler=_schemas_sync)
    check = sch_sub.add_parser("check", help="load every schema and report errors")
    check.set_defaults(handler=_schemas_check)
    return types.describe(parser)


# --- handlers ----------------------------------------------------------------------------



def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``train`` and ``run`` share (a run's first step is train)."""
    parser.add_argument("--epsilon", type=types.run_epsilon,
                        help="target ε, above 0 and at most 10 (default: the catalog's "
                             "per-run ε)")
    parser.add_argument("--non-private", action="store_true",
                        help="train WITHOUT DP (comparison only; never publishable)")
    parser.add_argument("--out", help="run directory (default: state/runs/<id>/<timestamp>)")
    parser.add_argument("--seed", type=types.seed,
                        help="fix every random choice (tests and comparisons only: a seeded "
                             "run can be replayed, so it is never releasable); default: fresh "
                             "secret randomness")
    parser.add_argument("--max-rows", type=types.positive_count,
                        help="train on a slice of about N rows (whole privacy units)")
    parser.add_argument("--epochs", type=types.epochs, help="override the fixed default (50)")

def _warehouse():
    from pulsesynth.warehouse import Warehouse

    return Warehouse()


def _warehouse_build(args: argparse.Namespace) -> int:
    results = _warehouse().build(args.dataset, progress=lambda m: print(m, file=sys.stderr))
    for r in results:
        print(f"{r.dataset:20s} {r.rows:>7d} rows  snapshot {r.snapshot_id[:12]}  "
              f"{'written' if r.changed else 'unchanged'}")
    return 0


@types.light
def _catalog_list(args: argparse.Namespace) -> int:
    entries = _warehouse().catalog()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    print(f"{'id':20s} {'rows':>7s}  {'classification':14s} {'target':16s} {'ε/run':>6s} "
          f"{'lifetime ε':>10s}  title")
    for e in entries:
        print(f"{e['id']:20s} {e['rows']:>7d}  {e['classification']:14s} "
              f"{e['target'] or '-':16s} {e['epsilon']:>6g} {e['lifetime_epsilon']:>10g}  "
              f"{e['title']}")
    return 0


@types.light
def _catalog_show(args: argparse.Namespace) -> int:
    entry = _warehouse().entry(args.id)
    if args.json:
        print(json.dumps(entry, indent=2))
    else:
        for key, value in entry.items():
            print(f"{key:18s} {value}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pulsesynth import steward_view
    from pulsesynth.validation import validate
    from pulsesynth.warehouse import validate_file

    wh = _warehouse()
    values: list[steward_view.ColumnValues] = []
    masses: list[steward_view.PointMass] = []
    if args.file:
        # As ingest reads it (the schema's ingest: mapping applied); a dataset not ingested
        # yet is checked against schemas/<id>.yaml.
        schema = wh.declared_schema(args.id)
        if args.show_values:
            report, values = steward_view.file_values(args.file, schema, wh.paths)
            masses = steward_view.file_point_masses(args.file, schema, wh.paths)
        else:
            report = validate_file(args.file, schema, wh.paths)
    else:
        snap = wh.pull(args.id)
        schema = snap.schema
        report = validate(snap.frame, schema)
        if args.show_values:
            table = wh.paths.resolve(wh.entry(args.id)["table_path"])
            masses = steward_view.table_point_masses(table, schema)
            if not report.success:
                values = steward_view.table_values(table, schema, report)
    if args.json:
        data = _validation_json(report)
        if args.show_values:  # stdout only, and only when asked
            data["values"] = [v.to_dict() for v in values]
            data["point_masses"] = [m.to_dict() for m in masses]
        print(json.dumps(data, indent=2))
    else:
        if report.success:
            print(f"{args.id}: {report.rows} rows pass all {report.evaluated} expectations")
        else:
            for line in steward_view.render(values, schema):
                print(line)
        for line in steward_view.render_point_masses(masses, schema):
            print(line)
    if not report.success:
        print(f"error: {ValidationFailed(args.id, report)}", file=sys.stderr)
        return 1
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from pulsesynth import pipeline

    result = pipeline.ingest(args.file, args.dataset, args.schema, args.classification)
    print(f"{result.dataset}: ingested {result.rows} rows, snapshot {result.snapshot_id[:12]}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from pulsesynth.paths import Paths
    from pulsesynth.runs import run_lock

    # One lock over start and training (a second run of the dataset ends in one line,
    # "skipped: another run holds the lock"); the pipeline steps re-enter it.
    with run_lock(Paths.default(), args.id, by="pulsesynth train"):
        return _train_locked(args)


def _train_locked(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pulsesynth import pipeline
    from pulsesynth.paths import Paths

    run_dir = Path(args.out) if args.out else pipeline.new_run_dir(Paths.default(), args.id)
    pipeline.start_run(args.id, run_dir, seed=args.seed, max_rows=args.max_rows)
    config = {"epochs": args.epochs} if args.epochs is not None else {}
    # A private fit charges the ledger first (pipeline.train), exactly like the flow.
    # Epochs with ε so far: a bar on a terminal, a line per epoch otherwise.
    with Progress(f"{args.id}: training") as progress:
        report = pipeline.train(run_dir, epsilon=args.epsilon, private=not args.non_private,
                                progress=progress.epoch, **config)
    report = report | {"run_dir": str(run_dir)}
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_training(args.id, report, run_dir)
    return 0


def _print_training(dataset: str, report: dict[str, Any], run_dir: Any) -> None:
    eps = (f"training ε = {report['epsilon']:.4g}, ledger charge {report['charge_id']}"
           if report["private"] else "NON-PRIVATE")
    note = "" if report["seed_source"] == "secret" else " (seeded: not releasable)"
    print(f"{dataset}: trained about {report['rows']} rows (DP count), {eps}, "
          f"run {run_dir}{note}")


def _sample(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    import pandas as pd

    from pulsesynth import pipeline

    path = pipeline.sample(Path(args.run_dir), rows=args.rows, seed=args.seed)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() == ".csv":
            pd.read_parquet(path).to_csv(out, index=False)
        else:
            shutil.copyfile(path, out)
        path = out
    print(f"synthetic table written to {path}")
    return 0


def _sampled_first(run_dir: str) -> None:
    """Evaluate and audit need the run's synthetic table: sample it first when missing
    (one line on stderr, so ``--json`` output stays one document)."""
    from pathlib import Path

    from pulsesynth import pipeline

    path = pipeline.ensure_sampled(Path(run_dir))
    if path is not None:
        print(f"no synthetic table yet: sampled it first (as `{cli_command()} sample "
              f"{run_dir}` would): {path}", file=sys.stderr)


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pulsesynth import pipeline

    _sampled_first(args.run_dir)
    result = pipeline.evaluate(Path(args.run_dir))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_utility(result)
    return 0


def _print_utility(result: Any) -> None:
    trtr_all, tstr_all = result.get("trtr"), result.get("tstr")
    if trtr_all is None or tstr_all is None:
        print("no declared target: TSTR and TRTR need one (column scores below)")
    else:
        print(f"target {result.get('target')}: majority baseline "
              f"{result.get('majority_accuracy') or 0:.3f}")
        for clf in result.get("classifiers", []):
            trtr, tstr = trtr_all[clf], tstr_all[clf]
            print(f"  {clf:14s} TRTR acc {trtr['accuracy']:.3f} auc {trtr['auc'] or 0:.3f}   "
                  f"TSTR acc {tstr['accuracy']:.3f} auc {tstr['auc'] or 0:.3f}")
    print(f"  column shapes {result['column_shapes']['mean']:.3f}, "
          f"pair trends {result['pair_trends']['mean']:.3f}")


def _audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pulsesynth import pipeline

    _sampled_first(args.run_dir)
    with Progress("audit shadows", after="running the attacks") as progress:
        # On a terminal the shadows are trained one by one here under a bar (the audit's
        # mapper: the same jobs a Dask worker would run); elsewhere inside the audit.
        result = pipeline.audit(Path(args.run_dir), seed=args.seed, n_shadows=args.shadows,
                                policy_path=Path(args.policy) if args.policy else None,
                                mapper=progress.mapper if progress.bars else None)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_audit(result, Path(args.run_dir))
    return 0


def _print_audit(result: dict[str, Any], run_dir: Any) -> None:
    from pulsesynth.artifacts import RunDir

    gate = result["gate"]
    vulnerable = result.get("vulnerable_targets", {})
    for name, r in result["membership_attacks"].items():
        v = vulnerable.get(name)
        print(f"  {name:16s} AUC {r['auc']:.3f} ({r['auc_ci_low']:.3f}–{r['auc_ci_high']:.3f})"
              f", TPR at 1% FPR {r['tpr_at_1pct_fpr']:.3f}"
              + (f"; most vulnerable: AUC {v['auc']:.3f}, TPR {v['tpr_at_1pct_fpr']:.3f}"
                 if v else ""))
    verdict = result.get("verdict")
    if verdict:
        print(f"  strongest: {verdict['attack']} on {verdict['targets']} targets, "
              + ("DETECTS membership" if verdict["detected"] else "no membership signal")
              + f" ({verdict['correction']})")
    d = result["distances"]
    print(f"  DCR share {d['dcr_share']:.3f}, exact matches {d['exact_matches']} "
          f"({d['exact_matches_unique']} unique), median Gower {d['median_gower']:.3f} "
          f"vs reference {d['gower_reference']:.3f}")
    c = d["exact_match_control"]
    test = (f"; one-sided exact p = {c['p_value']:.3g}" if c.get("p_value") is not None
            else "")
    print(f"  unique rows reproduced, of {c['rows']}: training {c['train_unique']}, "
          f"unseen {c['holdout_unique']} (control{test})")
    stats = result["release_stats"]["statistics"]
    print("  published (DP): " + ", ".join(
        f"{name} {s['value']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
        for name, s in stats.items()))
    print(f"label: {gate['label']} — {gate['reason']}")
    from pulsesynth.advice import budget_status, unblock_advice
    from pulsesynth.paths import Paths

    dataset = result.get("dataset")
    budget = budget_status(Paths.default(), dataset) if isinstance(dataset, str) else None
    for line in unblock_advice(gate, budget):
        print(f"  {line.strip()}")
    print(f"report: {RunDir(run_dir).candidate.audit_md}")


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pulsesynth import pipeline
    from pulsesynth.paths import Paths

    paths = Paths.default()
    run_dir = Path(args.out) if args.out else pipeline.new_run_dir(paths, args.id)
    config = {"epochs": args.epochs} if args.epochs is not None else {}
    training = Progress(f"{args.id}: training")
    shadows = Progress("audit shadows", after="running the attacks")

    def step(name: str) -> None:
        training.close()  # the epoch bar ends where the next step begins
        print(f"{args.id}: {name} ...", file=sys.stderr, flush=True)

    with training, shadows:
        # The chaining is the library's (pipeline.run_steps): the same steps, checks and
        # ledger charges as train, sample, evaluate and audit one by one.
        done = pipeline.run_steps(
            args.id, run_dir, epsilon=args.epsilon, private=not args.non_private,
            seed=args.seed, max_rows=args.max_rows, n_shadows=args.shadows,
            policy_path=Path(args.policy) if args.policy else None, paths=paths,
            progress=training.epoch, mapper=shadows.mapper if shadows.bars else None,
            on_step=step, **config)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "training": done.training,
                          "synthetic": str(done.synthetic), "utility": done.utility,
                          "audit": done.audit, "gate": done.gate}, indent=2, default=str))
        return 0
    _print_training(args.id, done.training, run_dir)
    print(f"synthetic table written to {done.synthetic}")
    _print_utility(done.utility)
    _print_audit(done.audit, run_dir)
    for line in _run_next_steps(args.id, done):
        print(line)
    return 0


def _run_next_steps(dataset: str, done: Any) -> list[str]:
    """What a steward does with the run: register a releasable candidate, or why not."""
    from pulsesynth import pipeline
    from pulsesynth.artifacts import RunDir

    gate, training = done.gate, done.training
    cli = cli_command()
    lines = ["Next steps:"]
    if not training.get("private"):
        lines.append("  a non-private run is never released: run again without --non-private")
    elif training.get("seed_source") != "secret":
        lines.append("  a seeded run is never released: run again without --seed")
    elif gate.get("label") == "blocked":
        lines.append(f"  blocked: see the advice above; a new run charges the ledger again "
                     f"(`{cli} budget show {dataset}`)")
    else:
        candidate = RunDir(done.run_dir).candidate.path
        model = pipeline.model_hash(done.run_dir)
        lines += [
            f"  {cli} releases register {candidate} --dataset {dataset} "
            f"--model-id {model}",
            f"  {cli} releases approve ID --steward NAME --note TEXT",
            f"  {cli} publish",
        ]
    return lines


def _release_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pulsesynth import pipeline
    from pulsesynth.governance.candidate import register_candidate
    from pulsesynth.paths import Paths
    from pulsesynth.release_kinds import MODEL

    run_dir = Path(args.run)
    run = pipeline.load_run(run_dir)
    out = pipeline.model_candidate(run_dir, Path(args.policy) if args.policy else None)
    rel = register_candidate(Paths.default(), run["dataset"], out,
                             model_id=pipeline.model_hash(run_dir), kind=MODEL.name, actor="cli")
    if args.json:
        print(json.dumps(rel.to_dict() | {"candidate_dir": str(out)}, indent=2))
    else:
        print(f"{rel.candidate_id}  {rel.catalogue_id}  {rel.status}  {rel.label}")
        print(f"gate: {rel.gate.get('label')} — {rel.gate.get('reason', '')}", file=sys.stderr)
    return 0


def _sample_release(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pulsesynth.synth.release import load_release, read_release_files, sample_rows

    synth = load_release(read_release_files(Path(args.release)))
    table = sample_rows(synth, args.rows, args.seed)
    if not args.out:
        sys.stdout.write(table.to_csv(index=False, lineterminator="\n"))
        return 0
    out = Path(args.out)
    if out.suffix.lower() == ".parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False, lineterminator="\n")
    print(f"{len(table)} synthetic rows (seed {args.seed}) written to {out}", file=sys.stderr)
    return 0


@types.light
def _schemas_sync(args: argparse.Namespace) -> int:
    from pulsesynth.paths import Paths
    from pulsesynth.schema import load_schema
    from pulsesynth.validation import write_suite

    for path in sorted(Paths.default().schemas.glob("*.yaml")):
        print(write_suite(load_schema(path)))
    return 0


@types.light
def _schemas_check(args: argparse.Namespace) -> int:
    from pulsesynth.paths import Paths
    from pulsesynth.schema import load_schema

    for path in sorted(Paths.default().schemas.glob("*.yaml")):
        schema = load_schema(path)
        print(f"{path}: ok ({len(schema.columns)} columns, hash {schema.hash[:12]})")
    return 0


# --- helpers -----------------------------------------------------------------------------


def _validation_json(report: Any) -> dict[str, Any]:
    data = report.to_dict()
    return {"success": data["success"], "failed": data["failed"], "rows": data["rows"],
            "dataset": data["dataset"]}


if __name__ == "__main__":
    sys.exit(main())
