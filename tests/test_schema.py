"""Declared schemas: the four built-ins load, and malformed files fail naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pulsesynth.errors import SchemaError
from pulsesynth.schema import CLASSIFICATIONS, load_schema

REPO = Path(__file__).resolve().parent.parent
BUILTINS = ["census_income", "traffic_accidents", "patient_tests", "taxi_trips"]


@pytest.mark.parametrize("dataset", BUILTINS)
def test_builtin_schema_loads_with_public_domains(dataset: str) -> None:
    schema = load_schema(REPO / "schemas" / f"{dataset}.yaml")
    assert schema.id == dataset
    assert schema.classification in CLASSIFICATIONS
    assert schema.target and schema.column(schema.target).role == "target"
    for col in schema.synthesized_columns:
        if col.type == "categorical":
            assert col.categories
        else:
            assert col.bins[0] == col.bounds[0] and col.bins[-1] == col.bounds[1]
    assert all(c.role != "identifier" for c in schema.synthesized_columns)


def test_compound_row_key_and_privacy_unit_for_traffic() -> None:
    schema = load_schema(REPO / "schemas" / "traffic_accidents.yaml")
    assert schema.row_key == ("yearacc", "caseid", "occRole")
    # The unit is the crash, not the vehicle that (yearacc, caseid) names.
    assert schema.privacy_unit == ("crash_id",)
    crash = schema.column("crash_id")
    assert (crash.type, crash.role, crash.is_synthesized) == ("text", "identifier", False)


def test_schema_hash_changes_with_the_declaration(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "schemas" / "taxi_trips.yaml").read_text())
    a = _write(tmp_path / "a.yaml", raw)
    raw["columns"][2]["bounds"] = [0, 200]
    raw["columns"][2]["bins"][-1] = 200
    b = _write(tmp_path / "b.yaml", raw)
    assert load_schema(a).hash != load_schema(b).hash


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def _taxi_raw() -> dict:
    return yaml.safe_load((REPO / "schemas" / "taxi_trips.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda r: r["columns"][1].update(type="datetime"), "columns[1] (tip).type",
         "unknown type"),
        (lambda r: r["columns"][1].update(role="secretive"), "columns[1] (tip).role",
         "unknown role"),
        (lambda r: r.update(classification="top-secret"), "classification", "not one of"),
        (lambda r: r.pop("title"), "title", "required"),
        (lambda r: r["columns"].append(dict(r["columns"][1])), "columns", "duplicate column"),
        (lambda r: r["columns"][1].update(categories=["yes"]), "target", "two classes"),
        (lambda r: r["columns"][2].update(bins=[0, 50, 10, 100]), "columns[2] (distance).bins",
         "strictly increasing"),
        (lambda r: r["columns"][2].update(bounds=[5, 1]), "columns[2] (distance).bounds",
         "low < high"),
        (lambda r: r.update(row_key="nope"), "row_key", "not a declared column"),
        (lambda r: r["privacy"].update(epsilon=-1), "privacy.epsilon", "positive"),
        (lambda r: r.update(surprise=1), "surprise", "unknown field"),
    ],
)
def test_malformed_schema_names_file_and_field(tmp_path: Path, mutate, field: str,
                                               message: str) -> None:
    raw = _taxi_raw()
    mutate(raw)
    path = _write(tmp_path / "bad.yaml", raw)
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    assert str(path) in str(err.value)
    assert field in str(err.value)
    assert message in str(err.value)


def test_unparseable_yaml_and_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(SchemaError, match="broken.yaml: not valid YAML"):
        load_schema(bad)
    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema(tmp_path / "absent.yaml")


def test_traffic_dead_leaks_the_target_and_is_never_a_predictor() -> None:
    from pulsesynth.utility import FeatureEncoder

    schema = load_schema(REPO / "schemas" / "traffic_accidents.yaml")
    assert schema.leaks_target == ("dead",)
    assert schema.not_predictors == ["serious_injury", "dead"]
    assert "dead" in [c.name for c in schema.synthesized_columns]  # still published
    names = FeatureEncoder.from_schema(schema, exclude=schema.not_predictors).feature_names
    assert not [n for n in names if n.startswith(("dead", "serious_injury"))]


@pytest.mark.parametrize(("value", "message"), [
    (["nope"], "'nope' is not a declared column"),
    (["income"], "cannot list the target itself"),
])
def test_leaks_target_must_name_other_declared_columns(tmp_path: Path, value: list[str],
                                                      message: str) -> None:
    raw = yaml.safe_load((REPO / "schemas" / "census_income.yaml").read_text())
    raw["leaks_target"] = value
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SchemaError, match=f"leaks_target: {message}"):
        load_schema(path)
