"""Schema-bound encoder: state from the schema only, domains and dtypes respected."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pulsesynth.encoding import TableEncoder, _decode_numeric
from pulsesynth.schema import DatasetSchema, parse_schema

TOY = {
    "id": "toy",
    "title": "Toy",
    "classification": "sensitive",
    "steward": "tests",
    "target": "label",
    "row_key": "rid",
    "privacy_unit": "person",
    "privacy": {"epsilon": 1.0, "delta": None, "lifetime_epsilon": 10.0, "refresh_days": 30,
                "max_rows_per_unit": 1},
    "columns": [
        {"name": "rid", "type": "integer", "role": "identifier", "bounds": [1, 10**7]},
        {"name": "person", "type": "integer", "role": "identifier", "bounds": [1, 10**7]},
        {"name": "note", "type": "text", "role": "other", "nullable": True},
        {"name": "color", "type": "categorical", "role": "other", "nullable": True,
         "categories": ["red", "green", "blue"]},
        {"name": "size", "type": "categorical", "role": "other", "categories": ["S", "M", "L"]},
        {"name": "code", "type": "categorical", "role": "other", "categories": [1, 2, 3]},
        {"name": "ncode", "type": "categorical", "role": "other", "nullable": True,
         "categories": [10, 20]},
        {"name": "age", "type": "integer", "role": "quasi_identifier", "bounds": [17, 90],
         "bins": [17, 25, 40, 65, 90]},
        {"name": "gain", "type": "integer", "role": "sensitive", "bounds": [0, 99999],
         "bins": [0, 1000, 10000, 99999], "zero_bin": True, "scale": "log"},
        {"name": "year", "type": "integer", "role": "other", "nullable": True,
         "bounds": [1950, 2010], "bins": [1950, 1980, 2000, 2010]},
        {"name": "ratio", "type": "float", "role": "other", "nullable": True,
         "bounds": [-5.0, 5.0], "bins": [-5.0, 0.0, 0.5, 5.0]},
        {"name": "dist", "type": "float", "role": "other", "bounds": [0, 100],
         "bins": [0, 1, 10, 100], "zero_bin": True, "scale": "log"},
        {"name": "label", "type": "categorical", "role": "target", "categories": ["no", "yes"]},
    ],
}


def toy_schema() -> DatasetSchema:
    return parse_schema(json.loads(json.dumps(TOY)))


def toy_frame(n: int, seed: int) -> pd.DataFrame:
    """A random table inside the toy domain (a few nulls where allowed)."""
    rng = np.random.default_rng(seed)
    color = pd.Series(rng.choice(["red", "green", "blue"], n), dtype="str")
    color[rng.random(n) < 0.1] = None
    year = pd.array(rng.integers(1950, 2011, n), dtype="Int64")
    year[rng.random(n) < 0.1] = pd.NA
    ratio = rng.uniform(-5, 5, n)
    ratio[rng.random(n) < 0.1] = np.nan
    gain = np.where(rng.random(n) < 0.7, 0, rng.integers(1, 99999, n))
    ncode = pd.array(rng.choice([10, 20], n), dtype="Int64")
    ncode[rng.random(n) < 0.1] = pd.NA
    return pd.DataFrame({
        "rid": np.arange(1, n + 1),
        "person": rng.integers(1, max(2, n // 2), n),
        "note": pd.Series(["x"] * n, dtype="str"),
        "color": color,
        "size": pd.Series(rng.choice(["S", "M", "L"], n), dtype="str"),
        "code": rng.choice([1, 2, 3], n).astype("int64"),
        "ncode": ncode,
        "age": rng.integers(17, 91, n).astype("int64"),
        "gain": gain.astype("int64"),
        "year": year,
        "ratio": ratio,
        "dist": np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 100, n)),
        "label": pd.Series(np.where(rng.random(n) < 0.3, "yes", "no"), dtype="str"),
    })


EXPECTED_DTYPES = {
    "color": "str", "size": "str", "code": "int64", "ncode": "Int64", "age": "int64",
    "gain": "int64", "year": "Int64", "ratio": "float64", "dist": "float64", "label": "str",
}


def assert_in_domain(out: pd.DataFrame, schema: DatasetSchema) -> None:
    """Every synthesized value lies in its declared domain; nulls only where nullable."""
    assert list(out.columns) == [c.name for c in schema.synthesized_columns]
    for col in schema.synthesized_columns:
        s = out[col.name]
        if not col.nullable:
            assert not s.isna().any(), col.name
        vals = s.dropna()
        if col.type == "categorical":
            assert set(vals.tolist()) <= set(col.categories), col.name
        else:
            lo, hi = col.bounds
            assert ((vals >= lo) & (vals <= hi)).all(), col.name
            if col.type == "integer":
                assert (vals.astype("float64") % 1 == 0).all(), col.name


def test_layout_and_blocks() -> None:
    enc = TableEncoder(toy_schema())
    names = [b[0] for b in enc.blocks]
    assert names == list(EXPECTED_DTYPES)  # identifiers and text are not encoded
    widths = dict((b[0], b[2]) for b in enc.blocks)
    assert widths["color"] == 4  # 3 + missing
    assert widths["gain"] == 1 + 3  # zero level + 3 bins
    assert widths["year"] == 3 + 1
    assert widths["ratio"] == 3 + 1
    assert sum(widths.values()) == enc.width
    starts = [b[1] for b in enc.blocks]
    assert starts == sorted(starts) and starts[0] == 0


def test_state_depends_only_on_schema() -> None:
    schema = toy_schema()
    a, b = TableEncoder(schema), TableEncoder(schema)
    a.transform(toy_frame(200, seed=1))
    b.transform(toy_frame(50, seed=2).iloc[::-1])
    assert a.state_dict() == b.state_dict()
    assert a.state_dict() == TableEncoder(schema).state_dict()
    json.dumps(a.state_dict())  # JSON-able


def test_transform_is_one_hot_per_block() -> None:
    enc = TableEncoder(toy_schema())
    x = enc.transform(toy_frame(300, seed=3))
    assert x.dtype == np.float32 and x.shape == (300, enc.width)
    for _, start, width in enc.blocks:
        assert np.all(x[:, start:start + width].sum(axis=1) == 1.0)


def test_unknown_category_never_reaches_output() -> None:
    schema = toy_schema()
    enc = TableEncoder(schema)
    df = toy_frame(100, seed=4)
    df.loc[:9, "color"] = "purple"  # nullable: goes to missing
    df.loc[:4, "size"] = "XXL"  # not nullable: cell left unobserved
    x = enc.transform(df)
    rep = enc.last_transform_report
    assert rep["columns"]["color"]["unknown_category"] == 10
    assert rep["columns"]["size"]["unknown_category"] == 5
    assert rep["columns"]["size"]["unobserved"] == 5
    name, start, width = next(b for b in enc.blocks if b[0] == "size")
    assert np.all(x[:5, start:start + width] == 0)
    color = next(b for b in enc.blocks if b[0] == "color")
    assert np.all(x[:10, color[1] + color[2] - 1] == 1)  # missing level
    out = enc.inverse_transform(x, np.random.default_rng(0))
    assert "purple" not in set(out["color"].dropna()) and "XXL" not in set(out["size"])
    assert out["color"][:10].isna().all()
    assert_in_domain(out, schema)
    # the report holds counts only, never values
    assert "purple" not in json.dumps(rep) and "XXL" not in json.dumps(rep)


def test_out_of_bounds_numbers_are_clipped_and_counted() -> None:
    enc = TableEncoder(toy_schema())
    df = toy_frame(20, seed=5)
    df.loc[0, "age"] = 150
    df.loc[1, "age"] = 3
    df.loc[2, "dist"] = 1e6
    x = enc.transform(df)
    assert enc.last_transform_report["columns"]["age"]["clipped"] == 2
    assert enc.last_transform_report["columns"]["dist"]["clipped"] == 1
    out = enc.inverse_transform(x, np.random.default_rng(0))
    assert 65 <= out.loc[0, "age"] <= 90 and 17 <= out.loc[1, "age"] < 25


def test_decoded_output_within_domain_and_dtypes() -> None:
    schema = toy_schema()
    enc = TableEncoder(schema)
    rng = np.random.default_rng(6)
    probs = rng.random((2000, enc.width))  # arbitrary, unnormalised scores
    out = enc.inverse_transform(probs, rng)
    assert len(out) == 2000
    assert {c: str(t) for c, t in out.dtypes.items()} == EXPECTED_DTYPES
    assert_in_domain(out, schema)
    for col in ("color", "ncode", "year", "ratio"):  # nullable columns do produce NA
        assert out[col].isna().any()
    assert (out["gain"] == 0).any() and (out["gain"] > 0).any()


def test_one_hot_round_trip_keeps_bins_and_categories() -> None:
    schema = toy_schema()
    enc = TableEncoder(schema)
    df = toy_frame(500, seed=7)
    x = enc.transform(df)
    out = enc.inverse_transform(x, np.random.default_rng(8))
    x2 = enc.transform(out)
    np.testing.assert_array_equal(x, x2)
    for col in ("color", "size", "code", "ncode", "label"):
        pd.testing.assert_series_equal(
            out[col].reset_index(drop=True), df[col].reset_index(drop=True),
            check_dtype=False, check_names=False,
        )
    assert ((df["gain"] == 0) == (out["gain"] == 0)).all()


def test_integer_categories_accept_floats_and_strings() -> None:
    enc = TableEncoder(toy_schema())
    df = toy_frame(6, seed=9)
    df["code"] = pd.Series(["1", "2", "3", "1", "2", "9"], dtype="str")
    enc.transform(df)
    assert enc.last_transform_report["columns"]["code"]["unknown_category"] == 1
    df["code"] = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    enc.transform(df)
    assert enc.last_transform_report["columns"]["code"]["unknown_category"] == 0


def test_rejects_wrong_width() -> None:
    enc = TableEncoder(toy_schema())
    with pytest.raises(ValueError):
        enc.inverse_transform(np.ones((3, enc.width + 1)), np.random.default_rng(0))


def test_real_schemas_build() -> None:
    from pathlib import Path

    from pulsesynth.relations import apply_relations
    from pulsesynth.schema import load_schema

    for path in sorted(Path(__file__).resolve().parents[1].glob("schemas/*.yaml")):
        schema = load_schema(path)
        enc = TableEncoder(schema)
        out = enc.inverse_transform(np.ones((50, enc.width)), np.random.default_rng(0))
        # codebook-derived columns are not modelled: sampling fills them from their source
        out = apply_relations(out, schema.relations,
                              [c.name for c in schema.synthesized_columns])
        assert_in_domain(out, enc.schema)


def test_pandas_categorical_and_object_inputs_encode_the_same() -> None:
    enc = TableEncoder(toy_schema())
    df = toy_frame(80, seed=12)
    x0 = enc.transform(df)
    other = df.copy()
    for col in ("color", "size", "code", "ncode", "label"):
        other[col] = other[col].astype("category")
    other["age"] = other["age"].astype(object)
    np.testing.assert_array_equal(x0, enc.transform(other))


def _exact_schema() -> DatasetSchema:
    raw = json.loads(json.dumps(TOY))
    cols = {c["name"]: c for c in raw["columns"]}
    # 1980 is a bin's left edge, 1990 inside [1980, 2000), 2010 the upper bound;
    # 0.5 is the left edge of the float bin [0.5, 5.0].
    cols["year"]["exact_values"] = [1980, 1990, 2010]
    cols["ratio"]["exact_values"] = [0.5]
    return parse_schema(raw)


def test_declared_exact_values_are_levels_of_their_own() -> None:
    enc = TableEncoder(_exact_schema())
    year = next(b for b in enc.block_specs if b.name == "year")
    assert year.levels == ("<exactly 1980>", "<exactly 1990>", "<exactly 2010>",
                           (1950.0, 1980.0), (1980.0, 2000.0), (2000.0, 2010.0), "<missing>")
    frame = toy_frame(6, seed=1)
    frame["year"] = pd.array([1980, 1990, 2010, 1981, 1950, None], dtype="Int64")
    frame["ratio"] = [0.5, 0.6, -1.0, 0.5, 4.9, 0.0]
    levels = enc.levels(frame)
    names = [b.name for b in enc.block_specs]
    assert levels[:, names.index("year")].tolist() == [0, 1, 2, 4, 3, 6]
    assert levels[:, names.index("ratio")].tolist() == [0, 3, 1, 0, 3, 2]


def test_exact_values_decode_exactly_and_bins_never_draw_them() -> None:
    schema = _exact_schema()
    enc = TableEncoder(schema)
    names = [b.name for b in enc.block_specs]
    n = 4000
    levels = np.zeros((n, len(names)), dtype=np.int64)
    year_level = np.arange(n) % 7  # every year level, missing included
    ratio_level = np.arange(n) % 5
    levels[:, names.index("year")] = year_level
    levels[:, names.index("ratio")] = ratio_level
    out = enc.decode_levels(levels, np.random.default_rng(0))
    year, ratio = out["year"], out["ratio"]
    assert (year[year_level == 0] == 1980).all() and (year[year_level == 1] == 1990).all()
    assert (year[year_level == 2] == 2010).all() and year[year_level == 6].isna().all()
    in_bins = year[(year_level >= 3) & (year_level <= 5)].astype(int)
    assert not in_bins.isin([1980, 1990, 2010]).any()
    # The bin [1980, 2000) still covers every other integer in it: 1981..1989, 1991..1999.
    assert set(year[year_level == 4].astype(int)) == set(range(1981, 2000)) - {1990}
    assert (ratio[ratio_level == 0] == 0.5).all()
    assert not ratio[ratio_level == 3].isin([0.5]).any()
    assert ratio[ratio_level == 3].between(0.5, 5.0).all()



class _TopUniforms:
    """Uniform draws at their top, 1.0: a value drawn in [a, b) lands on b exactly."""

    def random(self, n: int) -> np.ndarray:
        return np.ones(n)


def test_a_float_exact_value_at_a_bins_upper_edge_is_never_drawn_inside_it() -> None:
    raw = json.loads(json.dumps(TOY))
    cols = {c["name"]: c for c in raw["columns"]}
    cols["ratio"]["exact_values"] = [5.0]  # the upper bound: the last bin's right edge
    enc = TableEncoder(parse_schema(raw))
    block = next(b for b in enc.block_specs if b.name == "ratio")
    col = next(c for c in enc.columns if c.name == "ratio")
    assert block.levels[3] == (0.5, 5.0)
    ratio = _decode_numeric(col, block, np.full(4, 3), _TopUniforms())  # type: ignore[arg-type]
    assert (ratio < 5.0).all() and (ratio == np.nextafter(5.0, 0.5)).all()
