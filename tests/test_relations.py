"""Codebook relations: declared in the schema, checked there, kept by every sampled row."""

from __future__ import annotations

import copy

import pytest

from pulsesynth.errors import SchemaError
from pulsesynth.relations import Derive, Implies, derived_columns, violations
from pulsesynth.synth import DPVAESynthesizer


def test_census_declares_the_adult_codebook_relations(built_warehouse) -> None:
    schema = built_warehouse.schema("census_income")
    derive, husband, wife = schema.relations
    assert isinstance(derive, Derive) and (derive.column, derive.source) == (
        "education_num", "education")
    assert dict(derive.mapping)["Bachelors"] == 13 and len(derive.mapping) == 16
    assert husband == Implies((("relationship", "Husband"),), (("sex", "Male"),))
    assert wife == Implies((("relationship", "Wife"),), (("sex", "Female"),))
    assert derived_columns(schema.relations) == {"education_num"}


def test_every_sampled_row_keeps_the_codebook(built_warehouse) -> None:
    snap = built_warehouse.pull("census_income")
    real = snap.frame.sample(2000, random_state=0)
    synth = DPVAESynthesizer(snap.schema, private=False, seed=0, epochs=2,
                             hidden=(32, 32), latent_dim=4).fit(real)
    assert "education_num" not in synth.encoder.column_names  # derived, not modelled
    table = synth.sample(5000, seed=1)
    assert list(table.columns) == [c.name for c in snap.schema.synthesized_columns]
    assert violations(table, snap.schema.relations) == 0
    assert (table.loc[table["relationship"] == "Husband", "sex"] == "Male").all()
    assert set(table["education_num"]) <= set(range(1, 17))
    # the real rows are not forced to agree (a few contradict the codebook)
    assert violations(snap.frame, snap.schema.relations) == 4


@pytest.mark.parametrize(("relation", "message"), [
    ({"derive": "education_num", "from": "education", "map": {"Bachelors": 13}},
     "must map every category of education"),
    ({"derive": "nope", "from": "education", "map": {}}, "'nope' is not a declared"),
    ({"if": {"relationship": "Husband"}, "then": {"sex": "Neither"}},
     "'Neither' is not a declared category of sex"),
    ({"if": {"relationship": "Husband"}}, "then: must map columns to values"),
    ({"sex": "Male"}, "must be a derive: or an if:/then: relation"),
])
def test_malformed_relations_are_clear_errors(built_warehouse, relation, message) -> None:
    from pulsesynth.schema import parse_schema

    raw = copy.deepcopy(built_warehouse.schema("census_income").raw)
    raw["relations"] = [relation]
    with pytest.raises(SchemaError, match=message):
        parse_schema(raw)
