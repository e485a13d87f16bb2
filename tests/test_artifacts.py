"""The run, candidate and release directory layouts have one owner: pulsesynth.artifacts."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
from pathlib import Path

import pytest

from pulsesynth import artifacts
from pulsesynth.artifacts import CandidateDir, ModelDir, ReleaseDir, RunDir
from pulsesynth.paths import Paths

ROOT = Path(__file__).resolve().parent.parent
#: The code that must name run/candidate/release files through the owner only.
SCANNED_TREES = ("pulsesynth", "flows", "tasks", "deployments")
OWNER = ROOT / "pulsesynth" / "artifacts.py"


def _dumped(data: object) -> bytes:
    """The bytes every stage wrote for its JSON reports before the owner existed."""
    return json.dumps(data, indent=2, default=str).encode("utf-8")


# --- round trips ---------------------------------------------------------------------------


def test_run_dir_round_trips(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path / "state" / "runs" / "taxi" / "r1"))  # tasks pass strings
    assert isinstance(run.path, Path) and run.name == "r1"
    assert os.fspath(run) == str(tmp_path / "state" / "runs" / "taxi" / "r1")
    assert run.read_charge() is None and run.read_reports() == {}

    record = {"dataset": "taxi", "seed": 7, "fractions": {"train": 0.5}}
    run.write_run(record)
    assert run.read_run() == record
    assert run.run_json.read_bytes() == json.dumps(record, indent=2).encode()

    run.write_cache({"key": "k", "b": 1, "a": Path("x")})
    assert run.read_cache() == {"key": "k", "b": 1, "a": "x"}
    assert run.cache_json.read_bytes() == json.dumps(
        {"key": "k", "b": 1, "a": "x"}, indent=2, sort_keys=True).encode()

    for write, read, path, value in (
            (run.write_charge, run.read_charge, run.charge_json, {"id": 3, "epsilon": 1.0}),
            (run.write_sizes, run.read_sizes, run.sizes_json, {"rows": {"train": 10}}),
            (run.write_reports, run.read_reports, run.reports_json, {"abc": 4})):
        assert write(value) == path
        assert read() == value and path.read_bytes() == _dumped(value)

    assert [p.name for p in (run.run_json, run.cache_json, run.charge_json, run.sizes_json,
                             run.reports_json, run.error_log)] == [
        "run.json", "cache.json", "charge.json", "sizes.json", "reports.json", "error.log"]
    assert run.model == ModelDir(run.path / "model")
    assert (run.model.state_pt.name, run.model.metadata_json.name) == (
        "model.pt", "metadata.json")
    assert run.candidate.path == run.path / "candidate"
    assert run.model_candidate.path == run.path / "model_candidate"
    assert run.classifier_candidate.path == run.path / "classifier_candidate"
    assert RunDir.of(Paths(tmp_path), "taxi", "r1") == run


def test_candidate_dir_round_trips_with_the_published_bytes(tmp_path: Path) -> None:
    cand = CandidateDir(tmp_path / "run" / "candidate")  # writes create the directory
    report = {"private": True, "epsilon": 1.5, "where": Path("a/b"), "none": None,
              "text": "ε — ü"}
    pairs = ((cand.write_privacy, cand.read_privacy, cand.privacy_json),
             (cand.write_utility, cand.read_utility, cand.utility_json),
             (cand.write_audit, cand.read_audit, cand.audit_json),
             (cand.write_gate, cand.read_gate, cand.gate_json),
             (cand.write_release_stats, cand.read_release_stats, cand.release_stats_json))
    for write, read, path in pairs:
        assert write(report) == path
        assert path.read_bytes() == _dumped(report)
        assert read() == json.loads(_dumped(report))
    assert cand.missing(artifacts.TABLE_CANDIDATE_FILES) == ["synthetic.parquet",
                                                             "schema.yaml"]
    cand.release_config_json.write_text(json.dumps({"kind": "model"}), encoding="utf-8")
    assert cand.read_release_config() == {"kind": "model"}
    assert {p.name for p in (cand.synthetic_parquet, cand.weights_pt, cand.schema_yaml,
                             cand.audit_md, cand.audit_roc_png, cand.audit_dcr_png)} == {
        "synthetic.parquet", "weights.pt", "schema.yaml", "audit.md", "roc.png", "dcr.png"}


def test_release_dir_and_the_catalogue(tmp_path: Path) -> None:
    version = ReleaseDir(tmp_path / "published" / "taxi" / "v1")
    assert version.card_json("table") == version.datacard_json
    assert version.card_json("model") == version.card_json("classifier") == version.modelcard_json
    assert [p.name for p in (version.synthetic_csv, version.datacard_md, version.modelcard_md,
                             version.plots)] == ["synthetic.csv", "datacard.md",
                                                 "modelcard.md", "plots"]
    version.mkdir()
    version.release_config_json.write_text('{"kind": "classifier"}', encoding="utf-8")
    assert version.read_release_config() == {"kind": "classifier"}
    assert artifacts.index_json(Paths(tmp_path)) == tmp_path / "published" / "index.json"


def test_wrappers_are_frozen_values() -> None:
    run = RunDir(Path("/x/r"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.path = Path("/y")  # type: ignore[misc]
    assert run == RunDir("/x/r") and hash(run) == hash(RunDir("/x/r"))


def test_candidate_file_lists_keep_their_hashing_order() -> None:
    # Approvals bind to a hash that walks these names in order: reordering voids them.
    assert artifacts.TABLE_CANDIDATE_FILES == (
        "synthetic.parquet", "audit.json", "gate.json", "privacy.json", "utility.json",
        "release_stats.json", "schema.yaml")
    assert artifacts.WEIGHTS_CANDIDATE_FILES == (
        "weights.pt", "model.json", "audit.json", "gate.json", "privacy.json",
        "utility.json", "release_stats.json", "schema.yaml")
    assert artifacts.WEIGHTS_RELEASE_FILES == ("weights.pt", "model.json", "schema.yaml")


def test_model_pt_and_model_json_have_distinct_names() -> None:
    assert artifacts.MODEL_STATE_PT == "model.pt"
    assert artifacts.RELEASE_CONFIG_JSON == "model.json"
    owned = [v for k, v in vars(artifacts).items() if k.isupper() and isinstance(v, str)]
    assert len(owned) == len(set(owned)), "two owned constants spell the same name"


# --- nobody else spells the names ----------------------------------------------------------


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                ids.add(id(body[0].value))
    return ids


def spelled_names(source: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """String literals (f-string parts included) that are an owned name, or a path ending
    in one; docstrings are prose and are not counted. Also flags ``MODEL_FILE = ...``,
    the constant that once meant two different files."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            value = node.value
            if value in names or any(value.endswith("/" + n) for n in names):
                found.append((node.lineno, value))
        elif isinstance(node, ast.Assign):
            found += [(node.lineno, "MODEL_FILE") for t in node.targets
                      if isinstance(t, ast.Name) and t.id == "MODEL_FILE"]
    return found


def test_the_scanner_finds_what_it_looks_for() -> None:
    names = frozenset({"privacy.json"})
    source = ('"""``privacy.json`` in a docstring is prose."""\n'
              'a = "privacy.json"\nb = d / \'privacy.json\'\nc = f"{d}/privacy.json"\n'
              'e = "privacy.json is a file"\nMODEL_FILE = "x"\n')
    assert sorted(line for line, _ in spelled_names(source, names)) == [2, 3, 4, 6]


def test_no_module_outside_the_owner_spells_an_owned_name() -> None:
    names = artifacts.FILE_NAMES | artifacts.DISTINCT_DIR_NAMES
    # Not vacuous: the owner's list holds the names the stages share.
    assert {"privacy.json", "audit.json", "gate.json", "utility.json", "release_stats.json",
            "model.json", "weights.pt", "model.pt", "synthetic.parquet", "schema.yaml",
            "run.json", "cache.json", "datacard.json", "modelcard.json",
            "model_candidate", "classifier_candidate"} <= names
    files = sorted(p for tree in SCANNED_TREES for p in (ROOT / tree).rglob("*.py")
                   if p.resolve() != OWNER.resolve())
    scanned = {p.relative_to(ROOT).as_posix() for p in files}
    assert {"pulsesynth/pipeline.py", "pulsesynth/runs.py", "pulsesynth/governance/candidate.py",
            "pulsesynth/governance/publisher.py", "pulsesynth/governance/catalogue.py",
            "pulsesynth/governance/datacard.py", "pulsesynth/governance/modelcard.py",
            "pulsesynth/portal/app.py", "pulsesynth/classifier/release.py",
            "pulsesynth/synth/synthesizer.py", "pulsesynth/cli.py",
            "pulsesynth/governance_cli.py", "tasks/synthesis.py",
            "flows/nightly.py"} <= scanned
    assert len(files) > 40
    offenders = [f"{p.relative_to(ROOT)}:{line}: {value!r}" for p in files
                 for line, value in spelled_names(p.read_text(encoding="utf-8"), names)]
    assert offenders == [], ("use pulsesynth.artifacts instead of spelling these names:\n"
                             + "\n".join(offenders))
    # ...and the owner itself does spell every one of them.
    owner_literals = {v for _, v in spelled_names(OWNER.read_text(encoding="utf-8"), names)}
    assert names <= owner_literals
