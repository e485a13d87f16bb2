"""Every input path is checked where it enters: one line on stderr, no traceback, nothing
written. Ids, schema bounds and bins, schema and policy YAML, ε, δ, rows, seeds, epochs and
shadows, on the CLI and in the Python API (issue 21, input holes)."""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path

import pytest
import yaml

from pulsesynth import cli, pipeline
from pulsesynth.budget import MAX_LIFETIME_EPSILON, MAX_RUN_EPSILON
from pulsesynth.errors import PulseSynthError, SchemaError
from pulsesynth.gate import PolicyError, evaluate_gate, load_policy
from pulsesynth.ids import DATASET_ID_MAX, DatasetIdError, check_dataset_id
from pulsesynth.params import ParameterError, check_recipe
from pulsesynth.paths import Paths
from pulsesynth.schema import MAX_YAML_BYTES, load_schema, parse_schema
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
TAXI = REPO / "schemas" / "taxi_trips.yaml"
#: "taxi_trips" with a Cyrillic "а" (U+0430) for the Latin "a": prints the same.
LOOKALIKE = "t\u0430xi_trips"
LONG_ID = "a" * 300

#: A "billion laughs" under 1 KB: nine levels of ten aliases, 10⁹ strings once expanded.
ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]"
       for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    + ["id: *i"]) + "\n"


def _taxi_raw() -> dict:
    return yaml.safe_load(TAXI.read_text())


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes: 'nothing changed on disk'.

    Run-lock files (``state/locks/``) are left out: a step takes its dataset's lock before
    it reads its arguments, and a lock file names only its last holder (pid, step, time),
    never data, a charge or a run."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[:2] != ("state", "locks")}


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], root: Path,
             *needles: str) -> str:
    """Run the CLI in-process: exit 2, exactly one line on stderr, no traceback, every
    needle in it, nothing written under ``root``."""
    before = _tree(root)
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in err, (needle, err)
    assert _tree(root) == before
    return err


# --- dataset ids ------------------------------------------------------------------------


def test_a_valid_id_passes_unchanged() -> None:
    assert check_dataset_id("taxi_trips") == "taxi_trips"
    assert check_dataset_id("a" * DATASET_ID_MAX) == "a" * DATASET_ID_MAX


@pytest.mark.parametrize(("value", "reason"), [
    (LOOKALIKE, "non-ASCII U+0430 at position 2"),
    (LONG_ID, "got 300 characters"),
    ("a" * (DATASET_ID_MAX + 1), f"got {DATASET_ID_MAX + 1} characters"),
    ("", "got 0 characters"),
    ("Taxi_trips", "got 'Taxi_trips'"),
    ("1taxi", "got '1taxi'"),
    ("_taxi", "got '_taxi'"),
    ("taxi-trips", "got 'taxi-trips'"),
    ("taxi trips", "got 'taxi trips'"),
    ("taxi\n", "got 'taxi\\n'"),
    ("../taxi", "got '../taxi'"),
])
def test_an_id_that_is_not_an_ascii_lower_case_identifier_is_refused(value: str,
                                                                     reason: str) -> None:
    with pytest.raises(DatasetIdError) as err:
        check_dataset_id(value)
    message = str(err.value)
    assert message.startswith("dataset id must be 1 to 64 ASCII characters")
    assert reason in message and "\n" not in message
    # a look-alike is named by its code point, never printed (it reads as Latin)
    assert "\u0430" not in message


def test_a_schema_declaring_a_lookalike_id_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.yaml", _taxi_raw() | {"id": LOOKALIKE})
    with pytest.raises(SchemaError, match=r"s\.yaml: id: dataset id must be .*U\+0430"):
        load_schema(path)


def test_ingest_of_a_schema_with_a_300_character_id_is_one_line(
        project_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: a raw OSError traceback (file name too long) from writing <id>.parquet.
    schema = _write(tmp_path / "long.yaml", _taxi_raw() | {"id": LONG_ID})
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    _refused(["ingest", str(data), "--dataset", "taxi_trips", "--schema", str(schema)],
             capsys, project_root, "long.yaml: id: dataset id must be", "300 characters")


@pytest.mark.parametrize("argv", [
    ["ingest", "rows.csv", "--dataset", LONG_ID, "--schema", "s.yaml"],
    ["ingest", "rows.csv", "--dataset", LOOKALIKE, "--schema", "s.yaml"],
    ["train", LOOKALIKE],
    ["train", LONG_ID, "--epsilon", "1"],
    ["validate", "Taxi"],
    ["catalog", "show", "../taxi_trips"],
    ["warehouse", "build", "--dataset", LOOKALIKE],
    ["budget", "show", LOOKALIKE],
    ["budget", "set", LONG_ID, "--lifetime", "5", "--steward", "a", "--note", "b"],
    ["releases", "list", "--dataset", LOOKALIKE],
    ["releases", "register", "dir", "--dataset", LOOKALIKE, "--model-id", "m"],
    ["release-classifier", "--dataset", LOOKALIKE],
])
def test_every_cli_id_argument_is_checked_before_anything_runs(
        argv: list[str], project_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(argv, capsys, project_root, "dataset id must be 1 to 64 ASCII")
    assert err.startswith("error: pulsesynth ")


def test_the_python_api_checks_ids_where_they_enter(project_root: Path,
                                                    tmp_path: Path) -> None:
    paths = Paths(project_root)
    before = _tree(project_root)
    with pytest.raises(DatasetIdError, match="U\\+0430"):
        Warehouse(paths).ingest(tmp_path / "rows.csv", LOOKALIKE, TAXI)
    with pytest.raises(DatasetIdError, match="300 characters"):
        pipeline.start_run(LONG_ID, tmp_path / "run", paths=paths)
    with pytest.raises(DatasetIdError):
        pipeline.new_run_dir(paths, "../escape")
    assert _tree(project_root) == before and not (tmp_path / "run").exists()


# --- schema bounds and bins -------------------------------------------------------------


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(("key", "index", "message"), [
    ("bounds", 0, r"must be \[low, high\], finite numbers with low < high"),
    ("bounds", 1, r"must be \[low, high\], finite numbers with low < high"),
    ("bins", 0, "must be a list of at least two finite numbers"),
    ("bins", -1, "must be a list of at least two finite numbers"),
    ("bins", 2, "must be a list of at least two finite numbers"),
])
def test_a_non_finite_bound_or_bin_edge_is_refused(tmp_path: Path, value: float, key: str,
                                                    index: int, message: str) -> None:
    raw = _taxi_raw()
    distance = raw["columns"][2]
    assert distance["name"] == "distance"
    distance[key][index] = value
    path = _write(tmp_path / "s.yaml", raw)
    assert (".inf" in path.read_text()) or (".nan" in path.read_text())
    with pytest.raises(SchemaError, match=rf"columns\[2\] \(distance\)\.{key}: {message}"):
        load_schema(path)


@pytest.mark.parametrize(("field", "value"), [
    ("max_rows_per_unit", float("inf")), ("max_rows_per_unit", "two"),
    ("refresh_days", float("nan")),
])
def test_a_non_integer_privacy_count_is_a_schema_error_not_a_traceback(
        tmp_path: Path, field: str, value: object) -> None:
    raw = _taxi_raw()
    raw["privacy"][field] = value
    with pytest.raises(SchemaError, match=rf"privacy\.{field}: must be of type int"):
        load_schema(_write(tmp_path / "s.yaml", raw))


def test_a_non_integer_min_rows_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="min_rows: must be of type int"):
        load_schema(_write(tmp_path / "s.yaml", _taxi_raw() | {"min_rows": float("inf")}))


# --- YAML: aliases, anchors, size, depth ------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_in_milliseconds(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 1024
    # it is a real bomb: PyYAML's plain safe loader accepts it, ten levels of sharing
    assert yaml.safe_load(ALIAS_BOMB)["id"][0][0][0][0][0][0][0][0][0] == "lol"
    start = time.perf_counter()
    with pytest.raises(SchemaError) as err:
        load_schema(bomb)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    assert str(err.value) == (f"{bomb}: not valid YAML (found an anchor (&): anchors and "
                              "aliases are not allowed (yaml.dump writes them for a shared "
                              "list: dump a deep copy) at line 1, column 4)")


def test_an_alias_bomb_schema_on_the_cli_is_one_line(
        project_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    # (timed above, in the library: the CLI's own start-up imports torch first)
    _refused(["ingest", str(data), "--dataset", "taxi_trips", "--schema", str(bomb)],
             capsys, project_root, "anchors and aliases are not allowed")


@pytest.fixture
def taxi_built(project_root: Path) -> Path:
    Warehouse(Paths(project_root)).build(["taxi_trips"])
    return project_root


@pytest.mark.parametrize(("change", "needle"), [
    ("bomb", "anchors and aliases are not allowed"),
    ("inf_bound", "columns[2] (distance).bounds: must be [low, high], finite numbers"),
    ("huge_epsilon", "privacy.epsilon: 1e+300 is above the public ceiling 10"),
    ("lookalike_id", "id: dataset id must be 1 to 64 ASCII characters"),
])
def test_reingest_with_a_bad_schema_leaves_warehouse_and_ledger_unchanged(
        taxi_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str,
        needle: str) -> None:
    raw = _taxi_raw()
    if change == "inf_bound":
        raw["columns"][2]["bounds"][1] = float("inf")
    elif change == "huge_epsilon":
        raw["privacy"].update(epsilon=1e300, lifetime_epsilon=1e301)
    elif change == "lookalike_id":
        raw["id"] = LOOKALIKE
    schema = _write(tmp_path / "taxi_trips.yaml", raw)
    if change == "bomb":
        schema.write_text(ALIAS_BOMB)
    export = tmp_path / "taxi.parquet"
    served = Warehouse(Paths(taxi_built)).entry("taxi_trips")["table_path"]
    export.write_bytes(Paths(taxi_built).resolve(served).read_bytes())
    # _refused compares every file under the project root (tables, DuckDB catalog,
    # governance store) before and after
    _refused(["ingest", str(export), "--dataset", "taxi_trips", "--schema", str(schema)],
             capsys, taxi_built, needle)


def test_an_alias_without_an_anchor_in_view_is_refused_too(tmp_path: Path) -> None:
    # An alias alone (its anchor undefined) fails as YAML; one with its anchor fails at
    # the anchor: either way no alias is ever expanded.
    path = tmp_path / "s.yaml"
    path.write_text("id: *nowhere\n")
    with pytest.raises(SchemaError, match=r"not valid YAML \(found an alias \(\*\)"):
        load_schema(path)


def test_a_schema_file_over_the_size_limit_is_refused_unparsed(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    text = TAXI.read_text()
    big.write_text(text + "#" * (MAX_YAML_BYTES + 1 - len(text.encode())) + "\n")
    with pytest.raises(SchemaError, match=f"big.yaml: schema file is larger than "
                                          f"{MAX_YAML_BYTES:,} bytes"):
        load_schema(big)


def test_deeply_nested_yaml_is_one_line_not_a_recursion_traceback(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("id: " + "[" * 5000 + "]" * 5000 + "\n")
    start = time.perf_counter()
    with pytest.raises(SchemaError, match=r"deep.yaml: not valid YAML \(nested deeper than 32 "
                                          r"levels at line 1, column 36\)"):
        load_schema(deep)
    # bounded whatever the depth (PyYAML's scanner reads ahead: about 0.4 s here)
    assert time.perf_counter() - start < 2.0


def test_a_yaml_syntax_error_is_one_line_with_its_position_and_no_file_text(
        tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: taxi\ntitle: [private words here\n")
    with pytest.raises(SchemaError) as err:
        load_schema(bad)
    message = str(err.value)
    assert "\n" not in message and "private words" not in message
    assert message.startswith(f"{bad}: not valid YAML (") and "line 3, column 1" in message


def test_a_policy_alias_bomb_is_a_policy_error(tmp_path: Path) -> None:
    bomb = tmp_path / "policy.yaml"
    bomb.write_text(ALIAS_BOMB.replace("id: *i", "labels: *i"))
    start = time.perf_counter()
    with pytest.raises(PolicyError, match="anchors and aliases are not allowed"):
        load_policy(bomb)
    assert time.perf_counter() - start < 0.5


# --- ε, δ and the public ceilings -------------------------------------------------------


def test_a_schema_with_a_huge_epsilon_is_refused_at_the_public_ceiling(tmp_path: Path) -> None:
    raw = _taxi_raw()
    raw["privacy"].update(epsilon=1e300, lifetime_epsilon=1e301)
    with pytest.raises(SchemaError, match=r"privacy\.epsilon: 1e\+300 is above the public "
                                          r"ceiling 10 \(pulsesynth/budget\.py\)"):
        load_schema(_write(tmp_path / "s.yaml", raw))
    raw["privacy"].update(epsilon=1.0)
    with pytest.raises(SchemaError, match=r"privacy\.lifetime_epsilon: 1e\+301 is above the "
                                          "public ceiling 100"):
        load_schema(_write(tmp_path / "s.yaml", raw))


def test_a_schema_at_the_ceilings_is_accepted(tmp_path: Path) -> None:
    raw = _taxi_raw()
    raw["privacy"].update(epsilon=MAX_RUN_EPSILON, lifetime_epsilon=MAX_LIFETIME_EPSILON)
    privacy = load_schema(_write(tmp_path / "s.yaml", raw)).privacy
    assert (privacy.epsilon, privacy.lifetime_epsilon) == (10.0, 100.0)


@pytest.mark.parametrize(("delta", "message"), [
    (0, "must be a positive number"), (1, "must be below 1"), (1.5, "must be below 1"),
    (float("inf"), "must be a positive number"), (float("nan"), "must be a positive number"),
    (-1e-6, "must be a positive number"),
])
def test_a_declared_delta_outside_zero_one_is_refused(tmp_path: Path, delta: float,
                                                       message: str) -> None:
    raw = _taxi_raw()
    raw["privacy"]["delta"] = delta
    with pytest.raises(SchemaError, match=rf"privacy\.delta: {message}"):
        load_schema(_write(tmp_path / "s.yaml", raw))


@pytest.mark.parametrize(("argv", "needle"), [
    (["train", "taxi_trips", "--epsilon", "nan"], "ε must be a finite number above 0, got nan"),
    (["train", "taxi_trips", "--epsilon", "-1"], "ε must be a finite number above 0, got -1.0"),
    (["train", "taxi_trips", "--epsilon", "0"], "ε must be a finite number above 0"),
    (["train", "taxi_trips", "--epsilon", "inf"], "ε must be a finite number above 0"),
    (["train", "taxi_trips", "--epsilon", "1e400"], "ε must be a finite number above 0"),
    (["train", "taxi_trips", "--epsilon", "1e300"], "above the public ceiling 10"),
    (["train", "taxi_trips", "--epsilon", "one"], "expected a number, got 'one'"),
    (["train", "taxi_trips", "--max-rows", "0"], "argument --max-rows: the value must be "
                                                 "at least 1, got 0"),
    (["train", "taxi_trips", "--max-rows", "-5"], "at least 1"),
    (["train", "taxi_trips", "--max-rows", "1.5"], "expected a whole number"),
    (["train", "taxi_trips", "--epochs", "0"], "argument --epochs: the value must be 1 to "
                                               "10000, got 0"),
    (["train", "taxi_trips", "--epochs", "-3"], "argument --epochs"),
    (["train", "taxi_trips", "--seed", "-1"], "argument --seed: the seed must be 0 to"),
    (["train", "taxi_trips", "--seed", str(2**63)], "argument --seed"),
    (["release-classifier", "--dataset", "taxi_trips", "--epsilon", "nan"], "--epsilon"),
    (["release-classifier", "--dataset", "taxi_trips", "--epochs", "0"], "--epochs"),
    (["sample", "run", "--rows", "0"], "argument --rows"),
    (["sample", "run", "--seed", "-2"], "argument --seed"),
    (["sample-release", "--release", "r", "-n", "0"], "argument -n/--rows"),
    (["audit", "run", "--shadows", "0"], "argument --shadows"),
    (["audit", "run", "--seed", "x"], "argument --seed: expected a whole number"),
    (["budget", "set", "taxi_trips", "--lifetime", "1e301", "--steward", "a", "--note", "b"],
     "argument --lifetime: ε 1e+301 is above the public ceiling 100"),
    (["budget", "set", "taxi_trips", "--per-run", "nan", "--steward", "a", "--note", "b"],
     "argument --per-run"),
    (["budget", "set", "taxi_trips", "--per-run", "11", "--steward", "a", "--note", "b"],
     "above the public ceiling 10"),
    (["portal", "--port", "70000"], "argument --port"),
    (["portal", "--sample-rate-window", "0"], "argument --sample-rate-window"),
    (["tokens", "revoke", "--id", "-1"], "argument --id"),
])
def test_cli_numbers_are_refused_in_one_line_before_anything_runs(
        argv: list[str], needle: str, project_root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Before: --epsilon nan trained (reporting ε 0.10), -1 ended in a ValueError traceback,
    # --max-rows 0 trained; 1e300 passed without a word.
    _refused(argv, capsys, project_root, needle)


def test_a_usage_error_is_one_line_and_help_still_exits_zero(
        project_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["ingest", "rows.csv"], capsys, project_root,
             "error: pulsesynth ingest: the following arguments are required: --dataset, "
             "--schema (see pulsesynth ingest --help)")
    assert cli.main(["train", "--help"]) == 0
    assert "--epsilon" in capsys.readouterr().out


# --- the Python API ---------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [float("nan"), float("inf"), -1.0, 0.0, 1e300, True, "1"])
def test_run_epsilon_refuses_what_the_cli_refuses(epsilon: object) -> None:
    schema = load_schema(TAXI)
    with pytest.raises(ParameterError, match="epsilon"):
        pipeline.run_epsilon(schema, epsilon)  # type: ignore[arg-type]
    assert pipeline.run_epsilon(schema, None) == schema.privacy.epsilon == 1.0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_rows": 0}, "max_rows must be at least 1, got 0"),
    ({"max_rows": 2.5}, "max_rows must be a whole number"),
    ({"seed": -1}, "seed must be 0 to"),
    ({"seed": True}, "seed must be a whole number"),
])
def test_start_run_checks_its_arguments_before_reading_or_writing(
        project_root: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    before = _tree(project_root)
    with pytest.raises(ParameterError, match=message):
        pipeline.start_run("taxi_trips", tmp_path / "run", paths=Paths(project_root), **kwargs)
    assert _tree(project_root) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epsilon": float("nan")}, "epsilon must be a finite number above 0, got nan"),
    ({"epsilon": -1.0}, "epsilon must be a finite number above 0"),
    ({"epsilon": 1e300}, "above the public ceiling 10"),
    ({"epochs": 0}, "epochs must be 1 to 10000, got 0"),
    ({"epochs": -1}, "epochs must be 1 to 10000"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"lr": float("nan")}, "lr must be a finite number above 0"),
])
def test_train_checks_epsilon_and_recipe_before_the_ledger_is_charged(
        project_root: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    # No run directory exists: the check comes before anything is read, so nothing can
    # have been charged (the governance store is not even created).
    before = _tree(project_root)
    with pytest.raises(ParameterError, match=message):
        pipeline.train(tmp_path / "run", paths=Paths(project_root), **kwargs)
    assert _tree(project_root) == before


def test_sample_and_audit_check_their_counts_first(tmp_path: Path) -> None:
    run = tmp_path / "run"  # not a run: the argument check answers before anything else
    with pytest.raises(ParameterError, match="rows must be 1 to"):
        pipeline.sample(run, rows=0)
    with pytest.raises(ParameterError, match="seed must be 0 to"):
        pipeline.sample(run, seed=-1)
    with pytest.raises(ParameterError, match="n_shadows must be 1 to 100, got 0"):
        pipeline.audit(run, n_shadows=0)
    with pytest.raises(ParameterError, match="seed must be a whole number"):
        pipeline.audit(run, seed=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("params", "message"), [
    ({"epsilon": float("nan")}, "epsilon must be a finite number above 0"),
    ({"delta": 1.0}, "delta must be strictly between 0 and 1, got 1.0"),
    ({"delta": 0.0}, "delta must be strictly between 0 and 1"),
    ({"epochs": 0}, "epochs must be 1 to 10000"),
    ({"seed": -3}, "seed must be 0 to"),
    ({"max_grad_norm": float("inf")}, "max_grad_norm must be a finite number above 0"),
])
def test_model_constructors_refuse_what_the_pipeline_refuses(params: dict,
                                                             message: str) -> None:
    from pulsesynth.classifier import DPClassifier
    from pulsesynth.synth import DPVAESynthesizer

    schema = load_schema(TAXI)
    for cls in (DPVAESynthesizer, DPClassifier):
        with pytest.raises(ParameterError, match=message):
            cls(schema, **params)
    model = DPVAESynthesizer(schema, epsilon=0.5, seed=1)
    with pytest.raises(ParameterError, match=message):
        model.clone(**params)
    with pytest.raises(ParameterError, match=message):
        model.set_params(**params)
    assert model.get_params()["epsilon"] == 0.5  # a refused set_params changes nothing


def test_model_parameters_are_still_value_errors_for_existing_callers() -> None:
    with pytest.raises(ValueError, match="epochs"):
        check_recipe({"epochs": 0})
    assert issubclass(ParameterError, PulseSynthError)
    check_recipe({"epsilon": 50.0, "delta": None, "seed": 0})  # models take ε above 10


# --- the gate's ε ceiling per label -----------------------------------------------------


def _policy(tmp_path: Path, open_thresholds: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"labels:\n  open: {{{open_thresholds}}}\n"
                    "  confidential: {max_epsilon: 3.0}\n")
    return path


@pytest.mark.parametrize(("thresholds", "message"), [
    ("max_attack_advantage: 0.05", "labels.open.max_epsilon: every label needs its ε ceiling"),
    ("max_epsilon: null", "labels.open.max_epsilon: every label needs its ε ceiling"),
    ("max_epsilon: .inf", "labels.open.max_epsilon: must be a finite number ≥ 0 or null"),
    ("max_epsilon: .nan", "labels.open.max_epsilon: must be a finite number ≥ 0 or null"),
    ("max_epsilon: one", "labels.open.max_epsilon: must be a finite number ≥ 0 or null"),
    ("max_epsilon: 1, max_attack_advantage: -1",
     "labels.open.max_attack_advantage: must be a finite number ≥ 0 or null"),
])
def test_every_policy_label_has_a_finite_epsilon_ceiling(tmp_path: Path, thresholds: str,
                                                          message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")):
        load_policy(_policy(tmp_path, thresholds))


@pytest.mark.parametrize("epsilon", [float("nan"), None, "1.0e300"])
def test_a_release_with_no_finite_epsilon_gets_no_label(epsilon: object) -> None:
    policy = load_policy()
    stats = {"private": True, "statistics": {"max_attack_advantage": {
        "value": 0.0, "ci_high": 0.0, "attacks": ["model_mia"]},
        "exact_match_excess": {"value": 0.0, "p_value": 1.0}}}
    privacy = {"private": True, "epsilon": epsilon}
    assert evaluate_gate(policy, privacy, stats).label == "blocked"
    assert evaluate_gate(policy, privacy | {"epsilon": 0.9}, stats).label == "open"
    assert evaluate_gate(policy, privacy | {"epsilon": 2.9}, stats).label == "confidential"


def test_the_shipped_schemas_still_parse_with_the_new_reader() -> None:
    for path in sorted((REPO / "schemas").glob("*.yaml")):
        schema = load_schema(path)
        assert parse_schema(copy.deepcopy(schema.raw), path).hash == schema.hash
