"""The release-kind registry (:mod:`pulsesynth.release_kinds`) and its contract.

Every registered kind is checked the same way — its files are the artifacts' files, its
card builder writes a card with the expected keys, the gate enforces its label cap, the
portal serves its release page — and a scan keeps code from branching on kind names
outside the registry, so that adding a kind means registering one more object.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from governance_fixtures import make_candidate
from model_fixtures import (
    make_classifier_candidate,
    make_model_candidate,
    make_untrained_model_candidate,
)

from pulsesynth import artifacts
from pulsesynth.artifacts import CandidateDir, ReleaseDir, RunDir
from pulsesynth.gate import PolicyError, evaluate_gate, kind_cap, load_policy
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.errors import CandidateError
from pulsesynth.governance.grants import add_grant
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.tokens import create_token
from pulsesynth.labels import OPEN, RELEASE_LABELS
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app
from pulsesynth.release_kinds import (
    KINDS,
    REGISTRY,
    ReleaseKind,
    UnknownReleaseKind,
    get_kind,
)

ROOT = Path(__file__).resolve().parent.parent

#: How a test builds a candidate directory of each kind (a new kind adds a line here), in
#: the unit tier: nothing is trained (a model candidate has fixed weights, so its rows are
#: not sampled here: :func:`test_samplable_kind_serves_rows_from_a_trained_release` does).
CANDIDATES: dict[str, Callable[[Paths], Path]] = {
    "table": make_candidate,
    "classifier": make_classifier_candidate,
    "model": make_untrained_model_candidate,
}
#: A samplable kind's candidate from a really trained model (integration tier).
TRAINED_CANDIDATES: dict[str, Callable[[Paths], Path]] = {"model": make_model_candidate}
#: Keys every card has, whatever the kind (the portal and the catalogue read them).
CARD_KEYS = {"id", "title", "version", "candidate_id", "label", "label_text", "terms",
             "privacy", "release_statistics", "gate", "files", "approval"}


def _passing_open() -> tuple[dict, dict]:
    """Public facts and a DP release report that pass every ``open`` threshold."""
    privacy = {"private": True, "epsilon": 0.9}
    stats = {"private": True, "statistics": {
        "max_attack_advantage": {"value": 0.01, "ci_high": 0.05, "attacks": ["model_mia"]},
        "exact_match_excess": {"value": 0.0, "ci_high": 0.02, "p_value": 0.5}}}
    return privacy, stats


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> ReleaseKind:
    return get_kind(request.param)


def test_registry_is_complete_and_unknown_kinds_are_refused(tmp_path: Path) -> None:
    assert KINDS == ("table", "classifier", "model") == tuple(REGISTRY)
    assert set(CANDIDATES) == set(KINDS), "register a candidate fixture for the new kind"
    assert all(REGISTRY[name].name == name for name in KINDS)
    with pytest.raises(UnknownReleaseKind, match="unknown release kind 'weights'.*table"):
        get_kind("weights")
    # Each layer reports an unknown kind in its own error type, with the registry's text.
    with pytest.raises(PolicyError, match="unknown release kind"):
        kind_cap(load_policy(), "weights")
    with pytest.raises(CandidateError, match="unknown release kind"):
        register_candidate(Paths(tmp_path), "x", tmp_path, "m", kind="weights")


def test_kind_files_are_the_artifacts_files(kind: ReleaseKind, tmp_path: Path) -> None:
    assert kind.candidate_files in (artifacts.TABLE_CANDIDATE_FILES,
                                    artifacts.WEIGHTS_CANDIDATE_FILES)
    assert kind.primary_file in kind.candidate_files
    assert {kind.card_json, kind.card_md} <= artifacts.FILE_NAMES
    assert artifacts.card_json_name(kind.name) == kind.card_json
    assert ReleaseDir(tmp_path).card_json(kind.name) == tmp_path / kind.card_json
    assert set(kind.downloads) <= artifacts.FILE_NAMES and kind.card_json in kind.downloads
    run = RunDir(tmp_path)
    candidate_dir = kind.candidate_of(run)
    assert isinstance(candidate_dir, CandidateDir) and candidate_dir.path.parent == tmp_path
    # RunDir names its candidate directories after their directory names.
    assert getattr(run, kind.candidate_dir).path == candidate_dir.path
    builder = kind.candidate_builder()
    assert builder is None or callable(builder)
    assert callable(kind.card_builder())
    assert kind.default_max_label in RELEASE_LABELS
    assert kind.label_caps and set(kind.label_caps) <= set(RELEASE_LABELS)


def test_kind_label_cap_is_enforced_by_the_gate(kind: ReleaseKind, tmp_path: Path) -> None:
    policy = load_policy()
    privacy, stats = _passing_open()
    result = evaluate_gate(policy, privacy, stats, kind=kind.name)
    assert result.label == kind.label_caps[0] == result.max_label
    assert result.capped_from == (OPEN if result.label != OPEN else None)
    checked = {c.name for c in result.checks}
    assert ("max_exact_match_excess" in checked) == kind.releases_rows
    assert ("exact_match_alpha" in checked) == kind.releases_rows
    # A policy may lower any kind's cap; it can never lift a hard cap.
    strict = tmp_path / "strict.yaml"
    raw = {"labels": {lb: dict(policy[lb]) for lb in policy},
           "kinds": {kind.name: {"max_label": RELEASE_LABELS[-1]}}}
    strict.write_text(json.dumps(raw))
    assert evaluate_gate(load_policy(strict), privacy, stats,
                         kind=kind.name).label == RELEASE_LABELS[-1]
    lifted = tmp_path / "lifted.yaml"
    lifted.write_text(json.dumps(raw | {"kinds": {kind.name: {"max_label": OPEN}}}))
    if kind.hard_max_label and kind.hard_max_label != OPEN:
        with pytest.raises(PolicyError, match=kind.hard_cap_reason):
            load_policy(lifted)
    else:
        assert evaluate_gate(load_policy(lifted), privacy, stats, kind=kind.name).label == OPEN


def _publish_and_serve(kind: ReleaseKind, cand: Path, paths: Paths
                       ) -> tuple[TestClient, dict[str, str], str]:
    """Register, approve and publish ``cand``; check the card, files, release page and
    listing; return a client, an entity's auth header and the release's URL path."""
    rel = register_candidate(paths, "taxi_trips", cand, f"m-{kind.name}", kind=kind.name)
    assert rel.catalogue_id == kind.catalogue_id("taxi_trips")
    assert rel.label in kind.label_caps
    approve(paths, rel.candidate_id, "alice")
    [pub] = publish_approved(paths)
    out = ReleaseDir(paths.published / pub.catalogue_id / pub.version)
    card = json.loads(out.card_json(kind.name).read_text())
    assert CARD_KEYS <= set(card), sorted(CARD_KEYS - set(card))
    assert (out.path / kind.card_md).is_file()
    published = {p.name for p in out.path.iterdir()}
    assert set(kind.downloads) <= published
    # The portal's release page and the catalogue listing.
    client = TestClient(create_app(paths))
    token, _ = create_token(paths, "kinds-test")
    add_grant(paths, "kinds-test", "taxi_trips", steward="alice")  # sees its confidential ones
    auth = {"Authorization": f"Bearer {token}"}
    page = client.get(f"/datasets/{pub.catalogue_id}/{pub.version}", headers=auth)
    assert page.status_code == 200, page.text
    listed = client.get("/api/datasets", headers=auth).json()
    assert [(e["id"], e["kind"]) for e in listed] == [(pub.catalogue_id, kind.name)]
    return client, auth, f"/datasets/{pub.catalogue_id}/{pub.version}"


def test_kind_publishes_its_card_and_the_portal_serves_it(kind: ReleaseKind,
                                                          tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    client, auth, page = _publish_and_serve(kind, CANDIDATES[kind.name](paths), paths)
    if not kind.samplable:  # only a model release samples rows on request
        sample = client.get(f"{page}/sample", params={"n": 2}, headers=auth)
        assert sample.status_code == 404, sample.text


@pytest.mark.integration  # trains a tiny DP-VAE (Opacus: about 10 s)
@pytest.mark.parametrize("name", [k for k in KINDS if get_kind(k).samplable])
def test_samplable_kind_serves_rows_from_a_trained_release(name: str, tmp_path: Path) -> None:
    kind = get_kind(name)
    paths = Paths(tmp_path)
    client, auth, page = _publish_and_serve(kind, TRAINED_CANDIDATES[name](paths), paths)
    sample = client.get(f"{page}/sample", params={"n": 2}, headers=auth)
    assert sample.status_code == 200, sample.text


# --- no kind branches outside the registry ----------------------------------------------------

#: Files that validate a release config's *own* declared kind (a format check of the file
#: the model class writes, not a branch on which kind is being released).
FORMAT_SELF_CHECKS = {
    "pulsesynth/synth/release.py",
    "pulsesynth/synth/synthesizer.py",
    "pulsesynth/classifier/model.py",
}
#: Files that used to branch on kind names; the scan must have read them.
KEY_FILES = {
    "pulsesynth/gate.py", "pulsesynth/governance/candidate.py",
    "pulsesynth/governance/publisher.py", "pulsesynth/governance/record.py",
    "pulsesynth/governance/modelcard.py", "pulsesynth/governance/datacard.py",
    "pulsesynth/portal/app.py", "pulsesynth/governance_cli.py", "pulsesynth/cli.py",
    "pulsesynth/pipeline.py", "pulsesynth/classifier/release.py", "pulsesynth/fitness.py",
    "pulsesynth/artifacts.py", "flows/nightly.py",
}


def _is_kind_expr(node: ast.AST) -> bool:
    """``kind``, ``x.kind``, ``x["kind"]``, ``x.get("kind", ...)`` (any name ending in kind)."""
    if isinstance(node, ast.Name):
        return node.id.endswith("kind")
    if isinstance(node, ast.Attribute):
        return node.attr.endswith("kind")
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "kind"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return (node.func.attr == "get" and bool(node.args)
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == "kind")
    return False


def _names_a_kind(node: ast.AST) -> bool:
    """A literal kind name, or a literal tuple/list/set holding one."""
    if isinstance(node, ast.Constant):
        return node.value in REGISTRY
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_kind(e) for e in node.elts)
    return False


def kind_branches(source: str) -> list[int]:
    """Lines comparing a kind with a literal kind name (``==``, ``!=``, ``in``, ``not in``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_kind_expr(o) for o in operands) and any(
                    _names_a_kind(o) for o in operands):
                lines.append(node.lineno)
    return lines


def test_the_scan_finds_kind_branches() -> None:
    # Non-vacuous: every spelling the refactor removed is caught.
    for code in ('kind == "table"', 'x if kind != "model" else y', 'kind in ("a", "model")',
                 'rel.kind == "classifier"', 'e.get("kind", "table") != "table"',
                 'entry["kind"] == "model"', "'model' == self.kind"):
        assert kind_branches(code) == [1], code
    for code in ('block.kind == "categorical"', "kind in KINDS", "spec.releases_rows",
                 'kind = "model"'):
        assert kind_branches(code) == [], code


def test_no_kind_branches_outside_the_registry() -> None:
    scanned, found = set(), {}
    for top in ("pulsesynth", "flows", "tasks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "pulsesynth/release_kinds.py":
                continue
            scanned.add(rel)
            lines = kind_branches(path.read_text(encoding="utf-8"))
            if lines:
                found[rel] = lines
    assert KEY_FILES <= scanned, sorted(KEY_FILES - scanned)
    assert len(scanned) > 40
    # The allow-list stays honest: each entry still holds the check it excuses.
    assert set(found) & FORMAT_SELF_CHECKS == FORMAT_SELF_CHECKS
    leftover = {f: lines for f, lines in found.items() if f not in FORMAT_SELF_CHECKS}
    assert not leftover, ("look the kind up in pulsesynth.release_kinds instead of "
                          f"branching on its name: {leftover}")
