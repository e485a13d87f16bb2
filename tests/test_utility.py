"""Utility metrics: fidelity of a perfect copy, the gap of pure noise, multiclass, privacy."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from pulsesynth.schema import DatasetSchema, parse_schema
from pulsesynth.utility import (
    FeatureEncoder,
    column_shapes,
    evaluate_utility,
    make_classifier,
    pair_trends,
    synthetic_ranking_agreement,
)

N_TRAIN, N_HOLDOUT = 1500, 800
REGIONS = ["north", "south", "east", "west"]
LEVELS = [1, 2, 3]


def toy_schema(classes: list[str]) -> DatasetSchema:
    """A small declared schema whose target depends on age and region."""
    return parse_schema({
        "id": "toy",
        "title": "Toy",
        "classification": "sensitive",
        "steward": "tests",
        "target": "outcome",
        "row_key": "rid",
        "privacy": {"epsilon": 1.0, "lifetime_epsilon": 10.0, "refresh_days": 30},
        "columns": [
            {"name": "rid", "type": "integer", "role": "identifier", "bounds": [1, 10**6]},
            {"name": "note", "type": "text", "role": "other", "nullable": True},
            {"name": "age", "type": "integer", "role": "quasi_identifier", "nullable": True,
             "bounds": [18, 90], "bins": [18, 30, 45, 60, 90]},
            {"name": "income", "type": "float", "role": "sensitive", "nullable": True,
             "bounds": [0, 200000], "bins": [0, 20000, 50000, 100000, 200000], "scale": "log"},
            {"name": "region", "type": "categorical", "role": "other", "nullable": True,
             "categories": REGIONS},
            {"name": "level", "type": "categorical", "role": "other", "categories": LEVELS},
            {"name": "outcome", "type": "categorical", "role": "target", "nullable": True,
             "categories": classes},
        ],
    })


BINARY = toy_schema(["no", "yes"])
MULTI = toy_schema(["low", "mid", "high"])


def make_real(schema: DatasetSchema, n: int, seed: int) -> pd.DataFrame:
    """Rows with nullable dtypes and missing cells; the target is learnable from age/region."""
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 14, n).round().clip(18, 90).astype(int)
    region = rng.choice(REGIONS, n, p=[0.4, 0.3, 0.2, 0.1])
    income = np.exp(rng.normal(10.5, 0.7, n)).clip(0, 200000) + 30 * (age - 18)
    level = rng.choice(LEVELS, n, p=[0.6, 0.3, 0.1])
    signal = (age - 50) / 8 + np.where(region == "north", 2.0, 0.0) - np.where(
        region == "west", 1.5, 0.0) + rng.logistic(0, 0.6, n)
    classes = list(schema.column("outcome").categories or ())
    if len(classes) == 2:
        outcome = np.where(signal > 0, classes[1], classes[0]).astype(object)
    else:
        outcome = np.select([signal < -1.5, signal < 1.5], classes[:2], classes[2]).astype(object)
    frame = pd.DataFrame({
        "rid": pd.array(np.arange(seed * n + 1, seed * n + n + 1), dtype="Int64"),
        "note": pd.array(["free text"] * n, dtype="str"),
        "age": pd.array(age, dtype="Int64"),
        "income": pd.array(income, dtype="Float64"),
        "region": pd.array(region, dtype="str"),
        "level": pd.array(level, dtype="Int64"),
        "outcome": pd.array(outcome, dtype="str"),
    })
    for name, share in (("age", 0.03), ("income", 0.1), ("region", 0.05), ("outcome", 0.02)):
        frame.loc[rng.random(n) < share, name] = pd.NA
    return frame


def uniform_noise(schema: DatasetSchema, n: int, seed: int) -> pd.DataFrame:
    """A 'synthesizer' that ignores the data: independent, uniform over the declared domain."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for col in schema.synthesized_columns:
        if col.type == "categorical":
            data[col.name] = rng.choice(np.array(col.categories, dtype=object), n)
        else:
            lo, hi = col.bounds
            data[col.name] = rng.uniform(lo, hi, n)
    return pd.DataFrame(data)


@pytest.fixture(scope="module", autouse=True)
def _one_openmp_thread() -> Any:
    """Keep HistGradientBoosting on one OpenMP thread: spinning threads on a busy 2-core box
    slow these small fits twenty-fold, and one thread is fastest at this size anyway."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def binary_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_real(BINARY, N_TRAIN, 1), make_real(BINARY, N_HOLDOUT, 2)


@pytest.fixture(scope="module")
def copy_result(binary_data: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
    train, holdout = binary_data
    return evaluate_utility(BINARY, train, holdout, train.copy(), seed=3)


@pytest.fixture(scope="module")
def noise_result(binary_data: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
    train, holdout = binary_data
    return evaluate_utility(BINARY, train, holdout, uniform_noise(BINARY, N_TRAIN, 9), seed=3)


# --- a perfect copy --------------------------------------------------------------------------


def test_copy_of_real_train_gives_tstr_equal_to_trtr(copy_result: dict[str, Any]) -> None:
    assert set(copy_result["trtr"]) == {"logreg", "random_forest", "hist_gb"}
    assert copy_result["tstr"] == copy_result["trtr"]
    for scores in copy_result["trtr"].values():
        assert set(scores) == {"accuracy", "auc", "f1", "recall"}
        # The toy target is learnable: every model beats the majority baseline.
        assert scores["accuracy"] > copy_result["majority_accuracy"] + 0.1
        assert scores["auc"] > 0.85


def test_copy_of_real_train_has_perfect_shapes_and_trends(copy_result: dict[str, Any]) -> None:
    shapes, trends = copy_result["column_shapes"], copy_result["pair_trends"]
    synthesized = ["age", "income", "region", "level", "outcome"]
    assert list(shapes["columns"]) == synthesized  # identifiers and free text are skipped
    assert shapes["mean"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in shapes["columns"].values())
    assert len(trends["pairs"]) == 10 and "age|income" in trends["pairs"]
    assert trends["mean"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in trends["pairs"].values())


def test_copy_of_real_train_has_near_zero_pmse(copy_result: dict[str, Any]) -> None:
    # Every real row has a synthetic twin, so the best propensity is 1/2 everywhere; only
    # the solver's tolerance keeps it off exactly 0.
    assert 0.0 <= copy_result["pmse"] < 1e-4
    assert copy_result["pmse_ratio"] < 1.0


def test_pmse_and_tsts_equal_the_plain_computation_on_stacked_and_split_rows(
        binary_data: tuple[pd.DataFrame, pd.DataFrame],
        noise_result: dict[str, Any]) -> None:
    # evaluate_utility fills pMSE's matrix in place and frees each design matrix early (its
    # memory at 1M rows); the figures must be those of the plain vstack / split version
    # (to the last bits BLAS may round differently with another memory alignment).
    from sklearn.linear_model import LogisticRegression

    from pulsesynth.utility import TSTS_TEST_FRACTION, _run_suite, _Task, _task

    train, holdout = binary_data
    synthetic = uniform_noise(BINARY, N_TRAIN, 9)
    enc = FeatureEncoder.from_schema(BINARY)
    x = np.vstack([enc.transform(train, "real"), enc.transform(synthetic, "synthetic")])
    z = np.r_[np.zeros(len(train), dtype=int), np.ones(len(synthetic), dtype=int)]
    p = LogisticRegression(max_iter=1000, random_state=3).fit(x, z).predict_proba(x)[:, 1]
    assert noise_result["pmse"] == pytest.approx(
        float(np.mean((p - len(synthetic) / len(z)) ** 2)), rel=1e-9)

    features = FeatureEncoder.from_schema(BINARY, exclude=BINARY.not_predictors)
    syn = _task(synthetic, features, BINARY.target_column, "synthetic")
    order = np.random.default_rng(3).permutation(len(syn.y))
    n_test = int(round(len(order) * TSTS_TEST_FRACTION))
    test_rows, train_rows = order[:n_test], order[n_test:]
    expected = _run_suite(_Task(syn.x[train_rows], syn.y[train_rows]),
                          _Task(syn.x[test_rows], syn.y[test_rows]),
                          noise_result["classifiers"], 3, 2)
    assert noise_result["tsts"].keys() == expected.keys()
    for name, scores in expected.items():
        assert noise_result["tsts"][name] == pytest.approx(scores, rel=1e-9)


def test_sra_is_one_when_synthetic_is_the_real_data(copy_result: dict[str, Any]) -> None:
    assert copy_result["sra"] == 1.0


# --- uniform noise -----------------------------------------------------------------------------


def test_uniform_noise_gives_tstr_below_trtr(noise_result: dict[str, Any]) -> None:
    trtr, tstr = noise_result["trtr"], noise_result["tstr"]
    for name, real in trtr.items():
        assert tstr[name]["accuracy"] < real["accuracy"] - 0.02, name
        assert tstr[name]["auc"] < real["auc"] - 0.02, name
    # A linear model fitted to noise still points in *some* direction and may partly line
    # up with the real signal by chance, so the clear gap is asserted on the average.
    gap = np.mean([trtr[n]["accuracy"] - tstr[n]["accuracy"] for n in trtr])
    assert gap > 0.15
    # A noise target cannot be learned from noise features, even on its own rows.
    for scores in noise_result["tsts"].values():
        assert scores["auc"] < 0.65


def test_uniform_noise_has_imperfect_shapes_trends_and_high_pmse(
    noise_result: dict[str, Any], copy_result: dict[str, Any],
) -> None:
    assert all(v < 1.0 for v in noise_result["column_shapes"]["columns"].values())
    assert noise_result["column_shapes"]["mean"] < 0.85
    assert noise_result["pair_trends"]["mean"] < 0.9
    assert noise_result["pmse"] > 0.01 > copy_result["pmse"]
    assert noise_result["pmse_ratio"] > 10


# --- multiclass ------------------------------------------------------------------------------


def test_multiclass_target_reports_macro_auc_matching_sklearn_ovr() -> None:
    train, holdout = make_real(MULTI, N_TRAIN, 4), make_real(MULTI, N_HOLDOUT, 5)
    result = evaluate_utility(MULTI, train, holdout, train, seed=0, classifiers=("logreg",))
    assert result["classes"] == ["low", "mid", "high"]
    auc = result["trtr"]["logreg"]["auc"]
    assert 0.8 < auc <= 1.0

    # Same features, same seeded model: the macro AUC equals sklearn's one-vs-rest macro.
    enc = FeatureEncoder.from_schema(MULTI, exclude=["outcome"])
    tr, ho = train.dropna(subset=["outcome"]), holdout.dropna(subset=["outcome"])
    model = make_classifier("logreg", 0).fit(enc.transform(tr), tr["outcome"].to_numpy())
    proba = model.predict_proba(enc.transform(ho))
    expected = roc_auc_score(ho["outcome"].to_numpy(), proba, multi_class="ovr",
                             average="macro", labels=model.classes_)
    assert auc == pytest.approx(expected)


def test_synthetic_lacking_a_class_does_not_crash() -> None:
    train, holdout = make_real(MULTI, N_TRAIN, 6), make_real(MULTI, N_HOLDOUT, 7)
    no_high = train[train["outcome"] != "high"].dropna(subset=["outcome"])
    result = evaluate_utility(MULTI, train, holdout, no_high, seed=0)
    for name, scores in result["tstr"].items():
        assert 0.5 < scores["auc"] <= 1.0, name
        # The 'high' class is never predicted, so its recall is 0 and the macro mean drops.
        assert scores["recall"] <= 2 / 3 + 1e-9
        assert scores["recall"] < result["trtr"][name]["recall"]

    # Degenerate synthetic data: one class only -> a constant predictor, AUC 1/2.
    only_low = train[train["outcome"] == "low"]
    result = evaluate_utility(MULTI, train, holdout, only_low, seed=0, classifiers=("logreg",))
    assert result["tstr"]["logreg"]["auc"] == pytest.approx(0.5)
    assert result["tsts"]["logreg"]["auc"] is None  # a one-class test part has no AUC
    json.dumps(result, allow_nan=False)


# --- output contract -----------------------------------------------------------------------


def _strings(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set(obj).union(*(_strings(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_strings(v) for v in obj))
    return {obj} if isinstance(obj, str) else set()


def test_output_is_json_serialisable_and_holds_only_public_names(
    copy_result: dict[str, Any], noise_result: dict[str, Any],
) -> None:
    public = {"target", "classes", "seed", "classifiers", "majority_accuracy", "trtr", "tstr",
              "tsts", "sra", "pmse", "pmse_ratio", "column_shapes", "pair_trends", "mean",
              "columns", "pairs", "accuracy", "auc", "f1", "recall", "logreg",
              "random_forest", "hist_gb", "no", "yes"} | set(BINARY.column_names)
    for result in (copy_result, noise_result):
        text = json.dumps(result, allow_nan=False)
        assert json.loads(text) == result
        names = {p for s in _strings(result) for p in s.split("|")}
        assert names <= public, names - public  # no data value ever reaches the report
    assert copy_result["target"] == "outcome"


def test_feature_layout_comes_from_the_schema_not_the_data() -> None:
    enc = FeatureEncoder.from_schema(BINARY, exclude=["outcome"])
    assert enc.feature_names == [
        "age", "age:missing", "income", "income:missing",
        "region=north", "region=south", "region=east", "region=west", "region:missing",
        "level=1", "level=2", "level=3", "level:missing",
    ]
    # A frame that shows one region, an undeclared value and gaps keeps the same layout.
    odd = pd.DataFrame({
        "age": pd.array([18, None, 90], dtype="Int64"),
        "income": [0.0, 200000.0, np.nan],
        "region": pd.array(["east", "Atlantis", None], dtype="str"),
        "level": [3, 3, 3],
    })
    x = enc.transform(odd)
    assert x.shape == (3, len(enc.feature_names))
    np.testing.assert_allclose(x[:, 0:4], [[0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]])
    np.testing.assert_array_equal(x[:, 4:9], [[0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(x[:, 9:], [[0, 0, 1, 0]] * 3)


def test_missing_declared_column_fails_with_the_column_name(
    binary_data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, holdout = binary_data
    with pytest.raises(ValueError, match="synthetic table lacks declared column 'region'"):
        evaluate_utility(BINARY, train, holdout, train.drop(columns="region"))
    with pytest.raises(ValueError, match="unknown classifier"):
        evaluate_utility(BINARY, train, holdout, train, classifiers=("svm",))


# --- shapes, trends and SRA on hand-made data ---------------------------------------------------


def test_column_shapes_count_missingness_and_declared_categories() -> None:
    real = pd.DataFrame({"age": [20, 30, 40, 50], "income": [1.0, 2.0, 3.0, 4.0],
                         "region": ["north", "north", "south", None], "level": [1, 1, 2, 2],
                         "outcome": ["no", "yes", "no", "yes"]})
    syn = real.copy()
    syn["age"] = pd.array([20, 30, None, None], dtype="Int64")  # half missing
    syn["region"] = ["north", "south", "south", None]  # 1/4 of mass moved
    syn["level"] = [1, 1, 2, 7]  # an undeclared code is not silently dropped
    cols = column_shapes(BINARY, real, syn)["columns"]
    assert cols["age"] == pytest.approx(0.5)
    assert cols["income"] == cols["outcome"] == 1.0
    assert cols["region"] == pytest.approx(0.75)
    assert cols["level"] == pytest.approx(0.75)


def test_pair_trends_use_correlation_for_numerics_and_declared_bins_for_mixed() -> None:
    real = pd.DataFrame({"age": [20, 35, 50, 70], "income": [10.0, 30.0, 60000.0, 150000.0],
                         "region": ["north", "south", "east", "west"], "level": [1, 2, 3, 1],
                         "outcome": ["no", "no", "yes", "yes"]})
    syn = real.copy()
    syn["income"] = real["income"].to_numpy()[::-1]  # same marginal, reversed relation
    pairs = pair_trends(BINARY, real, syn)["pairs"]
    corr_real = np.corrcoef(real["age"], real["income"])[0, 1]
    corr_syn = np.corrcoef(syn["age"], syn["income"])[0, 1]
    assert corr_real > 0.8 and corr_syn < -0.8
    assert pairs["age|income"] == pytest.approx(1 - abs(corr_real - corr_syn) / 2)
    # income vs region: each income bin moved to another region -> joint TVD of 1.
    assert pairs["income|region"] == pytest.approx(0.0)
    assert pairs["age|region"] == pairs["region|level"] == 1.0
    # Within one declared income bin, shuffling values changes nothing for mixed pairs.
    syn2 = real.copy()
    syn2["income"] = [30.0, 10.0, 60000.0, 150000.0]
    assert pair_trends(BINARY, real, syn2)["pairs"]["income|outcome"] == 1.0


def test_sra_counts_pairs_ordered_alike() -> None:
    trtr = {"a": 0.9, "b": 0.8, "c": 0.7}
    assert synthetic_ranking_agreement(trtr, dict(trtr)) == 1.0
    assert synthetic_ranking_agreement(trtr, {"a": 0.1, "b": 0.2, "c": 0.3}) == 0.0
    assert synthetic_ranking_agreement(trtr, {"a": 0.9, "b": 0.7, "c": 0.8}) == pytest.approx(2 / 3)
    assert synthetic_ranking_agreement({"a": 0.9}, {"a": 0.5}) is None
