"""Candidates, steward decisions and atomic publication."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from governance_fixtures import CANARY, make_candidate, plant_real_table

from pulsesynth.errors import PulseSynthError
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import audit_events
from pulsesynth.governance.errors import (
    ReleaseNotFound,
    ReleaseStateError,
    TamperedCandidate,
)
from pulsesynth.governance.lifecycle import TRANSITIONS, approve, next_status, reject, withdraw
from pulsesynth.governance.publishable import unlisted_fields
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.record import Release, approvals, get_release, list_releases
from pulsesynth.governance_cli import add_governance_commands
from pulsesynth.paths import Paths


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


def _register(paths: Paths, run_id: str = "run1", **kw) -> Release:
    cand = make_candidate(paths, run_id=run_id, **kw)
    return register_candidate(paths, "taxi_trips", cand, f"model-{run_id}", "Taxi trips")


def _tree(root: Path) -> dict[str, str]:
    """Every file under a directory with its hash (to compare states byte for byte)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _index(paths: Paths) -> list[dict]:
    return json.loads((paths.published / "index.json").read_text())["dataset"]


def test_register_is_content_addressed_and_idempotent(paths: Paths) -> None:
    rel = _register(paths)
    assert rel.status == "candidate" and rel.label == "open" and len(rel.candidate_id) == 64
    again = register_candidate(paths, "taxi_trips", make_candidate(paths, run_id="run1"), "m")
    assert again.candidate_id == rel.candidate_id
    assert len(list_releases(paths)) == 1
    assert get_release(paths, rel.candidate_id[:8]) == rel
    with pytest.raises(ReleaseNotFound):
        get_release(paths, "abcdef0123")
    other = _register(paths, "run2", seed=1)
    assert other.candidate_id != rel.candidate_id


def test_blocked_gate_or_non_private_model_cannot_be_approved(paths: Paths) -> None:
    blocked = _register(paths, "b1", label="blocked")
    non_dp = _register(paths, "b2", private=False, seed=2)
    for rel in (blocked, non_dp):
        assert rel.status == "blocked"
        with pytest.raises(ReleaseStateError, match="blocked"):
            approve(paths, rel.candidate_id, "alice")
    publish_approved(paths)
    assert _index(paths) == [] and not (paths.published / "taxi_trips").exists()


def test_tamper_after_approval_makes_publish_refuse(paths: Paths) -> None:
    rel = _register(paths)
    approve(paths, rel.candidate_id, "alice", note="looks fine")
    cand = paths.resolve(rel.candidate_dir)
    # Change a file the candidate id does not cover: the approval hash still catches it.
    utility = json.loads((cand / "utility.json").read_text())
    utility["majority_accuracy"] = 0.99
    (cand / "utility.json").write_text(json.dumps(utility))
    with pytest.raises(TamperedCandidate, match="changed after alice approved"):
        publish_approved(paths)
    assert not (paths.published / "taxi_trips").exists() and _index(paths) == []
    assert get_release(paths, rel.candidate_id).status == "approved"
    assert audit_events(paths, "release.publish_refused")
    # Swapping the synthetic table is caught too.
    pd.DataFrame({"tip": ["yes"]}).to_parquet(cand / "synthetic.parquet")
    with pytest.raises(TamperedCandidate):
        publish_approved(paths)


def test_rejected_cannot_be_published_and_needs_a_note(paths: Paths) -> None:
    rel = _register(paths)
    with pytest.raises(ReleaseStateError, match="note"):
        reject(paths, rel.candidate_id, "alice", note="  ")
    reject(paths, rel.candidate_id, "alice", note="utility too low")
    with pytest.raises(ReleaseStateError, match="only a candidate"):
        approve(paths, rel.candidate_id, "bob")
    assert publish_approved(paths) == []
    assert not (paths.published / "taxi_trips").exists()
    decisions = approvals(paths, rel.candidate_id)
    assert [(d["decision"], d["note"]) for d in decisions] == [("rejected", "utility too low")]


def test_unapproved_candidates_are_never_published(paths: Paths) -> None:
    _register(paths)
    assert publish_approved(paths) == []
    assert [p.name for p in paths.published.iterdir()] == ["index.json"]


def test_publish_writes_release_supersedes_and_withdraws(paths: Paths) -> None:
    snapshot = plant_real_table(paths)
    r1 = _register(paths, "run1", snapshot_id=snapshot)
    approve(paths, r1.candidate_id, "alice", role="transport steward")
    [p1] = publish_approved(paths)
    assert (p1.status, p1.version) == ("published", "v1")
    v1 = paths.published / "taxi_trips" / "v1"
    names = {p.name for p in v1.iterdir()}
    assert {"synthetic.parquet", "synthetic.csv", "datacard.json", "datacard.md",
            "plots"} == names                       # audit_members.json stays behind
    card = json.loads((v1 / "datacard.json").read_text())
    assert card["label_text"] == "Open — synthetic"
    assert card["privacy"]["epsilon"] == 1.0 and "ln 2 ≈ 0.693" in card["privacy"][
        "epsilon_vs_ln2"]
    # the private snapshot's hash never leaves; every field is declared public or DP
    assert snapshot not in json.dumps(card) and "source_snapshot_id" not in card["provenance"]
    assert unlisted_fields(card) == []
    assert unlisted_fields(json.loads((paths.published / "index.json").read_text())) == []
    assert card["approval"]["steward"] == "alice"
    assert set(card["release_statistics"]["statistics"]) == {
        "max_attack_advantage", "exact_match_excess", "tstr_accuracy", "majority_accuracy"}
    assert "audit" not in card and "utility" not in card
    # the fit-for-purpose verdict comes from the DP figures (0.71 vs 0.62 by guessing)
    assert card["fit_for_purpose"]["verdict"] == "useful"
    assert card["suitable_for"][-1].startswith("predicting `tip`: a model trained on this")
    assert "rare" in " ".join(card["not_suitable_for"]) and "future" in card["caveat"]
    assert len(card["plots"]) == 4
    md = (v1 / "datacard.md").read_text()
    assert "Open — synthetic" in md and "Terms of use" in md
    for f in card["files"]:
        assert hashlib.sha256((v1 / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    assert CANARY not in json.dumps(_tree(paths.published)) and not any(
        CANARY.encode() in p.read_bytes() for p in paths.published.rglob("*") if p.is_file())

    r2 = _register(paths, "run2", seed=5, label="confidential")
    approve(paths, r2.candidate_id, "alice")
    [p2] = publish_approved(paths)
    assert p2.version == "v2"
    assert get_release(paths, r1.candidate_id).status == "superseded"
    index = {e["version"]: e for e in _index(paths)}
    assert index["v1"]["status"] == "superseded" and index["v2"]["status"] == "published"
    assert index["v2"]["label"] == "confidential" and index["v2"]["epsilon"] == 1.0
    files = {f["name"]: f for f in index["v2"]["files"]}
    assert files["synthetic.csv"]["sha256"] == hashlib.sha256(
        (paths.published / "taxi_trips/v2/synthetic.csv").read_bytes()).hexdigest()

    with pytest.raises(ReleaseStateError, match="note"):
        withdraw(paths, r1.candidate_id, "alice", note="")
    withdraw(paths, r1.candidate_id, "alice", note="superseded and obsolete")
    assert [e["version"] for e in _index(paths)] == ["v2"]
    assert not v1.exists() and (paths.state / "withdrawn" / "taxi_trips").is_dir()
    actions = [e["action"] for e in audit_events(paths)]
    for action in ("release.register", "release.approved", "release.publish",
                   "release.supersede", "release.withdrawn"):
        assert action in actions
    # A new version never reuses a withdrawn version's number.
    r3 = _register(paths, "run3", seed=6)
    approve(paths, r3.candidate_id, "alice")
    assert publish_approved(paths)[0].version == "v3"


@pytest.mark.parametrize("stage", ["before_rename", "after_rename", "before_index"])
def test_crash_mid_publish_keeps_previous_state_and_rerun_completes(
        paths: Paths, monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    r1 = _register(paths, "run1")
    approve(paths, r1.candidate_id, "alice")
    publish_approved(paths)
    before = _tree(paths.published)
    r2 = _register(paths, "run2", seed=3)
    approve(paths, r2.candidate_id, "alice")

    def crash(at: str) -> None:
        if at == stage:
            raise KeyboardInterrupt(f"simulated kill at {at}")

    with pytest.raises(KeyboardInterrupt):
        publish_approved(paths, fault_hook=crash)
    # What the portal reads (index.json and the versions it lists) is unchanged.
    assert _tree(paths.published)["index.json"] == before["index.json"]
    for name, digest in before.items():
        assert _tree(paths.published)[name] == digest
    if stage == "before_rename":
        assert set(_tree(paths.published)) == set(before)     # no half-written version
        assert get_release(paths, r2.candidate_id).status == "approved"

    done = publish_approved(paths)
    # A crash after the database commit leaves only the index to rewrite: nothing to publish.
    assert [r.version for r in done] == ([] if stage == "before_index" else ["v2"])
    final = get_release(paths, r2.candidate_id)
    assert (final.status, final.version) == ("published", "v2")
    assert get_release(paths, r1.candidate_id).status == "superseded"
    assert [e["version"] for e in _index(paths)] == ["v1", "v2"]
    assert not list(paths.published.glob(".tmp-*"))
    assert not (paths.published / "taxi_trips" / "v3").exists()


def _cli(paths: Paths, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(paths.root))
    parser = argparse.ArgumentParser()
    add_governance_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_steward_workflow_through_the_cli(paths: Paths, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    schemas = Path(__file__).resolve().parent.parent / "schemas"
    (paths.root / "schemas").mkdir()
    (paths.root / "schemas" / "taxi_trips.yaml").write_bytes(
        (schemas / "taxi_trips.yaml").read_bytes())
    cand = make_candidate(paths)
    assert _cli(paths, monkeypatch, "releases", "register", str(cand), "--dataset",
                "taxi_trips", "--model-id", "m1") == 0
    cid = capsys.readouterr().out.split()[0]
    assert _cli(paths, monkeypatch, "releases", "list") == 0
    assert cid[:12] in capsys.readouterr().out
    assert _cli(paths, monkeypatch, "releases", "approve", cid[:10], "--steward", "alice",
                "--note", "ok") == 0
    assert _cli(paths, monkeypatch, "publish") == 0
    assert "published taxi_trips v1 (open)" in capsys.readouterr().out
    assert _cli(paths, monkeypatch, "releases", "show", cid[:10]) == 0
    shown = capsys.readouterr().out
    assert "published" in shown and "approved by alice (data steward): ok" in shown
    assert _cli(paths, monkeypatch, "budget", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    # the registered candidate is backed by one ledger charge of ε = 1 (lifetime 10)
    assert row["dataset"] == "taxi_trips" and row["retrains_left"] == 9
    assert _cli(paths, monkeypatch, "tokens", "create", "--entity", "rta") == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40
    assert _cli(paths, monkeypatch, "tokens", "revoke", "--entity", "rta") == 0
    with pytest.raises(PulseSynthError):
        _cli(paths, monkeypatch, "tokens", "revoke", "--entity", "rta")
    with pytest.raises(PulseSynthError):
        _cli(paths, monkeypatch, "releases", "withdraw", cid[:10], "--steward", "a",
             "--note", "")


# --- the status machine ---------------------------------------------------------------------

STATUSES = ("candidate", "blocked", "approved", "rejected", "published", "superseded",
            "withdrawn")


def _rel(status: str) -> Release:
    return Release("ab" * 32, "taxi_trips", None, "m", "T", "open",
                   {"reason": "open: epsilon = 9 (limit 1) FAILS by 8"}, status, "c", "t",
                   None, None)


def test_transition_table_is_the_documented_flow() -> None:
    assert TRANSITIONS == {
        ("candidate", "approve"): "approved", ("candidate", "reject"): "rejected",
        ("approved", "reject"): "rejected", ("blocked", "reject"): "rejected",
        ("approved", "publish"): "published", ("published", "supersede"): "superseded",
        ("approved", "withdraw"): "withdrawn", ("published", "withdraw"): "withdrawn",
        ("superseded", "withdraw"): "withdrawn"}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ["approve", "reject", "withdraw"])
def test_refusals_keep_their_wording(status: str, action: str) -> None:
    """Every steward action on every status: the table's answer, or the exact message the
    scattered checks gave before the table existed."""
    rel = _rel(status)
    if (status, action) in TRANSITIONS:
        assert next_status(rel, action) == TRANSITIONS[(status, action)]
        return
    head = f"taxi_trips {'ab' * 6}: "
    expected = {
        "approve": (head + "blocked by the gate (open: epsilon = 9 (limit 1) FAILS by 8); it "
                    "cannot be approved") if status == "blocked"
        else head + f"status is {status}; only a candidate can be approved",
        "reject": head + f"status is {status}; withdraw a published release instead",
        "withdraw": head + f"status is {status}; only approved or published releases can be "
                    "withdrawn",
    }[action]
    with pytest.raises(ReleaseStateError) as err:
        next_status(rel, action)
    assert str(err.value) == expected
