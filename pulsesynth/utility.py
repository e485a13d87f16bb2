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

from pulsesynth.encoding import (
    FeatureEncoder,
    bin_codes,
    category_codes,
    code_count,
    numeric_values,
    require_column,
)
from pulsesynth.reports import UtilityReport
from pulsesynth.schema import CategoricalColumn, DatasetSchema, DomainColumn

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
    y = category_codes(require_column(frame, target.name, what), target)
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
    # Filled in place (not np.vstack of the two parts): one part at a time beside the
    # result, instead of both parts and the result at once.
    real_x = enc.transform(real, "real")
    x = np.empty((len(real) + len(synthetic), real_x.shape[1]), dtype=real_x.dtype)
    x[:len(real)] = real_x
    del real_x
    x[len(real):] = enc.transform(synthetic, "synthetic")
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
        r = require_column(real, col, "real")
        s = require_column(synthetic, col, "synthetic")
        if isinstance(col, CategoricalColumn):
            dist = _tvd(category_codes(r, col), category_codes(s, col), code_count(col))
        else:
            dist = _ks_with_missing(numeric_values(r), numeric_values(s))
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
    series = require_column(frame, col, what)
    if isinstance(col, CategoricalColumn):
        return category_codes(series, col)
    return bin_codes(numeric_values(series), col)


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
            numeric[col.name] = (numeric_values(require_column(real, col, "real")),
                                 numeric_values(require_column(synthetic, col, "synthetic")))
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
            nb = code_count(b)
            size = code_count(a) * nb
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
) -> UtilityReport:
    """Every utility score for one synthetic table, as a JSON-able dict.

    Classification tasks predict ``schema.target`` from the other synthesized columns and
    drop rows whose target is missing (or outside the codebook). All models share ``seed``
    so that training on a copy of the real train reproduces TRTR exactly. Without a target
    the model-based keys are ``None`` and only pMSE, shapes and trends are computed.
    """
    for name in classifiers:
        make_classifier(name, seed)  # fail fast on an unknown name
    result: UtilityReport = {
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
        result.update(_classification_scores(schema, target, train_real, holdout_real,
                                             synthetic, classifiers, seed))
    scores = pmse(schema, train_real, synthetic, seed)
    result["pmse"], result["pmse_ratio"] = scores["pmse"], scores["pmse_ratio"]
    result["column_shapes"] = column_shapes(schema, train_real, synthetic)
    result["pair_trends"] = pair_trends(schema, train_real, synthetic)
    return result


def _classification_scores(
    schema: DatasetSchema, target: CategoricalColumn, train_real: pd.DataFrame,
    holdout_real: pd.DataFrame, synthetic: pd.DataFrame, classifiers: Sequence[str],
    seed: int,
) -> UtilityReport:
    """TRTR, TSTR, TSTS and SRA of :func:`evaluate_utility`.

    Each dense design matrix lives only as long as the scores that need it (at 1M rows
    one is about 1 GB): the real training rows' until TRTR, the synthetic rows' until
    their TSTS split, which replaces them. Same scores as holding them all at once.
    """
    n_classes = len(target.categories)
    enc = FeatureEncoder.from_schema(schema, exclude=schema.not_predictors)
    train = _task(train_real, enc, target, "real train")
    holdout = _task(holdout_real, enc, target, "real holdout")
    syn = _task(synthetic, enc, target, "synthetic")  # all three checked before any fit
    if len(holdout.y) == 0:
        raise ValueError(f"real holdout has no rows with a declared {target.name!r} value")
    out: UtilityReport = {"classes": list(target.categories)}
    if len(train.y):
        majority = int(np.argmax(np.bincount(train.y, minlength=n_classes)))
        out["majority_accuracy"] = float(np.mean(holdout.y == majority))
    trtr = out["trtr"] = _run_suite(train, holdout, classifiers, seed, n_classes)
    del train
    tstr = out["tstr"] = _run_suite(syn, holdout, classifiers, seed, n_classes)
    del holdout
    syn_train, syn_test = _split(syn, seed)
    del syn
    out["tsts"] = _run_suite(syn_train, syn_test, classifiers, seed, n_classes)
    out["sra"] = synthetic_ranking_agreement(
        {k: v["accuracy"] for k, v in trtr.items()},
        {k: v["accuracy"] for k, v in tstr.items()},
    )
    return out


def _split(task: _Task, seed: int) -> tuple[_Task, _Task]:
    """Seeded random split of the synthetic rows into TSTS train and test parts."""
    order = np.random.default_rng(seed).permutation(len(task.y))
    n_test = int(round(len(order) * TSTS_TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return _Task(task.x[train], task.y[train]), _Task(task.x[test], task.y[test])
