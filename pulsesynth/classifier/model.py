"""Release mechanism 1 (seed 000 §6.2): the dataset's target classifier, trained with DP-SGD.

A feed-forward network (seed 000 uses [400, 400] with Adam; the default here is smaller,
which served as well on these tables and trains 3× faster on CPU) over the schema-fixed
:class:`~pulsesynth.encoding.FeatureEncoder`, so no statistic of the private rows enters
through the encoding. Training runs on the synthesizer's DP-SGD engine
(:func:`pulsesynth.dp.fit_module`: Opacus ghost clipping, Poisson sampling, PRV
accountant, final ε checked against the target) and shares its privacy-unit cap.

The released artifact is the ``state_dict`` plus a value-free ``model.json`` (architecture,
feature names, declared classes, privacy report): :meth:`DPClassifier.export_release` and
:meth:`DPClassifier.from_release`.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pulsesynth.artifacts import CandidateDir, ReleaseDir
from pulsesynth.dp import GroupPrivacy, ProgressFn, Schedule, fit_module, unit_rule
from pulsesynth.encoding import FeatureEncoder, category_codes
from pulsesynth.errors import SchemaError
from pulsesynth.params import RecipeParams
from pulsesynth.reports import group_privacy_block
from pulsesynth.schema import DatasetSchema
from pulsesynth.splits import cap_rows_per_unit
from pulsesynth.synth.train import TrainConfig, default_delta
from pulsesynth.threads import TORCH_RNG_LOCK

FORMAT_VERSION = 1
#: The classifier's training defaults (the constructor reads them from here): fewer epochs
#: and a smaller batch than the VAE's, the same optimiser and clipping.
DEFAULTS = TrainConfig(epochs=30, batch_size=1024)


class MLP(nn.Module):
    """Linear → ReLU blocks, then one logit per declared class."""

    def __init__(self, inputs: int, hidden: Sequence[int], classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DPClassifier(RecipeParams):
    """Predicts the schema's ``target`` from every other synthesized column.

    ``fit`` caps rows per privacy unit, encodes with the public schema and trains with
    DP-SGD at (``epsilon``, ``delta``) — or, with ``private=False``, plain Adam for
    comparison and attack calibration (never releasable). δ defaults to 1/(10 n).
    """

    def __init__(
        self,
        schema: DatasetSchema,
        epsilon: float | None = None,
        delta: float | None = None,
        private: bool = True,
        seed: int | None = None,
        epochs: int = DEFAULTS.epochs,
        batch_size: int = DEFAULTS.batch_size,
        lr: float = DEFAULTS.lr,
        hidden: Sequence[int] = DEFAULTS.hidden,
        max_grad_norm: float = DEFAULTS.max_grad_norm,
        accountant: str = DEFAULTS.accountant,
        progress: ProgressFn | None = None,
    ) -> None:
        if not schema.target:
            raise SchemaError(f"{schema.id}: no target declared; nothing to classify")
        target = schema.column(schema.target)
        if target.type != "categorical" or len(target.categories) < 2:
            raise SchemaError(f"{schema.id}: target {target.name} must be categorical with "
                              "at least two declared classes")
        self.schema = schema
        self.target = target
        self.classes = [str(c) for c in target.categories]
        self.private = private
        self.epsilon = (schema.privacy.epsilon if epsilon is None else float(epsilon)) \
            if private else None
        self.delta = delta
        #: None until fit: then the caller's seed, or a fresh secret one (``seed_source``).
        self.seed = seed
        self.seed_source: str | None = None
        self.config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                                  max_grad_norm=max_grad_norm, hidden=tuple(hidden),
                                  accountant=accountant)
        self.progress = progress
        self.encoder = FeatureEncoder.from_schema(schema, exclude=schema.not_predictors)
        self.model: MLP | None = None
        self.metadata: dict[str, Any] = {}

    # --- data ---------------------------------------------------------------------------

    def training_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows ``fit`` trains on: at most ``max_rows_per_unit`` per privacy unit
        (a keyed hash of the row key picks them), and only rows whose target is a declared
        class."""
        from pulsesynth.randomness import salt_from_seed

        salt = salt_from_seed(self.seed if self.seed is not None else 0)
        capped = cap_rows_per_unit(df, self.schema, self.schema.privacy.max_rows_per_unit,
                                   salt=salt)
        return capped[self._labels(capped) < len(self.classes)]

    def _labels(self, df: pd.DataFrame) -> np.ndarray:
        return category_codes(df[self.target.name], self.target)

    def _matrix(self, df: pd.DataFrame) -> torch.Tensor:
        return torch.from_numpy(self.encoder.transform(df).astype(np.float32))

    # --- fit / predict ------------------------------------------------------------------

    def fit(self, df: pd.DataFrame, snapshot_id: str | None = None, *,
            public_rows: int | None = None) -> DPClassifier:
        """Train on ``df`` (DP unless disabled); returns self.

        ``seed=None`` draws fresh secret randomness; ``public_rows`` (a DP row count) plans
        the DP-SGD schedule, else the exact count does (experiments only)."""
        from pulsesynth.randomness import resolve_seed

        self.seed, self.seed_source = resolve_seed(self.seed)
        rows = self.training_rows(df)
        n = len(rows)
        if n < 2:
            raise ValueError("need at least two training rows with a declared target class")
        x = self._matrix(rows)
        y = torch.from_numpy(self._labels(rows).astype(np.int64))
        delta = default_delta() if self.delta is None else float(self.delta)
        # A unit's k rows are k rows to DP-SGD: train at the row-level target.
        group = GroupPrivacy.of(self.schema.privacy_unit, self.schema.privacy.max_rows_per_unit,
                                float(self.epsilon or 0.0), delta)  # no ε: fit_module refuses
        schedule = Schedule.plan(public_rows or n, self.config)
        batch = schedule.expected_batch
        inputs, hidden, classes = x.shape[1], self.config.hidden, len(self.classes)
        fit = fit_module(lambda: MLP(inputs, hidden, classes), nn.CrossEntropyLoss(), [x, y],
                         schedule, self.config, private=self.private,
                         epsilon=group.row_epsilon, delta=group.row_delta, seed=self.seed,
                         progress=self.progress)
        assert isinstance(fit.model, MLP)
        self.model = fit.model
        meta, history = fit.metadata, fit.history
        meta.update(private=self.private, delta=group.row_delta if self.private else None,
                    epochs=self.config.epochs, batch_size=batch, lr=self.config.lr,
                    seed=self.seed, seed_source=self.seed_source, train_rows=n,
                    public_rows=public_rows,
                    unit_rule=unit_rule(list(self.schema.privacy_unit),
                                        self.schema.privacy.max_rows_per_unit))
        self.metadata = self._metadata(group.report(meta), snapshot_id, history)
        return self

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Probabilities over the declared classes, one row per input row."""
        model = self._require_model()
        with torch.no_grad():
            return torch.softmax(model(self._matrix(df)), dim=1).numpy().astype(float)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """The most probable declared class of each row."""
        return np.asarray(self.classes, dtype=object)[self.predict_proba(df).argmax(axis=1)]

    def evaluate(self, df: pd.DataFrame) -> dict[str, Any]:
        """Accuracy (and AUC for two classes) on labelled rows, beside the majority baseline
        of the same rows: the utility of mechanism 1 on unseen real data."""
        from sklearn.metrics import roc_auc_score

        labels = self._labels(df)
        keep = labels < len(self.classes)
        y = labels[keep]
        if not len(y):
            raise ValueError("no rows with a declared target class to evaluate on")
        proba = self.predict_proba(df[keep])
        out: dict[str, Any] = {
            "rows": int(len(y)),
            "accuracy": float((proba.argmax(axis=1) == y).mean()),
            "majority_accuracy": float(np.bincount(y).max() / len(y)),
            "auc": None,
        }
        if len(self.classes) == 2 and len(np.unique(y)) == 2:
            out["auc"] = float(roc_auc_score(y == 1, proba[:, 1]))
        return out

    def _require_model(self) -> MLP:
        if self.model is None:
            raise RuntimeError("classifier is not fitted; call fit() first")
        return self.model

    # --- reporting and release ----------------------------------------------------------

    def _metadata(self, meta: dict[str, Any], snapshot_id: str | None,
                  history: list[dict[str, Any]]) -> dict[str, Any]:
        import opacus

        losses = [h["loss"] for h in history if not math.isnan(h["loss"])]
        return dict(meta) | {
            "format_version": FORMAT_VERSION,
            "model": "dp-classifier",
            "kind": "classifier",
            "dataset_id": self.schema.id,
            "schema_hash": self.schema.hash,
            "snapshot_id": snapshot_id,
            "target": self.target.name,
            "classes": self.classes,
            "features": self.encoder.feature_names,
            "input_columns": [c.name for c in self.encoder.columns],
            "privacy_unit": list(self.schema.privacy_unit),
            "max_rows_per_unit": self.schema.privacy.max_rows_per_unit,
            "config": self.config.to_dict(),
            "versions": {"torch": torch.__version__, "opacus": opacus.__version__,
                         "python": platform.python_version()},
            # Training losses are not DP outputs: kept for the operator, never exported.
            "training": {"first_loss": losses[0] if losses else None,
                         "final_loss": losses[-1] if losses else None},
        }

    @property
    def privacy_report(self) -> dict[str, Any]:
        """Guarantee and mechanism parameters (as the synthesizer reports them)."""
        keys = ("private", "epsilon", "target_epsilon", "delta", "accountant",
                "noise_multiplier", "sample_rate", "steps", "max_grad_norm",
                "batch_size", "epochs", "public_rows", "privacy_unit", "max_rows_per_unit",
                "dataset_id", "schema_hash", "seed_source")
        if not self.metadata:
            return {"fitted": False, "private": self.private, "target_epsilon": self.epsilon}
        return ({k: self.metadata.get(k) for k in keys} | group_privacy_block(self.metadata)
                | {"fitted": True, "kind": "classifier"})

    def public_card(self) -> dict[str, Any]:
        """``model.json``: what is needed to rebuild and use the network, nothing learned
        from the rows beyond the DP weights (no losses, no exact counts, no seed)."""
        m = self.metadata
        keys = ("format_version", "model", "kind", "dataset_id", "schema_hash", "target",
                "classes", "features", "input_columns", "config", "versions")
        # The seed drives the DP noise and batch sampling: publishing it would let anyone
        # regenerate the noise. The snapshot id stays in the (unpublished) privacy.json.
        private = {k: v for k, v in self.privacy_report.items()
                   if k not in ("seed", "snapshot_id", "fitted")}
        return {k: m.get(k) for k in keys} | {"privacy": private}

    def export_release(self, directory: str | Path) -> Path:
        """Write ``weights.pt`` (state_dict) and ``model.json`` into ``directory``."""
        model = self._require_model()
        out = CandidateDir(Path(directory))
        out.mkdir()
        torch.save(model.state_dict(), out.weights_pt)
        out.release_config_json.write_text(
            json.dumps(self.public_card(), indent=2, default=str), encoding="utf-8")
        return out.path

    @classmethod
    def from_release(cls, directory: str | Path, schema: DatasetSchema) -> DPClassifier:
        """Load a released classifier; refuses a schema other than the one it was trained
        under (the feature layout would not match)."""
        path = Path(directory)
        release = ReleaseDir(path)
        card = release.read_release_config()
        if card.get("kind") != "classifier":
            raise SchemaError(f"{path}: not a classifier release (kind {card.get('kind')!r})")
        if card.get("schema_hash") != schema.hash:
            raise SchemaError(f"{path}: trained under schema hash {card.get('schema_hash')}, "
                              f"but {schema.id} now has hash {schema.hash}")
        config = TrainConfig.from_dict(card["config"])
        clf = cls(schema, private=bool(card["privacy"].get("private")),
                  epsilon=card["privacy"].get("target_epsilon"),
                  **cls.recipe_from_config(config))
        if clf.encoder.feature_names != card.get("features"):
            raise SchemaError(f"{path}: feature layout differs from the released one")
        with TORCH_RNG_LOCK:  # construction initialises weights from the global generator
            model = MLP(len(clf.encoder.feature_names), config.hidden, len(clf.classes))
        model.load_state_dict(torch.load(release.weights_pt, weights_only=True))
        model.eval()
        clf.model = model
        clf.metadata = {k: v for k, v in card.items() if k != "privacy"} | card["privacy"]
        return clf


def same_recipe(target: DPClassifier, seed: int) -> DPClassifier:
    """An untrained classifier with the target's exact training recipe and a new seed.

    Shadow models report no progress: the target's callback belongs to its own run."""
    return target.clone(seed=seed, progress=None)
