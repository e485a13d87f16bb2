"""Declared schemas: the four built-ins load, and malformed files fail naming file and field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pulsesynth.errors import SchemaError
from pulsesynth.schema import (
    CLASSIFICATIONS,
    CategoricalColumn,
    NumericColumn,
    TextColumn,
    load_schema,
)

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
        (lambda r: r["columns"][1].update(type="timestamp"), "columns[1] (tip).type",
         "unknown type"),
        (lambda r: r["columns"][1].update(role="secretive"), "columns[1] (tip).role",
         "unknown role"),
        (lambda r: r.update(classification="top-secret"), "classification", "not one of"),
        (lambda r: r.pop("title"), "title", "required"),
        # a deep copy: yaml.safe_dump writes a shared list as an anchor and an alias,
        # which the schema reader refuses before it sees the duplicate
        (lambda r: r["columns"].append(copy.deepcopy(r["columns"][1])), "columns",
         "duplicate column"),
        (lambda r: r["columns"][1].update(categories=["yes"]), "target", "two classes"),
        (lambda r: r["columns"][2].update(bins=[0, 50, 10, 100]), "columns[2] (distance).bins",
         "strictly increasing"),
        (lambda r: r["columns"][2].update(bounds=[5, 1]), "columns[2] (distance).bounds",
         "low < high"),
        (lambda r: r.update(row_key="nope"), "row_key", "not a declared column"),
        (lambda r: r["privacy"].update(epsilon=-1), "privacy.epsilon", "positive"),
        (lambda r: r["privacy"].update(epsilon="one"), "privacy.epsilon",
         "must be of type int or float"),
        (lambda r: r.update(surprise=1), "surprise", "unknown field"),
        (lambda r: r["columns"][2].update(exact_values=7), "columns[2] (distance).exact_values",
         "must be a list of finite numbers"),
        (lambda r: r["columns"][2].update(exact_values=[500]),
         "columns[2] (distance).exact_values", "within the bounds"),
        (lambda r: r["columns"][2].update(exact_values=[0]),  # zero_bin already declares 0
         "columns[2] (distance).exact_values", "duplicates"),
        (lambda r: r["columns"][1].update(exact_values=[1]), "columns[1] (tip).exact_values",
         "only numeric columns have exact_values"),
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


# Measured before Column became a sum type: the hash binds models, caches and published
# files to their declaration, so a refactor of the parser must never move it. An intended
# edit of a schema file (or a new one) updates its line here, in the same commit.
SHIPPED_SCHEMA_HASHES = {
    "benchmarks/suite/schemas/boston_hmda.yaml":
        "2093aeecbf464c8b1739abf9b67fabd650727fa2636e152bf0e1e10f68e818d8",
    "benchmarks/suite/schemas/diamonds.yaml":
        "1cbf8b15cc269c0c7798a8044f79057fe15b58be1288a790a17d3d80cc46e87d",
    "benchmarks/suite/schemas/doctor_aus.yaml":
        "42aa960bec378dfd768e378642e4ff4cb450c58e4d06058acc5a3e3622b1355f",
    "benchmarks/suite/schemas/email_spam.yaml":
        "e8ad72522db22d9dd07089453041c479065ea6a072f56b165e5d4938d8185697",
    "benchmarks/suite/schemas/flchain.yaml":
        "91cb36bd9615ea20ef124ad10cb92570f7c73ffcd0dc4308bfc92fd65b8fe7ed",
    "benchmarks/suite/schemas/german_health.yaml":
        "4a33d25ec02b38bb2578cbaa638e3295957dee2d9d9328e00511b9b7a4ae1561",
    "benchmarks/suite/schemas/islr_wage.yaml":
        "11d5a5627014107242fef6b3108e59578d7cd71542d04e3dc3740da07484d5df",
    "benchmarks/suite/schemas/k401k.yaml":
        "feadd95e97e04bafa22a94c102c394b8327e646441ec96323458861759b0eef7",
    "benchmarks/suite/schemas/monica.yaml":
        "06795430505af83133ddf13521406f0dd7025890b9ec999d1b706ed6981fdfca",
    "benchmarks/suite/schemas/saratoga_houses.yaml":
        "358e56cc04448aaf485517bf05d4e007cf5229b300609139521477b525f1452f",
    "benchmarks/suite/schemas/wives_insurance.yaml":
        "1a4ce626312490e74f781f1a4f90637515ef059a2e56ee63871dbb20a268736b",
    "schemas/census_income.yaml":
        "981472f23df9fff85cf46c2fc37e5e5c2ab24421e8bbb1665eb8cc4c03b423bc",
    "schemas/patient_tests.yaml":
        "1c773cf39dbc20bacb9c5eab1f1b7c1c9d081bfa952c16de702a1111a8b77292",
    "schemas/taxi_trips.yaml":
        "d2b344fff24e52a6f374e2b031938eb97082b9384230cc9a92c1b71b29783f6c",
    "schemas/traffic_accidents.yaml":
        "2fcde7ae636dd281c0fd483abc945e9ba1d72aa66322aeafde359c148825e754",
}


@pytest.mark.parametrize("relpath", sorted(SHIPPED_SCHEMA_HASHES))
def test_shipped_schema_hashes_are_unchanged(relpath: str) -> None:
    assert load_schema(REPO / relpath).hash == SHIPPED_SCHEMA_HASHES[relpath]


def test_every_shipped_schema_is_pinned() -> None:
    shipped = sorted(str(p.relative_to(REPO)) for pattern in ("schemas/*.yaml",
                                                               "benchmarks/suite/schemas/*.yaml")
                     for p in REPO.glob(pattern))
    assert shipped == sorted(SHIPPED_SCHEMA_HASHES)


@pytest.mark.parametrize("relpath", sorted(SHIPPED_SCHEMA_HASHES))
def test_columns_parse_to_the_sum_type_of_their_declared_type(relpath: str) -> None:
    schema = load_schema(REPO / relpath)
    kinds = {"categorical": CategoricalColumn, "integer": NumericColumn,
             "float": NumericColumn, "text": TextColumn}
    for col in schema.columns:
        assert type(col) is kinds[col.type], col.name
        if isinstance(col, CategoricalColumn):
            assert col.categories and not hasattr(col, "bounds") and not hasattr(col, "bins")
        elif isinstance(col, NumericColumn):
            lo, hi = col.bounds
            assert lo < hi and col.bins[0] == lo and col.bins[-1] == hi, col.name
            assert col.scale in ("linear", "log") and not hasattr(col, "categories")
        else:
            assert not col.is_synthesized
            assert not any(hasattr(col, f) for f in ("categories", "bounds", "bins"))
    assert all(not isinstance(c, TextColumn) for c in schema.synthesized_columns)
    target = schema.target_column
    assert target is not None and target.name == schema.target
    assert isinstance(target, CategoricalColumn) and len(target.categories) >= 2


def test_column_fields_follow_the_declaration() -> None:
    schema = load_schema(REPO / "schemas" / "taxi_trips.yaml")
    tip = schema.column("tip")
    assert tip == CategoricalColumn(name="tip", role="target", categories=("no", "yes"),
                                    description=tip.description)
    distance = schema.column("distance")
    assert isinstance(distance, NumericColumn) and distance.type == "float"
    assert distance.exact_values == (0,) and distance.scale == "linear"
    assert distance.bounds == tuple(schema.raw["columns"][2]["bounds"])
    assert distance.bins == tuple(schema.raw["columns"][2]["bins"])
    crash = load_schema(REPO / "schemas" / "traffic_accidents.yaml").column("crash_id")
    assert isinstance(crash, TextColumn) and crash.role == "identifier"


def test_classifications_come_from_labels_and_keep_their_order() -> None:
    # Schema error messages list the choices in this order; it must not move.
    from pulsesynth.labels import DATASET_CLASSIFICATIONS, RELEASE_LABELS

    assert CLASSIFICATIONS is DATASET_CLASSIFICATIONS
    assert CLASSIFICATIONS == ("open", "confidential", "sensitive", "secret")
    assert CLASSIFICATIONS[:len(RELEASE_LABELS)] == RELEASE_LABELS


def test_exact_values_join_zero_bin_in_ascending_order(tmp_path: Path) -> None:
    raw = _taxi_raw()
    raw["columns"][2].update(exact_values=[42.5, 7])
    distance = load_schema(_write(tmp_path / "s.yaml", raw)).column("distance")
    assert isinstance(distance, NumericColumn)
    assert distance.exact_values == (0, 7, 42.5)
