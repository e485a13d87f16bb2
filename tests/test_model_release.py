"""Release kinds beyond tables: DP classifiers and the DP-VAE itself (mechanisms 1 and 2).

Same guarantees as tables: content-addressed candidates, hash-bound approvals, tamper
refusal, atomic publication, index rewrite, withdrawal; plus the kind cap (a model is at
most confidential), the schema migration that introduced kinds, the synthesizer's release
files and the pipeline/CLI that build a model candidate from a run.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from governance_fixtures import make_candidate, release_stats
from model_fixtures import (
    FAST,
    fake_real_table,
    make_classifier_candidate,
    make_model_candidate,
    model_schema,
    model_schema_raw,
    tiny_model,
)

from pulsesynth import cli, pipeline
from pulsesynth.artifacts import RunDir
from pulsesynth.errors import SchemaError
from pulsesynth.frames import conform
from pulsesynth.gate import DEFAULT_POLICY, PolicyError, evaluate_gate, load_policy
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import SCHEMA_VERSION, audit_events, connect, db_path
from pulsesynth.governance.errors import (
    CandidateError,
    PublishError,
    ReleaseStateError,
    TamperedCandidate,
)
from pulsesynth.governance.ledger import Ledger
from pulsesynth.governance.lifecycle import approve, withdraw
from pulsesynth.governance.publishable import unlisted_fields
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.record import catalogue_id, get_release, list_releases
from pulsesynth.paths import Paths
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.validation import validate
from pulsesynth.warehouse import Warehouse

MODEL_FILES = {"weights.pt", "model.json", "schema.yaml", "modelcard.json", "modelcard.md"}


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


def _index(paths: Paths) -> list[dict]:
    return json.loads((paths.published / "index.json").read_text())["dataset"]


def _passing_open() -> tuple[dict, dict]:
    privacy = {"private": True, "epsilon": 0.9}
    stats = {"private": True, "statistics": {
        "max_attack_advantage": {"value": 0.01, "ci_high": 0.05, "attacks": ["model_mia"]},
        "exact_match_excess": {"value": 0.0, "ci_high": 0.02, "p_value": 0.5}}}
    return privacy, stats


# --- the schema migration ------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE privacy_ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL,
    run_id TEXT NOT NULL, snapshot_id TEXT NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL,
    accountant TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, charged_at TEXT NOT NULL);
CREATE TABLE releases (candidate_id TEXT PRIMARY KEY, dataset TEXT NOT NULL, version TEXT,
    model_id TEXT NOT NULL, title TEXT NOT NULL, label TEXT NOT NULL, gate_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate', 'approved', 'rejected', 'published',
                                           'superseded', 'withdrawn', 'blocked')),
    candidate_dir TEXT NOT NULL, created_at TEXT NOT NULL, published_dir TEXT,
    published_at TEXT, UNIQUE (dataset, version));
CREATE INDEX releases_dataset ON releases (dataset, status);
CREATE TABLE approvals (id INTEGER PRIMARY KEY AUTOINCREMENT,
    candidate_id TEXT NOT NULL REFERENCES releases (candidate_id), steward TEXT NOT NULL,
    role TEXT NOT NULL, decision TEXT NOT NULL, note TEXT NOT NULL, decided_at TEXT NOT NULL,
    candidate_hash TEXT NOT NULL);
CREATE TABLE access_tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
PRAGMA user_version = 1;
"""


def test_v1_database_migrates_keeping_rows_with_kind_table(paths: Paths) -> None:
    path = db_path(paths)
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    old.execute("INSERT INTO releases VALUES ('ab' || hex(randomblob(31)), 'taxi_trips', 'v1', "
                "'m1', 'Taxi trips', 'open', '{\"label\": \"open\"}', 'published', "
                "'state/c/run1', '2026-01-01T00:00:00+00:00', 'published/taxi_trips/v1', "
                "'2026-01-02T00:00:00+00:00')")
    cid = old.execute("SELECT candidate_id FROM releases").fetchone()[0]
    old.execute("INSERT INTO approvals (candidate_id, steward, role, decision, note, "
                "decided_at, candidate_hash) VALUES (?, 'alice', 'data steward', 'approved', "
                "'ok', '2026-01-01T00:00:00+00:00', 'h')", (cid,))
    old.execute("INSERT INTO audit_log (time, actor, action, subject, detail) VALUES "
                "('2026-01-01T00:00:00+00:00', 'alice', 'release.approved', ?, '{}')", (cid,))
    old.commit()
    old.close()

    conn = connect(paths)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        # versions 3 and 4 add the secret per-dataset salts and the governed budgets
        # (empty after a migration)
        for table in ("dataset_secrets", "budgets"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
        [row] = conn.execute("SELECT * FROM releases").fetchall()
        assert (row["candidate_id"], row["kind"], row["version"], row["status"]) == (
            cid, "table", "v1", "published")
        assert conn.execute("SELECT count(*) FROM approvals").fetchone()[0] == 1
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
        with pytest.raises(sqlite3.IntegrityError):  # the approvals FK still holds
            conn.execute("INSERT INTO approvals (candidate_id, steward, role, decision, note, "
                         "decided_at, candidate_hash) VALUES ('nope', 'a', 'r', 'approved', "
                         "'', 't', 'h')")
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'releases'").fetchone()[0]
        assert "UNIQUE (dataset, kind, version)" in sql
    finally:
        conn.close()
    connect(paths).close()  # opening again is a no-op
    rel = get_release(paths, cid[:10])
    assert rel.kind == "table" and rel.catalogue_id == "taxi_trips"
    # The migrated store takes a model release of the same dataset at its own v1.
    conn = connect(paths)
    try:
        conn.execute("INSERT INTO releases (candidate_id, dataset, version, model_id, title, "
                     "label, gate_json, status, candidate_dir, created_at, kind) VALUES "
                     "('cd', 'taxi_trips', 'v1', 'm', 't', 'confidential', '{}', 'published', "
                     "'x', 'now', 'model')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO releases (candidate_id, dataset, version, model_id, "
                         "title, label, gate_json, status, candidate_dir, created_at, kind) "
                         "VALUES ('ce', 'taxi_trips', 'v1', 'm', 't', 'open', '{}', "
                         "'published', 'x', 'now', 'table')")
    finally:
        conn.close()


# --- the gate and the kind cap -------------------------------------------------------------


def test_model_is_capped_at_confidential_even_when_open_thresholds_pass() -> None:
    policy = load_policy()
    assert policy.kinds == {"table": "open", "classifier": "open", "model": "confidential"}
    privacy, audit = _passing_open()
    assert evaluate_gate(policy, privacy, audit).label == "open"
    assert evaluate_gate(policy, privacy, audit, kind="classifier").label == "open"
    result = evaluate_gate(policy, privacy, audit, kind="model")
    assert result.label == "confidential" and result.releasable
    assert result.capped_from == "open" and "capped at confidential" in result.reason
    assert all(c.passed for c in result.checks if c.label == "open")
    gate = result.to_dict()
    assert (gate["kind"], gate["max_label"], gate["capped_from"]) == (
        "model", "confidential", "open")
    # A plain mapping of thresholds (no kinds section) caps a model all the same.
    assert evaluate_gate(dict(policy), privacy, audit, kind="model").label == "confidential"
    # The exact-match excess applies to released rows only: a model or classifier needs
    # none; a table does.
    no_rows = {"private": True, "statistics": {
        "max_attack_advantage": audit["statistics"]["max_attack_advantage"]}}
    assert evaluate_gate(policy, privacy, no_rows, kind="model").label == "confidential"
    assert evaluate_gate(policy, privacy, no_rows, kind="classifier").label == "open"
    assert evaluate_gate(policy, privacy, no_rows).label == "blocked"
    assert not any(c.name == "max_exact_match_excess"
                   for c in evaluate_gate(policy, privacy, audit, kind="model").checks)
    # ε and attacks still apply to every kind.
    leaky = json.loads(json.dumps(no_rows))
    leaky["statistics"]["max_attack_advantage"]["value"] = 0.2
    blocked = evaluate_gate(policy, privacy, leaky, kind="model")
    assert blocked.label == "blocked" and "max_attack_advantage" in blocked.reason
    assert evaluate_gate(policy, {"private": True, "epsilon": 3.5}, no_rows,
                         kind="classifier").label == "blocked"
    with pytest.raises(PolicyError, match="unknown release kind"):
        evaluate_gate(policy, privacy, audit, kind="weights")


def test_non_dp_model_is_blocked_and_never_exported(paths: Paths) -> None:
    privacy, audit = _passing_open()
    result = evaluate_gate(load_policy(), privacy | {"private": False}, audit, kind="model")
    assert result.label == "blocked" and "non-private" in result.reason
    nodp = DPVAESynthesizer(model_schema(), private=False, seed=0, **FAST).fit(
        fake_real_table(200))
    with pytest.raises(ValueError, match="non-private"):
        nodp.export_release(paths.root / "nope")
    assert not (paths.root / "nope").exists()
    # A candidate whose privacy report says non-DP registers as blocked; approval refuses.
    cand = make_model_candidate(paths, private=False)
    assert json.loads((cand / "gate.json").read_text())["label"] == "blocked"
    rel = register_candidate(paths, "taxi_trips", cand, "m-nodp", kind="model")
    assert rel.status == "blocked"
    with pytest.raises(ReleaseStateError, match="blocked"):
        approve(paths, rel.candidate_id, "alice")


def test_policy_cannot_lift_the_model_cap(tmp_path: Path) -> None:
    base = yaml.safe_load(DEFAULT_POLICY.read_text())
    bad = tmp_path / "policy.yaml"
    bad.write_text(yaml.safe_dump(base | {"kinds": {"model": {"max_label": "open"}}},
                                  sort_keys=False))
    with pytest.raises(PolicyError, match="kinds.model.max_label: a released model is allowed "
                                          "at most at confidential"):
        load_policy(bad)
    bad.write_text(yaml.safe_dump(base | {"kinds": {"weights": {"max_label": "open"}}},
                                  sort_keys=False))
    with pytest.raises(PolicyError, match="kinds.weights: unknown release kind"):
        load_policy(bad)
    stricter = tmp_path / "strict.yaml"
    stricter.write_text(yaml.safe_dump(base | {"kinds": {"classifier": {
        "max_label": "confidential"}}}, sort_keys=False))
    privacy, audit = _passing_open()
    result = evaluate_gate(load_policy(stricter), privacy, audit, kind="classifier")
    assert (result.label, result.capped_from) == ("confidential", "open")
    no_section = tmp_path / "plain.yaml"
    no_section.write_text(yaml.safe_dump({"labels": base["labels"]}, sort_keys=False))
    assert evaluate_gate(load_policy(no_section), privacy, audit, kind="model").label == (
        "confidential")


# --- the synthesizer's release files -------------------------------------------------------


def test_export_release_round_trip_is_value_free_and_schema_bound(tmp_path: Path) -> None:
    synth = tiny_model()
    out = synth.export_release(tmp_path / "rel")
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "weights.pt"]
    config = json.loads((out / "model.json").read_text())
    assert config["kind"] == "model" and config["schema_hash"] == synth.schema.hash
    assert config["features"] == ["tip", "distance", "company", "hour"]
    text = (out / "model.json").read_text()
    for forbidden in ("history", "training_report", "train_rows", "loss", '"seed"',
                      "rows_trained", "snapshot_id"):
        assert forbidden not in text, forbidden
    state = torch.load(out / "weights.pt", weights_only=True)
    assert set(state) == set(synth.model.state_dict())
    again = DPVAESynthesizer.from_release(out, synth.schema)
    pd.testing.assert_frame_equal(again.sample(200, seed=5), synth.sample(200, seed=5))
    from_bytes = DPVAESynthesizer.from_release(
        {n: (out / n).read_bytes() for n in ("weights.pt", "model.json")}, synth.schema)
    pd.testing.assert_frame_equal(from_bytes.sample(50, seed=1), synth.sample(50, seed=1))
    # Exporting again writes the same bytes (the candidate id is content-addressed).
    synth.export_release(tmp_path / "rel2")
    for name in ("weights.pt", "model.json"):
        assert (tmp_path / "rel2" / name).read_bytes() == (out / name).read_bytes()
    other = model_schema_raw() | {"description": "another declaration"}
    from pulsesynth.schema import parse_schema

    with pytest.raises(SchemaError, match="schema hash"):
        DPVAESynthesizer.from_release(out, parse_schema(other))
    # weights_only=True: a pickle carrying an object is refused.
    (out / "weights.pt").write_bytes(pickle.dumps({"x": Path("/etc/passwd")}, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        DPVAESynthesizer.from_release(out, synth.schema)


# --- registration, approval, atomic publication --------------------------------------------


def test_model_release_registers_approves_and_publishes_atomically(paths: Paths) -> None:
    table = register_candidate(paths, "taxi_trips", make_candidate(paths), "m-table")
    approve(paths, table.candidate_id, "alice")
    cand = make_model_candidate(paths)
    rel = register_candidate(paths, "taxi_trips", cand, "m-model", kind="model")
    assert (rel.kind, rel.label, rel.status, rel.catalogue_id) == (
        "model", "confidential", "candidate", "taxi_trips_model")
    assert rel.gate["capped_from"] == "open"
    again = register_candidate(paths, "taxi_trips", cand, "m-model", kind="model")
    assert again.candidate_id == rel.candidate_id and len(list_releases(paths)) == 2
    assert [r.kind for r in list_releases(paths, kind="model")] == ["model"]
    # The same files as a table would not even read: a model candidate has no table.
    with pytest.raises(CandidateError, match="lacks synthetic.parquet"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="table")
    approve(paths, rel.candidate_id, "bob", note="model card reviewed")
    done = publish_approved(paths)
    assert sorted((r.catalogue_id, r.version) for r in done) == [
        ("taxi_trips", "v1"), ("taxi_trips_model", "v1")]
    v1 = paths.published / "taxi_trips_model" / "v1"
    assert {p.name for p in v1.iterdir()} == MODEL_FILES
    assert (v1 / "weights.pt").read_bytes() == (cand / "weights.pt").read_bytes()
    assert (v1 / "model.json").read_bytes() == (cand / "model.json").read_bytes()
    card = json.loads((v1 / "modelcard.json").read_text())
    assert (card["id"], card["dataset"], card["kind"], card["label"]) == (
        "taxi_trips_model", "taxi_trips", "model", "confidential")
    assert card["label_text"] == "Shared: Confidential — DP generative model"
    assert card["privacy"]["epsilon"] == pytest.approx(tiny_model().privacy_report["epsilon"])
    assert card["privacy"]["accountant"] == "prv" and card["privacy"]["steps"] > 0
    adv = card["release_statistics"]["statistics"]["max_attack_advantage"]
    assert adv["ci_low"] < adv["value"] < adv["ci_high"] and adv["value"] == 0.01
    assert "audit" not in card and "utility" not in card and unlisted_fields(card) == []
    assert card["usage"]["endpoint"] == "/datasets/taxi_trips_model/v1/sample?n=N&seed=S" \
                                        "&format=csv"
    assert any("pulsesynth sample-release --release" in c for c in card["usage"]["commands"])
    assert card["approval"]["steward"] == "bob" and card["gate"]["max_label"] == "confidential"
    md = (v1 / "modelcard.md").read_text()
    assert "How to use it" in md and "sample-release" in md and "capped" in md
    for f in card["files"]:
        assert hashlib.sha256((v1 / f["name"]).read_bytes()).hexdigest() == f["sha256"]
        assert f["downloadURL"] == f"/datasets/taxi_trips_model/v1/files/{f['name']}"
    index = {e["id"]: e for e in _index(paths)}
    assert set(index) == {"taxi_trips", "taxi_trips_model"}
    assert (index["taxi_trips_model"]["kind"], index["taxi_trips_model"]["dataset"]) == (
        "model", "taxi_trips")
    assert index["taxi_trips"]["kind"] == "table"
    assert {f["name"] for f in index["taxi_trips_model"]["files"]} == MODEL_FILES
    # A second model version supersedes the first model only, never the table.
    r2 = register_candidate(paths, "taxi_trips", make_model_candidate(
        paths, run_id="m2", accuracy=0.51), "m-model-2", kind="model")
    approve(paths, r2.candidate_id, "bob")
    [p2] = publish_approved(paths)
    assert (p2.catalogue_id, p2.version) == ("taxi_trips_model", "v2")
    assert get_release(paths, rel.candidate_id).status == "superseded"
    assert get_release(paths, table.candidate_id).status == "published"
    withdraw(paths, rel.candidate_id, "bob", note="superseded model withdrawn")
    assert not v1.exists() and (paths.state / "withdrawn" / "taxi_trips_model").is_dir()
    assert sorted((e["id"], e["version"]) for e in _index(paths)) == [
        ("taxi_trips", "v1"), ("taxi_trips_model", "v2")]
    kinds = [e["detail"].get("kind") for e in audit_events(paths, "release.publish")]
    assert sorted(kinds) == ["model", "model", "table"]


def test_classifier_release_publishes_with_a_model_card(paths: Paths) -> None:
    cand = make_classifier_candidate(paths)
    rel = register_candidate(paths, "taxi_trips", cand, "clf-1", kind="classifier")
    assert (rel.label, rel.catalogue_id) == ("open", "taxi_trips_classifier")
    approve(paths, rel.candidate_id, "alice")
    [pub] = publish_approved(paths)
    v1 = paths.published / "taxi_trips_classifier" / "v1"
    assert pub.version == "v1" and {p.name for p in v1.iterdir()} == MODEL_FILES
    card = json.loads((v1 / "modelcard.json").read_text())
    assert card["kind"] == "classifier" and card["label_text"] == "Open — DP classifier"
    assert card["model"]["target"] == "tip" and card["model"]["classes"] == ["no", "yes"]
    assert card["model"]["features"] == ["distance", "company", "hour"]
    assert card["release_statistics"]["statistics"]["tstr_accuracy"]["value"] == 0.71
    assert unlisted_fields(card) == [] and "utility" not in card
    assert card["usage"]["commands"] == [
        "pulsesynth predict --release taxi_trips_classifier-v1/ --input rows.csv"]
    assert "audit" not in card
    [entry] = _index(paths)
    assert (entry["id"], entry["kind"], entry["label"]) == (
        "taxi_trips_classifier", "classifier", "open")


@pytest.mark.parametrize("kind", ["model", "classifier"])
def test_weights_changed_after_approval_refuse_publication(paths: Paths, kind: str) -> None:
    cand = (make_model_candidate(paths) if kind == "model"
            else make_classifier_candidate(paths))
    rel = register_candidate(paths, "taxi_trips", cand, "m", kind=kind)
    approve(paths, rel.candidate_id, "alice", note="weights reviewed")
    state = torch.load(cand / "weights.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 0.5          # a plausible, loadable, different model
    torch.save(state, cand / "weights.pt")
    with pytest.raises(TamperedCandidate, match="changed after alice approved"):
        publish_approved(paths)
    assert _index(paths) == [] and not (paths.published / rel.catalogue_id).exists()
    assert get_release(paths, rel.candidate_id).status == "approved"
    [refused] = audit_events(paths, "release.publish_refused")
    assert refused["detail"]["kind"] == kind
    # model.json is covered by the approval hash too.
    cand2 = (make_model_candidate(paths, run_id="m9", accuracy=0.52) if kind == "model"
             else make_classifier_candidate(paths, run_id="c9", seed=9))
    rel2 = register_candidate(paths, "taxi_trips", cand2, "m2", kind=kind)
    approve(paths, rel2.candidate_id, "alice")
    config = json.loads((cand2 / "model.json").read_text())
    config["architecture"]["note"] = "edited"
    (cand2 / "model.json").write_text(json.dumps(config))
    with pytest.raises(PublishError, match="changed after alice approved"):
        publish_approved(paths)
    assert not (paths.published / rel.catalogue_id).exists()


def test_registration_refuses_malformed_or_leaky_model_candidates(paths: Paths) -> None:
    def fresh(run_id: str) -> Path:
        return make_model_candidate(paths, run_id=run_id)

    # A hand-written gate that says open for a model.
    cand = fresh("open")
    gate = json.loads((cand / "gate.json").read_text()) | {"label": "open"}
    (cand / "gate.json").write_text(json.dumps(gate))
    with pytest.raises(CandidateError, match="at most at the confidential label"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="model")
    # A gate evaluated for another kind.
    cand = fresh("kind")
    (cand / "gate.json").write_text(json.dumps(
        json.loads((cand / "gate.json").read_text()) | {"kind": "table"}))
    with pytest.raises(CandidateError, match="evaluated for kind 'table'"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="model")
    # The loss history must never travel with the weights.
    cand = fresh("history")
    config = json.loads((cand / "model.json").read_text())
    config["privacy"]["history"] = [{"epoch": 1, "loss": 3.2}]
    (cand / "model.json").write_text(json.dumps(config))
    with pytest.raises(CandidateError, match="history"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="model")
    # Nor the training seed: it would let anyone regenerate the DP noise.
    cand = fresh("seed")
    config = json.loads((cand / "model.json").read_text())
    config["privacy"]["seed"] = 0
    (cand / "model.json").write_text(json.dumps(config))
    with pytest.raises(CandidateError, match="training seed"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="model")
    # Weights that are not a plain state_dict (a pickle with code is refused unloaded).
    cand = fresh("pickle")
    buf = io.BytesIO()
    torch.save({"net": torch.nn.Linear(2, 2)}, buf)
    (cand / "weights.pt").write_bytes(buf.getvalue())
    with pytest.raises(CandidateError, match="weights-only"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="model")
    # model.json bound to another schema than the candidate's schema.yaml.
    cand = fresh("schema")
    (cand / "schema.yaml").write_text(yaml.safe_dump(
        model_schema_raw() | {"description": "changed"}, sort_keys=False))
    with pytest.raises(CandidateError, match="does not match schema.yaml"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="model")
    # A model releases no rows: an audit with distances is the wrong report.
    cand = fresh("distances")
    audit = json.loads((cand / "audit.json").read_text()) | {"distances": {"dcr_share": 0.5}}
    (cand / "audit.json").write_text(json.dumps(audit))
    with pytest.raises(CandidateError, match="no distances"):
        register_candidate(paths, "taxi_trips", cand, "m", kind="model")
    with pytest.raises(CandidateError, match="unknown release kind"):
        register_candidate(paths, "taxi_trips", fresh("x"), "m", kind="weights")
    assert list_releases(paths) == []


# --- the pipeline and the CLI --------------------------------------------------------------


def _fake_audit_and_utility(run: Path) -> None:
    """Stand-ins for the audit and evaluate steps (tested elsewhere; slow here)."""
    cand = RunDir(run).candidate.path
    mia = {"attack": "model_mia", "accuracy": 0.51, "ci_low": 0.48, "ci_high": 0.54,
           "auc": 0.5, "tpr_at_1pct_fpr": 0.0, "advantage": 0.02, "advantage_ci_high": 0.08,
           "effective_epsilon": 0.0, "n_members": 200, "n_non_members": 200, "details": {},
           "privacy": 0.98}
    audit = {"dataset": "taxi_trips", "seed": 0, "caveat": "…",
             "membership_attacks": {"model_mia": mia,
                                    "synthetic_mia": mia | {"attack": "synthetic_mia"}},
             "distances": {"dcr_share": 0.5, "exact_matches_unique": 0}}
    (cand / "audit.json").write_text(json.dumps(audit))
    (cand / "utility.json").write_text(json.dumps({
        "target": "tip", "tstr": {"logreg": {"accuracy": 0.6, "auc": 0.55}},
        "trtr": {"logreg": {"accuracy": 0.62, "auc": 0.58}}, "majority_accuracy": 0.6}))
    charge_id = pipeline.recorded_charge(run)["id"]
    (cand / "release_stats.json").write_text(json.dumps(release_stats(charge_id)))


def test_model_candidate_from_a_run_and_the_cli(
        project_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = Paths(project_root)
    Warehouse(paths).build(["taxi_trips"])
    run = tmp_path / "run"
    pipeline.start_run("taxi_trips", run, max_rows=400)
    pipeline.train(run, **FAST)
    pipeline.sample(run, rows=200)
    with pytest.raises(pipeline.RunError, match="not audited"):
        pipeline.model_candidate(run, paths=paths)
    _fake_audit_and_utility(run)

    assert cli.main(["release-model", "--run", str(run), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    out = RunDir(run).model_candidate.path
    assert {p.name for p in out.iterdir()} == {"weights.pt", "model.json", "audit.json",
                                               "gate.json", "privacy.json", "utility.json",
                                               "release_stats.json", "schema.yaml"}
    # the model is paid for by the run's own ledger charge: releasing it charges nothing
    [charge] = Ledger(paths).charges("taxi_trips")
    assert json.loads((out / "privacy.json").read_text())["charge_id"] == charge.id
    audit = json.loads((out / "audit.json").read_text())
    assert set(audit["membership_attacks"]) == {"model_mia"} and "distances" not in audit
    gate = json.loads((out / "gate.json").read_text())
    assert (gate["kind"], gate["label"]) == ("model", "confidential")
    assert (shown["kind"], shown["catalogue_id"], shown["status"]) == (
        "model", "taxi_trips_model", "candidate")
    assert shown["model_id"] == pipeline.model_hash(run)
    assert json.loads((out / "utility.json").read_text())["tstr"]["logreg"]["accuracy"] == 0.6
    # Building it again gives the same bytes: registration is idempotent.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert pipeline.model_candidate(run, paths=paths) == out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    assert cli.main(["releases", "list", "--kind", "model"]) == 0
    listing = capsys.readouterr().out
    assert "kind" in listing.splitlines()[0] and " model " in listing
    cid = shown["candidate_id"]
    assert cli.main(["releases", "approve", cid[:10], "--steward", "alice"]) == 0
    assert cli.main(["publish"]) == 0
    assert "published taxi_trips_model v1 (confidential)" in capsys.readouterr().out
    published = paths.published / "taxi_trips_model" / "v1"

    rows_csv = tmp_path / "rows.csv"
    assert cli.main(["sample-release", "--release", str(published), "-n", "150", "--seed",
                     "7", "--out", str(rows_csv)]) == 0
    rows = pd.read_csv(rows_csv)
    schema = Warehouse(paths).schema("taxi_trips")
    assert len(rows) == 150
    assert list(rows.columns) == [c.name for c in schema.synthesized_columns]
    report = validate(conform(rows, schema), schema, synthetic=True)
    assert report.success, report.to_dict()["failed"]
    again = tmp_path / "again.csv"
    assert cli.main(["sample-release", "--release", str(published), "-n", "150", "--seed",
                     "7", "--out", str(again)]) == 0
    assert again.read_bytes() == rows_csv.read_bytes()
    capsys.readouterr()
    assert cli.main(["sample-release", "--release", str(published), "-n", "5",
                     "--seed", "8"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 6   # header + 5 rows, stdout
    # A copy whose weights were swapped is refused (the card's SHA-256 no longer matches).
    copy = tmp_path / "copy"
    shutil.copytree(published, copy)
    (copy / "weights.pt").write_bytes((out / "weights.pt").read_bytes() + b"\0")
    assert cli.main(["sample-release", "--release", str(copy), "-n", "5"]) == 2
    assert "SHA-256 differs" in capsys.readouterr().err
    assert cli.main(["sample-release", "--release", str(run), "-n", "5"]) == 2


#: A policy under which the real audit's label does not depend on the DP release report's
#: noise (secret randomness: on 800 rows the noisy attack advantage can read well above
#: the shipped 0.1): open is out of reach whatever the noise (ε 1 > 0.5) and confidential
#: admits any advantage (the noisy value is clipped to [-1, 1]), so the label is exact.
NOISE_PROOF_POLICY = """\
labels:
  open: {max_epsilon: 0.5, max_attack_advantage: 0.05, max_attack_advantage_ci_high: 0.1,
         max_exact_match_excess: 0.05}
  confidential: {max_epsilon: 3.0, max_attack_advantage: 1.0,
                 max_attack_advantage_ci_high: null, max_exact_match_excess: null}
kinds:
  table: {max_label: open}
  classifier: {max_label: open}
  model: {max_label: confidential}
"""


def test_release_model_after_the_real_audit(project_root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The whole path with the real audit: train → sample → evaluate → audit →
    release-model; the model candidate's audit is the run's model MIA, its gate capped."""
    Warehouse(Paths(project_root)).build(["taxi_trips"])
    run = tmp_path / "run"
    assert cli.main(["train", "taxi_trips", "--max-rows", "800", "--epochs", "3", "--out",
                     str(run)]) == 0
    for argv in (["sample", str(run), "--rows", "300"], ["evaluate", str(run)],
                 ["audit", str(run)]):
        assert cli.main(argv) == 0
    capsys.readouterr()
    policy = tmp_path / "policy.yaml"
    policy.write_text(NOISE_PROOF_POLICY, encoding="utf-8")
    assert cli.main(["release-model", "--run", str(run), "--json", "--policy",
                     str(policy)]) == 0
    shown = json.loads(capsys.readouterr().out)
    run_audit = json.loads((run / "candidate" / "audit.json").read_text())
    audit = json.loads((run / "model_candidate" / "audit.json").read_text())
    white_box = ("model_mia", "model_lira")
    assert audit["membership_attacks"] == {name: run_audit["membership_attacks"][name]
                                           for name in white_box}
    assert audit["vulnerable_targets"] == {name: run_audit["vulnerable_targets"][name]
                                           for name in white_box}
    assert shown["label"] == "confidential" and shown["kind"] == "model"
    gate = json.loads((run / "model_candidate" / "gate.json").read_text())
    assert (gate["label"], gate["max_label"], gate.get("capped_from")) == (
        "confidential", "confidential", None)
    assert gate["reason"] == "all confidential thresholds pass"


def test_release_kinds_have_distinct_catalogue_ids(paths: Paths) -> None:
    assert catalogue_id("taxi_trips") == "taxi_trips"
    assert catalogue_id("taxi_trips", "classifier") == "taxi_trips_classifier"
    assert catalogue_id("taxi_trips", "model") == "taxi_trips_model"
    register_candidate(paths, "taxi_trips", make_model_candidate(paths), "m", kind="model")
    # A table dataset literally named taxi_trips_model would collide with it: refused.
    with pytest.raises(CandidateError, match="catalogue id taxi_trips_model is already used"):
        register_candidate(paths, "taxi_trips_model",
                           make_candidate(paths, "taxi_trips_model"), "m")


@pytest.mark.parametrize("stage", ["before_rename", "after_rename"])
def test_crash_mid_model_publish_is_atomic_and_rerun_adopts(
        paths: Paths, monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    rel = register_candidate(paths, "taxi_trips", make_model_candidate(paths), "m",
                             kind="model")
    approve(paths, rel.candidate_id, "alice")

    def crash(at: str) -> None:
        if at == stage:
            raise KeyboardInterrupt(f"simulated kill at {at}")

    with pytest.raises(KeyboardInterrupt):
        publish_approved(paths, fault_hook=crash)
    model_dir = paths.published / "taxi_trips_model"
    assert not (paths.published / "index.json").exists() or _index(paths) == []
    assert (model_dir / "v1").is_dir() == (stage == "after_rename")
    assert get_release(paths, rel.candidate_id).status == "approved"
    [done] = publish_approved(paths)
    assert (done.version, done.status) == ("v1", "published")   # adopted, not v2
    assert sorted(p.name for p in model_dir.iterdir()) == ["v1"]
    assert [(e["id"], e["version"]) for e in _index(paths)] == [("taxi_trips_model", "v1")]
    assert not list(paths.published.glob(".tmp-*"))
