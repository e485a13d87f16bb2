"""Governance sub-commands of ``pulsesynth``: budget, releases, publish, tokens, grants,
portal.

Wire into ``pulsesynth/cli.py`` with ``add_governance_commands(sub)``. Handlers return an
exit code and raise :class:`pulsesynth.errors.PulseSynthError` subclasses for clean errors.
The installation root is ``Paths.default()`` (``PULSESYNTH_ROOT`` or the checkout).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pulsesynth import cli_types as types
from pulsesynth.command import cli_command
from pulsesynth.paths import Paths
from pulsesynth.release_kinds import KINDS, TABLE
from pulsesynth.reports import three_decimals


def add_governance_commands(sub: Any) -> None:
    """Add ``budget``, ``releases``, ``publish``, ``tokens`` and ``portal`` to a subparsers."""
    bud = sub.add_parser("budget", help="privacy budget spent / remaining per dataset; a "
                                        "steward's change of a dataset's budget")
    bud.add_argument("--json", action="store_true", help="print JSON")
    bud.set_defaults(handler=types.list_actions(bud, then=_budget), id=None)
    bud_sub = bud.add_subparsers(metavar="ACTION")
    show = bud_sub.add_parser("show", help="spent / remaining ε (default action)")
    show.add_argument("id", nargs="?", type=types.dataset_id,
                      help="one dataset (default: every declared schema)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_budget)
    bset = bud_sub.add_parser("set", help="a steward's decision on a dataset's lifetime or "
                                          "per-run ε (in the audit log)")
    bset.add_argument("id", type=types.dataset_id, help="dataset id")
    bset.add_argument("--lifetime", type=types.lifetime_epsilon,
                      help="new lifetime ε (above 0, at most the public ceiling 100)")
    bset.add_argument("--per-run", type=types.run_epsilon,
                      help="new per-run ε (above 0, at most the public ceiling 10)")
    bset.add_argument("--steward", required=True, help="who decides")
    bset.add_argument("--note", required=True, help="why (kept in the audit log)")
    bset.set_defaults(handler=_budget_set)

    rel = sub.add_parser("releases", help="release candidates and steward decisions")
    rel.set_defaults(handler=types.list_actions(rel))
    rel_sub = rel.add_subparsers(metavar="ACTION")
    lst = rel_sub.add_parser("list", help="releases, newest first")
    lst.add_argument("--dataset", type=types.dataset_id, help="only this dataset")
    lst.add_argument("--status", help="only this status: candidate|approved|rejected|"
                                      "published|superseded|withdrawn|blocked")
    lst.add_argument("--kind", choices=KINDS, help="only this kind of release")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=_releases_list)
    show = rel_sub.add_parser("show", help="one release with its gate and decisions")
    show.add_argument("id", help="candidate id (or a unique prefix of at least 6 characters)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_releases_show)
    reg = rel_sub.add_parser("register", help="register a candidate directory")
    reg.add_argument("dir", help="the candidate directory (e.g. <run>/candidate)")
    reg.add_argument("--dataset", required=True, type=types.dataset_id,
                     help="dataset id the candidate was made from")
    reg.add_argument("--model-id", required=True,
                     help="hash of the model that made it (privacy.json model_hash)")
    reg.add_argument("--title", help="title on the portal (default: the catalog's)")
    reg.add_argument("--kind", choices=KINDS, default=TABLE.name,
                     help="what the candidate releases: a synthetic table (default), a DP "
                          "classifier, or the DP generative model (at most confidential)")
    reg.set_defaults(handler=_releases_register)
    for action, note_required, helptext in (
            ("approve", False, "approve a candidate (binds to its content hash)"),
            ("reject", True, "reject a candidate (a note is required)"),
            ("withdraw", True, "withdraw a published release from the portal (note required)")):
        p = rel_sub.add_parser(action, help=helptext)
        p.add_argument("id", help="candidate id (or a unique prefix of at least 6 "
                                  "characters)")
        p.add_argument("--steward", required=True, help="who decides (in the audit log)")
        p.add_argument("--role", default="data steward",
                       help="the decider's role (default: data steward)")
        p.add_argument("--note", required=note_required, default="",
                       help="why (kept in the audit log)"
                            + ("; required" if note_required else ""))
        p.set_defaults(handler=_decision, action=action)

    pub = sub.add_parser("publish", help="publish every approved candidate to published/")
    pub.add_argument("--json", action="store_true", help="print the published releases as JSON")
    pub.set_defaults(handler=_publish)

    tok = sub.add_parser("tokens", help="entity access tokens for confidential releases")
    tok.set_defaults(handler=types.list_actions(tok))
    tok_sub = tok.add_subparsers(metavar="ACTION")
    create = tok_sub.add_parser("create", help="create a token (printed once)")
    create.add_argument("--entity", required=True,
                        help="who holds the token (an organisation or person)")
    create.set_defaults(handler=_tokens_create)
    revoke = tok_sub.add_parser("revoke", help="revoke an entity's tokens (or one by id)")
    revoke.add_argument("--entity", help="revoke every token of this entity")
    revoke.add_argument("--id", type=types.positive_count,
                        help="revoke only this token (its id from `tokens list`)")
    revoke.set_defaults(handler=_tokens_revoke)
    tlist = tok_sub.add_parser("list", help="tokens (metadata only; never the tokens)")
    tlist.set_defaults(handler=_tokens_list)

    grants = sub.add_parser("grants", help="which entity's tokens see which dataset's "
                                           "confidential releases (a steward's decision)")
    grants.set_defaults(handler=types.list_actions(grants))
    grants_sub = grants.add_subparsers(metavar="ACTION")
    gadd = grants_sub.add_parser("add", help="grant an entity a dataset's confidential "
                                             "releases (table, classifier, model)")
    gadd.add_argument("entity", help="the entity named on its tokens")
    gadd.add_argument("dataset", help="dataset id (e.g. patient_tests)")
    gadd.add_argument("--steward", required=True, help="who decides")
    gadd.add_argument("--note", default="", help="why (kept in the audit log)")
    gadd.set_defaults(handler=_grants_add)
    gremove = grants_sub.add_parser("remove", help="remove an entity's grant on a dataset "
                                                   "(from its next request)")
    gremove.add_argument("entity", help="the entity named on its tokens")
    gremove.add_argument("dataset", help="dataset id")
    gremove.add_argument("--steward", default="cli", help="who decides (in the audit log)")
    gremove.add_argument("--note", default="", help="why (kept in the audit log)")
    gremove.set_defaults(handler=_grants_remove)
    glist = grants_sub.add_parser("list", help="current grants (of one entity, or all)")
    glist.add_argument("entity", nargs="?", help="one entity (default: every entity)")
    glist.add_argument("--json", action="store_true", help="print JSON")
    glist.set_defaults(handler=_grants_list)

    portal = sub.add_parser("portal", help="serve the synthetic open portal")
    portal.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    portal.add_argument("--port", type=types.port, default=8080,
                        help="port to listen on (default 8080)")
    portal.add_argument("--sample-max-rows", type=types.sample_rows,
                        help="most rows per model sample request (default 10000)")
    portal.add_argument("--sample-rate-limit", type=types.positive_count,
                        help="sample requests per entity per window (default 30)")
    portal.add_argument("--sample-rate-window", type=types.positive_count,
                        help="rate-limit window in seconds (default 60)")
    portal.set_defaults(handler=_portal)


def _paths() -> Paths:
    return Paths.default()


@types.light
def _budget(args: argparse.Namespace) -> int:
    from pulsesynth.errors import CatalogError
    from pulsesynth.governance.ledger import Ledger
    from pulsesynth.schema import load_schema

    paths = _paths()
    files = sorted(paths.schemas.glob("*.yaml"))
    if args.id:
        files = [f for f in files if f.stem == args.id]
        if not files:
            raise CatalogError(f"{args.id}: no declared schema {paths.schemas / args.id}.yaml")
    ledger = Ledger(paths)
    rows = []
    for f in files:
        schema = load_schema(f)
        governed = ledger.governed(schema.id)  # a steward's decision wins over the file
        rows.append(ledger.summary(
            schema.id, governed.lifetime_epsilon if governed else schema.privacy.lifetime_epsilon,
            governed.per_run_epsilon if governed else schema.privacy.epsilon))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'dataset':20s} {'spent ε':>8s} {'lifetime ε':>10s} {'remaining ε':>11s} "
          f"{'ε/run':>6s} {'retrains left':>13s} {'spent δ':>9s}")
    for r in rows:
        print(f"{r['dataset']:20s} {r['spent_epsilon']:>8.4g} {r['lifetime_epsilon']:>10.4g} "
              f"{r['remaining_epsilon']:>11.4g} {r['per_run_epsilon']:>6.4g} "
              f"{r['retrains_left']:>13d} {r['spent_delta']:>9.3g}")
    print("composition: basic (ε and δ summed over every training run)")
    return 0


@types.light
def _budget_set(args: argparse.Namespace) -> int:
    from pulsesynth.governance.errors import LedgerError
    from pulsesynth.governance.ledger import Budget, Ledger
    from pulsesynth.warehouse import Warehouse

    paths = _paths()
    if args.lifetime is None and args.per_run is None:
        raise LedgerError(f"{args.id}: give --lifetime and/or --per-run")
    declared = Budget.declared(Warehouse(paths).schema(args.id))
    after = Ledger(paths).set_budget(args.id, args.steward, args.note,
                                     lifetime_epsilon=args.lifetime,
                                     per_run_epsilon=args.per_run, declared=declared)
    print(f"{args.id}: lifetime ε {after.lifetime_epsilon:g}, per-run ε "
          f"{after.per_run_epsilon:g} (decided by {args.steward}; in the audit log). Declare "
          f"the same values in the dataset's schema file.")
    return 0


@types.light
def _releases_list(args: argparse.Namespace) -> int:
    from pulsesynth.governance.record import list_releases

    releases = list_releases(_paths(), args.dataset, args.status, args.kind)
    if args.json:
        print(json.dumps([r.to_dict() for r in releases], indent=2))
        return 0
    print(f"{'id':12s}  {'dataset':20s} {'kind':10s} {'status':10s} {'label':12s} "
          f"{'version':7s} created")
    for r in releases:
        print(f"{r.candidate_id[:12]}  {r.dataset:20s} {r.kind:10s} {r.status:10s} "
              f"{r.label:12s} {r.version or '-':7s} {r.created_at}")
    return 0


@types.light
def _releases_show(args: argparse.Namespace) -> int:
    from pulsesynth.advice import budget_status, unblock_advice
    from pulsesynth.governance.record import approvals, get_release

    paths = _paths()
    rel = get_release(paths, args.id)
    decisions = approvals(paths, rel.candidate_id)
    candidate_dir = paths.resolve(rel.candidate_dir)
    advice = unblock_advice(rel.gate, budget_status(paths, rel.dataset))
    if args.json:
        print(json.dumps(rel.to_dict() | {"decisions": decisions,
                                          "reports": _candidate_reports(candidate_dir),
                                          "advice": advice}, indent=2, default=str))
        return 0
    for key, value in rel.to_dict().items():
        if key != "gate":
            print(f"{key:14s} {value}")
    _say("gate", f"{rel.gate.get('label')}: {rel.gate.get('reason', '')}")
    for c in rel.gate.get("checks", []):
        _say("", c.get("message") or _check_line(c), item=True)
    for i, line in enumerate(advice):
        _say("" if i else "advice", line.strip())
    _print_candidate_reports(candidate_dir, rel.kind)
    for d in decisions:
        print(f"decision       {d['decided_at']} {d['decision']} by {d['steward']} "
              f"({d['role']}): {d['note']}")
    return 0


def _candidate_reports(candidate_dir: Any) -> dict[str, Any]:
    """The candidate's audit verdict and utility summary (steward figures), for JSON."""
    from pulsesynth.artifacts import CandidateDir

    candidate = CandidateDir(candidate_dir)
    out: dict[str, Any] = {"audit_md": str(candidate.audit_md)}
    try:
        out["audit_verdict"] = candidate.read_audit().get("verdict")
    except (OSError, ValueError):
        out["audit_verdict"] = None
    try:
        out["utility"] = _utility_summary(candidate.read_utility())
    except (OSError, ValueError):
        out["utility"] = None
    return out


def _utility_summary(utility: Any) -> dict[str, Any]:
    """Accuracy figures only: TSTR beside TRTR per classifier, or a classifier's test
    accuracy, the majority baseline, and the column-shape / pair-trend scores."""
    out: dict[str, Any] = {"target": utility.get("target"),
                           "majority_accuracy": utility.get("majority_accuracy")}
    if utility.get("tstr") and utility.get("trtr"):
        out["accuracy"] = {clf: {"tstr": utility["tstr"][clf].get("accuracy"),
                                 "trtr": utility["trtr"][clf].get("accuracy")}
                           for clf in utility.get("classifiers") or utility["tstr"]
                           if clf in utility["tstr"] and clf in utility["trtr"]}
    test = utility.get("test")
    if isinstance(test, dict):
        out["test_accuracy"] = test.get("accuracy")
        out["majority_accuracy"] = test.get("majority_accuracy", out["majority_accuracy"])
    for key in ("column_shapes", "pair_trends"):
        if isinstance(utility.get(key), dict):
            out[key] = utility[key].get("mean")
    return out


def _say(key: str, text: str, *, item: bool = False) -> None:
    """``key`` in a 14-character column, then ``text`` wrapped at 100 columns (``item``: an
    indented list item instead)."""
    import textwrap

    first, rest = ("  ", "    ") if item else (f"{key:14s} ", " " * 15)
    print(textwrap.fill(text, 100, initial_indent=first, subsequent_indent=rest,
                        break_long_words=False, break_on_hyphens=False))


def _print_candidate_reports(candidate_dir: Any, kind: str) -> None:
    """The steward's view: the DP figures that were published, the audit verdict, the
    utility summary, the fit-for-purpose verdict, and where the exact (private) audit
    report is."""
    from pulsesynth.artifacts import CandidateDir
    from pulsesynth.errors import SchemaError
    from pulsesynth.fitness import verdict
    from pulsesynth.schema import read_yaml

    candidate = CandidateDir(candidate_dir)
    reports = _candidate_reports(candidate_dir)
    v = reports["audit_verdict"]
    if v:
        low, high = (v.get("auc_ci_corrected") or [None, None])[:2]
        _say("audit", f"strongest attack {v.get('attack')} on {v.get('targets')} targets: "
             f"AUC {three_decimals(v.get('auc'))} "
             f"({three_decimals(low)}–{three_decimals(high)}, corrected), "
             + ("DETECTS membership" if v.get("detected") else "no membership signal"))
    u = reports["utility"]
    if u:
        if u.get("accuracy"):
            what = f"predicting {u['target']}: " if u.get("target") else ""
            _say("utility", f"{what}majority baseline {three_decimals(u.get('majority_accuracy'))}")
            for clf, acc in u["accuracy"].items():
                print(f"  {clf:14s} trained on synthetic (TSTR) {three_decimals(acc['tstr'])}, "
                      f"on real (TRTR) {three_decimals(acc['trtr'])}")
        elif "test_accuracy" in u:
            print(f"{'utility':14s} test accuracy {three_decimals(u.get('test_accuracy'))} "
                  f"(majority baseline {three_decimals(u.get('majority_accuracy'))})")
        if "column_shapes" in u or "pair_trends" in u:
            print(f"  column shapes {three_decimals(u.get('column_shapes'))}, pair trends "
                  f"{three_decimals(u.get('pair_trends'))} (1 = same as the real table)")
    try:
        stats = candidate.read_release_stats()
        declared = read_yaml(candidate.schema_yaml, "schema file")
    except (OSError, ValueError, SchemaError):
        stats, declared = None, None
    if stats is not None:
        for name, s in (stats.get("statistics") or {}).items():
            test = (f" (one-sided p = {s['p_value']:.2g})" if s.get("p_value") is not None
                    else "")
            print(f"  DP {name}: {s['value']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
                  f"{test}")
        fit = verdict(stats, (declared or {}).get("target"), kind)
        if fit["verdict"]:
            _say("fit", f"{fit['verdict']}: {(fit['suitable'] + fit['not_suitable'])[0]}")
    report = candidate.audit_md
    print(f"{'audit report':14s} {report}"
          + (" (exact figures, steward only)" if report.is_file() else " (missing)"))


def _check_line(c: dict[str, Any]) -> str:
    what = f"{c.get('name')}[{c['subject']}]" if c.get("subject") else c.get("name")
    verdict = "ok" if c.get("passed") else "FAILS"
    limit = "must be at least" if c.get("at_least") else "limit"
    return (f"{c.get('label')}: {what} = {c.get('value')} ({limit} {c.get('threshold')}) "
            f"{verdict}")


@types.light
def _releases_register(args: argparse.Namespace) -> int:
    from pulsesynth.governance.candidate import register_candidate

    rel = register_candidate(_paths(), args.dataset, args.dir, args.model_id, args.title,
                             kind=args.kind, actor="cli")
    print(f"{rel.candidate_id}  {rel.catalogue_id}  {rel.kind}  {rel.status}  {rel.label}")
    return 0


@types.light
def _decision(args: argparse.Namespace) -> int:
    from pulsesynth.governance import lifecycle

    paths = _paths()
    if args.action == "approve":
        rel = lifecycle.approve(paths, args.id, args.steward, args.role, args.note)
    elif args.action == "reject":
        rel = lifecycle.reject(paths, args.id, args.steward, args.note, args.role)
    else:
        rel = lifecycle.withdraw(paths, args.id, args.steward, args.note, args.role)
    print(f"{rel.candidate_id[:12]}  {rel.catalogue_id}  {rel.status}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from pulsesynth.governance.publisher import publish_approved

    done = publish_approved(_paths(), actor="cli")
    if args.json:
        print(json.dumps([r.to_dict() for r in done], indent=2))
    elif not done:
        print("nothing to publish (no approved candidates)")
    for r in done if not args.json else []:
        print(f"published {r.catalogue_id} {r.version} ({r.label}) from {r.candidate_id[:12]}")
    return 0


@types.light
def _tokens_create(args: argparse.Namespace) -> int:
    from pulsesynth.governance.grants import list_grants
    from pulsesynth.governance.tokens import create_token

    paths = _paths()
    token, info = create_token(paths, args.entity, actor="cli")
    print(f"token {info.id} for {info.entity} (shown once; store it now):", file=sys.stderr)
    print(token)
    if not list_grants(paths, info.entity):
        # A token alone shows only open releases: say so, or the holder sees "nothing new".
        print(f"{info.entity} has no grants yet: it sees open releases only "
              f"({cli_command()} grants add {info.entity!r} DATASET --steward NAME)",
              file=sys.stderr)
    # How the token is used, so nobody mails a link with it (the portal refuses ?token=).
    print("the entity signs in at the portal's /signin page (API clients send "
          "Authorization: Bearer TOKEN); never put it in a link", file=sys.stderr)
    return 0


@types.light
def _tokens_revoke(args: argparse.Namespace) -> int:
    from pulsesynth.governance.tokens import revoke_tokens

    for info in revoke_tokens(_paths(), args.entity, args.id, actor="cli"):
        print(f"revoked token {info.id} of {info.entity}")
    return 0


@types.light
def _tokens_list(args: argparse.Namespace) -> int:
    from pulsesynth.governance.tokens import list_tokens

    for info in list_tokens(_paths()):
        print(f"{info.id:4d}  {info.entity:30s} created {info.created_at}  "
              f"{'revoked ' + info.revoked_at if info.revoked_at else 'active'}")
    return 0


@types.light
def _grants_add(args: argparse.Namespace) -> int:
    from pulsesynth.governance.grants import add_grant
    from pulsesynth.governance.record import list_releases

    paths = _paths()
    grant = add_grant(paths, args.entity, args.dataset, steward=args.steward, note=args.note)
    print(f"granted {grant.entity} the confidential releases of {grant.dataset} "
          f"(decided by {grant.steward}; in the audit log)")
    if not list_releases(paths, grant.dataset):
        print(f"note: no release of {grant.dataset} is registered yet; the grant applies "
              "to those published later", file=sys.stderr)
    return 0


@types.light
def _grants_remove(args: argparse.Namespace) -> int:
    from pulsesynth.governance.grants import remove_grant

    grant = remove_grant(_paths(), args.entity, args.dataset, actor=args.steward,
                         note=args.note)
    print(f"removed {grant.entity}'s grant on {grant.dataset} (in the audit log)")
    return 0


@types.light
def _grants_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pulsesynth.governance.grants import list_grants

    grants = list_grants(_paths(), args.entity)
    if args.json:
        print(json.dumps([asdict(g) for g in grants], indent=2))
        return 0
    if not grants:
        print("no grants" + (f" for {args.entity}" if args.entity else ""))
    for g in grants:
        print(f"{g.entity:30s} {g.dataset:24s} by {g.steward} at {g.granted_at}"
              + (f": {g.note}" if g.note else ""))
    return 0


def _portal(args: argparse.Namespace) -> int:
    import uvicorn

    from pulsesynth.portal.app import create_app
    from pulsesynth.portal.sampling import SampleLimits

    base = SampleLimits.from_env()
    max_rows = args.sample_max_rows or base.max_rows
    limits = SampleLimits(max_rows=max_rows, default_rows=min(base.default_rows, max_rows),
                          rate_limit=args.sample_rate_limit or base.rate_limit,
                          window_s=args.sample_rate_window or base.window_s)
    uvicorn.run(create_app(_paths(), limits=limits), host=args.host, port=args.port,
                log_level="info", server_header=False)
    return 0
