"""Utility of a synthetic table: does it train the same models and keep the same shapes?

Reused by the audit, the data card and the portal, so every public function returns a
plain JSON-able dict of scores. Privacy rule: every category set and numeric domain comes
from the declared schema, never from the private rows — the one-hot layout, the numeric
scaling and the bins used for pair trends are all fixed before any data is seen, and the
output holds only scores and public (declared) names, never cell values or row counts.

Metrics:

* TRTR / TSTR / TSTS: train on real / synthetic / part of synthetic, test on the real
  holdout / the real holdout / the other part of synthetic; accuracy, ROC AUC (macro
  one-vs-rest for multiclass), macro F1 and macro recall for each classifier.
* SRA: fraction of classifier pairs that TRTR and TSTR accuracy order the same way.
* pMSE: mean squared distance of a real-vs-synthetic propensity score from its null value.
* Column shapes (1 − TVD / 1 − KS) and column-pair trends (correlation / contingency).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

from pulsesynth.schema import CategoricalColumn, DatasetSchema, DomainColumn, NumericColumn

__all__ = [
    "CLASSIFIERS",
    "FeatureEncoder",
    "column_shapes",
    "evaluate_utility",
    "make_classifier",
    "marginal_tv",
    "pair_trends",
    "pmse",
    "synthetic_ranking_agreement",
    "tstr_scores",
]

#: Share of the synthetic table held out as the TSTS test part.
TSTS_TEST_FRACTION = 0.3
#: Key separator for column pairs in ``pair_trends`` ("a|b", schema order).
PAIR_SEPARATOR = "|"


# --- column coding (schema-only domains) ------------------------------------------------


def _require(frame: pd.DataFrame, name: str, what: str) -> pd.Series:
    """Fetch a column, failing with a value-free message that names the table and column."""
    if name not in frame.columns:
        raise ValueError(f"{what} table lacks declared column {name!r}")
    return frame[name]


def _numeric_values(series: pd.Series) -> np.ndarray:
    """Float values with NaN for missing (handles Int64/Float64/object with pandas NA)."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _category_codes(series: pd.Series, col: CategoricalColumn) -> np.ndarray:
    """Codes over the declared categories: 0..K-1, K = missing, K+1 = outside the codebook.

    Matching is by declared value only, so an undeclared value never gets its own slot.
    """
    cats = list(col.categories)
    k = len(cats)
    missing = series.isna().to_numpy()
    if cats and all(isinstance(c, int) for c in cats):
        values = _numeric_values(series)
        codes = pd.Index([float(c) for c in cats]).get_indexer(values)
    else:
        values = series.astype(object).to_numpy()
        as_text = np.array([None if m else str(v) for v, m in zip(values, missing, strict=True)],
                           dtype=object)
        codes = pd.Index([str(c) for c in cats], dtype=object).get_indexer(as_text)
    out = np.where(codes >= 0, codes, k + 1).astype(np.int64)
    out[missing] = k
    return out


def category_codes(series: pd.Series, col: CategoricalColumn) -> np.ndarray:
    """Public name of the codebook mapping (0..K-1 declared, K missing, K+1 outside)."""
    return _category_codes(series, col)


def _bin_codes(values: np.ndarray, col: NumericColumn) -> np.ndarray:
    """Codes over the declared bins: 0..m-1 (ends clipped into the end bins), m = missing."""
    edges = np.asarray(col.bins, dtype=float)
    m = len(edges) - 1
    codes = np.searchsorted(edges[1:-1], np.nan_to_num(values), side="right").astype(np.int64)
    codes[np.isnan(values)] = m
    return codes


def _n_codes(col: DomainColumn) -> int:
    """Size of a column's discrete coding (categories/bins plus missing, plus 'other')."""
    if isinstance(col, CategoricalColumn):
        return len(col.categories) + 2
    return len(col.bins)


def _scaled(values: np.ndarray, col: NumericColumn) -> np.ndarray:
    """Map a numeric onto [0, 1] via its declared bounds (log scale if declared)."""
    lo, hi = (float(b) for b in col.bounds)
    x = np.clip(values, lo, hi)
    if col.scale == "log":
        return np.log1p(x - lo) / math.log1p(hi - lo)
    return (x - lo) / (hi - lo)


@dataclass(frozen=True)
class FeatureEncoder:
    """Schema-fixed feature matrix: one-hot + missing flag, scaled numerics + missing flag.

    Holds no state learned from data, so the same layout serves real and synthetic rows
    and no private statistic leaks into a model through the encoding. Numerics are scaled
    by their declared bounds onto [0, 1] (so logistic regression converges); a missing
    numeric becomes the constant 0 (the scaled lower bound) next to its indicator.
    """

    columns: tuple[DomainColumn, ...]

    @classmethod
    def from_schema(cls, schema: DatasetSchema, exclude: Iterable[str] = ()) -> FeatureEncoder:
        """Encode every synthesized column except ``exclude`` (usually the target)."""
        skip = set(exclude)
        return cls(tuple(c for c in schema.synthesized_columns if c.name not in skip))

    @property
    def feature_names(self) -> list[str]:
        """Names of the matrix columns (declared category names are public)."""
        names: list[str] = []
        for col in self.columns:
            if isinstance(col, CategoricalColumn):
                names += [f"{col.name}={c}" for c in col.categories]
            else:
                names.append(col.name)
            names.append(f"{col.name}:missing")
        return names

    def transform(self, frame: pd.DataFrame, what: str = "input") -> np.ndarray:
        """The float matrix for ``frame`` (rows in frame order)."""
        n = len(frame)
        blocks: list[np.ndarray] = []
        for col in self.columns:
            series = _require(frame, col.name, what)
            if isinstance(col, CategoricalColumn):
                k = len(col.categories)
                codes = _category_codes(series, col)
                onehot = np.zeros((n, k + 1), dtype=float)
                # Outside-the-codebook values are flagged like missing ones.
                onehot[np.arange(n), np.minimum(codes, k)] = 1.0
                blocks.append(onehot)
            else:
                values = _numeric_values(series)
                miss = np.isnan(values)
                scaled = np.where(miss, 0.0, _scaled(np.where(miss, 0.0, values), col))
                blocks.append(np.column_stack([scaled, miss.astype(float)]))
        if not blocks:
            return np.zeros((n, 0), dtype=float)
        return np.hstack(blocks)


# --- classifiers --------------------------------------------------------------------------


def _logreg(seed: int) -> ClassifierMixin:
    return LogisticRegression(max_iter=1000, random_state=seed)


def _random_forest(seed: int) -> ClassifierMixin:
    return RandomForestClassifier(
        n_estimators=100, min_samples_leaf=2, n_jobs=-1, random_state=seed
    )


def _hist_gb(seed: int) -> ClassifierMixin:
    return HistGradientBoostingClassifier(random_state=seed)


#: Name -> factory(seed). The same seed on real and synthetic rows makes TSTR == TRTR
#: exactly when the synthetic rows are the real ones.
CLASSIFIERS: dict[str, Callable[[int], ClassifierMixin]] = {
    "logreg": _logreg,
    "random_forest": _random_forest,
    "hist_gb": _hist_gb,
}


def make_classifier(name: str, seed: int = 0) -> ClassifierMixin:
    """A fresh, seeded classifier by its stable name."""
    try:
        return CLASSIFIERS[name](seed)
    except KeyError:
        raise ValueError(
            f"unknown classifier {name!r} (expected one of {', '.join(CLASSIFIERS)})"
        ) from None


def _fit_predict_proba(
    model: ClassifierMixin, x_train: np.ndarray, y_train: np.ndarray,
    x_test: np.ndarray, n_classes: int,
) -> np.ndarray:
    """Class probabilities over *all* declared classes (absent in training -> 0).

    A training set with a single class (possible for a poor synthetic table) cannot be
    fitted by most models, so it becomes a constant predictor instead of a crash.
    """
    proba = np.zeros((len(x_test), n_classes), dtype=float)
    present = np.unique(y_train)
    if len(present) == 1:
        proba[:, int(present[0])] = 1.0
        return proba
    fitted = clone(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted.fit(x_train, y_train)
        raw = fitted.predict_proba(x_test)
    proba[:, np.asarray(fitted.classes_, dtype=int)] = raw
    return proba


def _scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """Accuracy, AUC, macro F1, macro recall; macro over the classes present in the test set."""
    y_pred = np.argmax(proba, axis=1)  # ties go to the first declared class
    labels = np.unique(y_true)
    auc: float | None
    if len(labels) < 2:
        auc = None  # AUC is undefined on a single-class test set
    elif proba.shape[1] == 2:
        auc = float(roc_auc_score(y_true == 1, proba[:, 1]))
    else:
        # Macro one-vs-rest by hand, so classes missing from the test set are skipped and
        # a class the model never saw (probability 0) still scores.
        auc = float(np.mean([roc_auc_score(y_true == k, proba[:, k]) for k in labels]))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "auc": auc,
        "f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "recall": float(
            recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
    }


_EMPTY_SCORES: dict[str, float | None] = {"accuracy": None, "auc": None, "f1": None,
                                          "recall": None}


@dataclass(frozen=True)
class _Task:
    """Features and class codes with missing / undeclared targets dropped."""

    x: np.ndarray
    y: np.ndarray


def _task(frame: pd.DataFrame, enc: FeatureEncoder, target: CategoricalColumn,
          what: str) -> _Task:
    y = _category_codes(_require(frame, target.name, what), target)
    keep = y < len(target.categories)
    return _Task(enc.transform(frame, what)[keep], y[keep])


def _run_suite(
    train: _Task, test: _Task, classifiers: Sequence[str], seed: int, n_classes: int,
) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for name in classifiers:
        if len(train.y) == 0 or len(test.y) == 0:
            out[name] = dict(_EMPTY_SCORES)
            continue
        proba = _fit_predict_proba(make_classifier(name, seed), train.x, train.y, test.x,
                                   n_classes)
        out[name] = _scores(test.y, proba)
    return out


def tstr_counts(schema: DatasetSchema, synthetic: pd.DataFrame, holdout_real: pd.DataFrame,
                seed: int = 0, classifier: str = "hist_gb") -> tuple[int, list[int]] | None:
    """(holdout rows a classifier trained on the synthetic table gets right, the holdout's
    class counts): per-row sums of a DP-derived rule, for the DP release report. None
    without a target."""
    target = schema.target_column
    if target is None:
        return None
    n_classes = len(target.categories)
    enc = FeatureEncoder.from_schema(schema, exclude=schema.not_predictors)
    train, test = (_task(synthetic, enc, target, "synthetic"),
                   _task(holdout_real, enc, target, "holdout"))
    counts = np.bincount(test.y, minlength=n_classes).astype(int).tolist()
    if len(train.y) == 0 or len(test.y) == 0:
        return 0, counts
    proba = _fit_predict_proba(make_classifier(classifier, seed), train.x, train.y, test.x,
                               n_classes)
    return int((np.argmax(proba, axis=1) == test.y).sum()), counts


def tstr_scores(schema: DatasetSchema, train: pd.DataFrame, test: pd.DataFrame,
                classifier: str = "hist_gb", seed: int = 0) -> dict[str, float | None]:
    """Accuracy, AUC, macro F1 and recall of ``classifier`` trained on ``train`` (real or
    synthetic) predicting the target on the real ``test`` rows; the benchmarks' one
    TSTR (and TRTR, with real ``train``) for every system."""
    target = schema.target_column
    if target is None:
        raise ValueError(f"{schema.id}: TSTR needs a declared target")
    enc = FeatureEncoder.from_schema(schema, exclude=schema.not_predictors)
    fit, held = _task(train, enc, target, "train"), _task(test, enc, target, "test")
    return _run_suite(fit, held, [classifier], seed, len(target.categories))[classifier]


def marginal_tv(schema: DatasetSchema, synthetic: pd.DataFrame, real: pd.DataFrame,
                order: int = 1) -> float:
    """Mean total-variation distance over every ``order``-way marginal (1 or 2) of the
    modelled columns on the schema's public levels (categories, public bins, missing).

    Cells a schema cannot place (unobserved, see :mod:`pulsesynth.encoding`) are left out
    of that marginal on both sides. 0 = identical marginals, 1 = disjoint supports.
    """
    from pulsesynth.encoding import TableEncoder

    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    enc = TableEncoder(schema)
    widths = [b.width for b in enc.block_specs]
    syn, ref = enc.levels(synthetic), enc.levels(real)
    groups = ([(j,) for j in range(len(widths))] if order == 1
              else list(combinations(range(len(widths)), 2)))
    distances = []
    for group in groups:
        size = int(np.prod([widths[j] for j in group]))
        a, b = _cell_index(syn, group, widths), _cell_index(ref, group, widths)
        distances.append(_tvd(a, b, size))
    return float(np.mean(distances)) if distances else 0.0


def _cell_index(levels: np.ndarray, group: tuple[int, ...], widths: list[int]) -> np.ndarray:
    """Flat cell index of each row in the marginal over ``group`` (rows with an
    unobserved cell in the group dropped)."""
    keep = (levels[:, list(group)] >= 0).all(axis=1)
    cell = np.zeros(int(keep.sum()), dtype=np.int64)
    for j in group:
        cell = cell * widths[j] + levels[keep, j]
    return cell


def synthetic_ranking_agreement(
    trtr: dict[str, float | None], tstr: dict[str, float | None],
) -> float | None:
    """Fraction of classifier pairs that real- and synthetic-trained scores order alike.

    Pairs tied in both count as agreeing (so identical data scores 1); pairs with a missing
    score are skipped; ``None`` when no pair is left.
    """
    real = {n: v for n, v in trtr.items() if v is not None}
    syn = {n: v for n, v in tstr.items() if v is not None}
    pairs = list(combinations([n for n in real if n in syn], 2))
    if not pairs:
        return None
    same = sum(np.sign(real[a] - real[b]) == np.sign(syn[a] - syn[b]) for a, b in pairs)
    return float(same) / len(pairs)


def pmse(
    schema: DatasetSchema, real: pd.DataFrame, synthetic: pd.DataFrame, seed: int = 0,
) -> dict[str, float | None]:
    """Propensity-score MSE of a logistic regression telling real from synthetic rows.

    pMSE = mean((p - c)^2), c = n_syn / (n_real + n_syn), in-sample as in Snoke et al.
    (2018). Main-effects logistic regression keeps the null value known:
    E[pMSE] = (k - 1)(1 - c)^2 c / N for k parameters, reported as ``pmse_ratio`` (~1 means
    indistinguishable at this model's power). Values: 0 best, c^2-ish worst (up to 0.25).
    """
    enc = FeatureEncoder.from_schema(schema)
    x = np.vstack([enc.transform(real, "real"), enc.transform(synthetic, "synthetic")])
    z = np.r_[np.zeros(len(real), dtype=int), np.ones(len(synthetic), dtype=int)]
    n = len(z)
    if len(real) == 0 or len(synthetic) == 0:
        return {"pmse": None, "pmse_ratio": None}
    c = len(synthetic) / n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=1000, random_state=seed).fit(x, z)
    p = model.predict_proba(x)[:, 1]
    value = float(np.mean((p - c) ** 2))
    k = x.shape[1] + 1
    null = (k - 1) * (1 - c) ** 2 * c / n
    return {"pmse": value, "pmse_ratio": float(value / null) if null > 0 else None}


# --- column shapes and pair trends ---------------------------------------------------------


def _tvd(a: np.ndarray, b: np.ndarray, size: int) -> float:
    """Total variation distance between the code distributions of two samples."""
    pa = np.bincount(a, minlength=size) / max(len(a), 1)
    pb = np.bincount(b, minlength=size) / max(len(b), 1)
    return float(0.5 * np.abs(pa - pb).sum())


def _ks_with_missing(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS statistic, with missing values as an atom below every value.

    Without missing values this is the ordinary KS statistic; with them, a difference in
    missingness also counts (it would be invisible to a KS on the observed values only).
    """
    ma, mb = np.isnan(a), np.isnan(b)
    fa_miss = ma.mean() if len(a) else 0.0
    fb_miss = mb.mean() if len(b) else 0.0
    va, vb = np.sort(a[~ma]), np.sort(b[~mb])
    grid = np.concatenate([va, vb])
    if len(grid) == 0:
        return float(abs(fa_miss - fb_miss))

    def cdf(v: np.ndarray, miss: float) -> np.ndarray:
        if len(v) == 0:
            return np.full(len(grid), miss)
        return miss + (1 - miss) * np.searchsorted(v, grid, side="right") / len(v)

    return float(max(abs(fa_miss - fb_miss), np.max(np.abs(cdf(va, fa_miss) - cdf(vb, fb_miss)))))


def column_shapes(
    schema: DatasetSchema, real: pd.DataFrame, synthetic: pd.DataFrame,
) -> dict[str, Any]:
    """Per synthesized column: 1 − TVD (categoricals) or 1 − KS (numerics); 1 is identical.

    Categorical TVD runs over the declared categories plus a missing slot (and an
    outside-the-codebook slot), so no category set is read off the data.
    """
    scores: dict[str, float] = {}
    for col in schema.synthesized_columns:
        r, s = _require(real, col.name, "real"), _require(synthetic, col.name, "synthetic")
        if isinstance(col, CategoricalColumn):
            dist = _tvd(_category_codes(r, col), _category_codes(s, col), _n_codes(col))
        else:
            dist = _ks_with_missing(_numeric_values(r), _numeric_values(s))
        scores[col.name] = 1.0 - dist
    return {"mean": _mean(scores.values()), "columns": scores}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation on complete pairs; 0 when undefined (constant or too few rows)."""
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 2:
        return 0.0
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / denom) if denom > 0 else 0.0


def _discrete_codes(frame: pd.DataFrame, col: DomainColumn, what: str) -> np.ndarray:
    series = _require(frame, col.name, what)
    if isinstance(col, CategoricalColumn):
        return _category_codes(series, col)
    return _bin_codes(_numeric_values(series), col)


def pair_trends(
    schema: DatasetSchema, real: pd.DataFrame, synthetic: pd.DataFrame,
) -> dict[str, Any]:
    """Per pair of synthesized columns, how well the synthetic table keeps their relation.

    Numeric pairs: 1 − |corr_real − corr_syn| / 2. Any pair with a categorical: 1 − TVD of
    the joint contingency table over declared categories, with numerics binned by their
    declared bins (plus a missing slot each). Keys are ``"a|b"`` in schema order.
    Each column is coded once, so each pair is a single ``bincount`` (fast on wide tables).
    """
    cols = schema.synthesized_columns
    numeric: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    discrete: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for col in cols:
        if col.is_numeric:
            numeric[col.name] = (_numeric_values(_require(real, col.name, "real")),
                                 _numeric_values(_require(synthetic, col.name, "synthetic")))
        discrete[col.name] = (_discrete_codes(real, col, "real"),
                              _discrete_codes(synthetic, col, "synthetic"))
    scores: dict[str, float] = {}
    for a, b in combinations(cols, 2):
        key = f"{a.name}{PAIR_SEPARATOR}{b.name}"
        if a.is_numeric and b.is_numeric:
            (ra, sa), (rb, sb) = numeric[a.name], numeric[b.name]
            scores[key] = 1.0 - abs(_pearson(ra, rb) - _pearson(sa, sb)) / 2.0
        else:
            (ra, sa), (rb, sb) = discrete[a.name], discrete[b.name]
            nb = _n_codes(b)
            size = _n_codes(a) * nb
            scores[key] = 1.0 - _tvd(ra * nb + rb, sa * nb + sb, size)
    return {"mean": _mean(scores.values()), "pairs": scores}


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return float(np.mean(vals)) if vals else None


# --- the whole report -----------------------------------------------------------------------


def evaluate_utility(
    schema: DatasetSchema,
    train_real: pd.DataFrame,
    holdout_real: pd.DataFrame,
    synthetic: pd.DataFrame,
    seed: int = 0,
    classifiers: Sequence[str] = ("logreg", "random_forest", "hist_gb"),
) -> dict[str, Any]:
    """Every utility score for one synthetic table, as a JSON-able dict.

    Classification tasks predict ``schema.target`` from the other synthesized columns and
    drop rows whose target is missing (or outside the codebook). All models share ``seed``
    so that training on a copy of the real train reproduces TRTR exactly. Without a target
    the model-based keys are ``None`` and only pMSE, shapes and trends are computed.
    """
    for name in classifiers:
        make_classifier(name, seed)  # fail fast on an unknown name
    result: dict[str, Any] = {
        "target": schema.target,
        "classes": None,
        "seed": seed,
        "classifiers": list(classifiers),
        "majority_accuracy": None,
        "trtr": None,
        "tstr": None,
        "tsts": None,
        "sra": None,
    }
    target = schema.target_column
    if target is not None:
        n_classes = len(target.categories)
        enc = FeatureEncoder.from_schema(schema, exclude=schema.not_predictors)
        train = _task(train_real, enc, target, "real train")
        holdout = _task(holdout_real, enc, target, "real holdout")
        syn = _task(synthetic, enc, target, "synthetic")
        if len(holdout.y) == 0:
            raise ValueError(f"real holdout has no rows with a declared {target.name!r} value")
        syn_train, syn_test = _split(syn, seed)

        result["classes"] = list(target.categories)
        if len(train.y):
            majority = int(np.argmax(np.bincount(train.y, minlength=n_classes)))
            result["majority_accuracy"] = float(np.mean(holdout.y == majority))
        result["trtr"] = _run_suite(train, holdout, classifiers, seed, n_classes)
        result["tstr"] = _run_suite(syn, holdout, classifiers, seed, n_classes)
        result["tsts"] = _run_suite(syn_train, syn_test, classifiers, seed, n_classes)
        result["sra"] = synthetic_ranking_agreement(
            {k: v["accuracy"] for k, v in result["trtr"].items()},
            {k: v["accuracy"] for k, v in result["tstr"].items()},
        )
    result.update(pmse(schema, train_real, synthetic, seed))
    result["column_shapes"] = column_shapes(schema, train_real, synthetic)
    result["pair_trends"] = pair_trends(schema, train_real, synthetic)
    return result


def _split(task: _Task, seed: int) -> tuple[_Task, _Task]:
    """Seeded random split of the synthetic rows into TSTS train and test parts."""
    order = np.random.default_rng(seed).permutation(len(task.y))
    n_test = int(round(len(order) * TSTS_TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return _Task(task.x[train], task.y[train]), _Task(task.x[test], task.y[test])
