"""``DPVAESynthesizer``: fit a DP tabular VAE on a table, sample synthetic rows, save/load.

The fitted model and its metadata are *sensitive artifacts* (a model trained without DP,
or the loss trajectory, carry information about the rows); only sampled tables from a
``private=True`` model are meant for release. Everything the encoder knows comes from
the declared schema; the privacy-unit cap is applied before any row reaches training.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pulsesynth.encoding import TableEncoder
from pulsesynth.errors import SchemaError
from pulsesynth.schema import DatasetSchema
from pulsesynth.splits import cap_rows_per_unit
from pulsesynth.synth.model import NegativeELBO, TabularVAE
from pulsesynth.synth.train import ProgressFn, TrainConfig, train_vae

MODEL_FILE = "model.pt"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
#: Rows drawn after training to check that the synthetic target keeps more than one class.
COLLAPSE_CHECK_ROWS = 2000


class DPVAESynthesizer:
    """Differentially private tabular VAE synthesizer bound to one declared schema."""

    def __init__(
        self,
        schema: DatasetSchema,
        epsilon: float | None = None,
        delta: float | None = None,
        private: bool = True,
        seed: int = 0,
        epochs: int = 50,
        batch_size: int = 4096,
        lr: float = 1e-2,
        kl_weight: float = 0.3,
        max_grad_norm: float = 1.0,
        hidden: tuple[int, ...] = (128, 128),
        latent_dim: int = 16,
        accountant: str = "prv",
        progress: ProgressFn | None = None,
    ) -> None:
        if accountant not in ("prv", "rdp"):
            raise ValueError(f"accountant must be 'prv' or 'rdp', got {accountant!r}")
        self.schema = schema
        self.epsilon = float(schema.privacy.epsilon if epsilon is None else epsilon)
        self.delta = delta if delta is not None else schema.privacy.delta
        self.private = private
        self.seed = seed
        self.config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, kl_weight=kl_weight,
            max_grad_norm=max_grad_norm, hidden=tuple(hidden), latent_dim=latent_dim,
            accountant=accountant,
        )
        self.progress = progress
        self.encoder = TableEncoder(schema)
        self.model: TabularVAE | None = None
        self.metadata: dict[str, Any] = {}

    # --- fit ----------------------------------------------------------------------------

    def fit(self, df: pd.DataFrame, snapshot_id: str | None = None) -> DPVAESynthesizer:
        """Cap rows per privacy unit, encode with the schema and train (DP unless disabled)."""
        k = self.schema.privacy.max_rows_per_unit
        capped = cap_rows_per_unit(df, self.schema, k, seed=self.seed)
        unit = list(self.schema.privacy_unit)
        if unit:
            rule = (f"rows per unit capped at {k}, epsilon holds per unit "
                    f"(unit: {', '.join(unit)})")
            if k > 1:
                rule += f"; per-unit guarantee via group privacy over {k} rows"
        else:
            rule = "no privacy unit declared: each row is a unit, epsilon holds per row"
        x = self.encoder.transform(capped)
        result = train_vae(
            x, self.encoder.blocks, self.config, private=self.private,
            epsilon=self.epsilon if self.private else None, delta=self.delta,
            seed=self.seed, progress=self.progress,
        )
        self.model = result.model
        report = dict(result.report)
        report["encoding"] = self.encoder.last_transform_report
        report["unit_cap"] = {"rule": rule, "max_rows_per_unit": k, "rows_in": len(df),
                              "rows_trained": len(capped)}
        self.metadata = self._metadata(result.metadata, report, snapshot_id)
        self._check_target_collapse()
        return self

    def _metadata(
        self, train_meta: dict[str, Any], report: dict[str, Any], snapshot_id: str | None
    ) -> dict[str, Any]:
        import opacus

        meta = dict(train_meta)
        meta.update(
            format_version=FORMAT_VERSION,
            model="dp-vae",
            dataset_id=self.schema.id,
            schema_hash=self.schema.hash,
            snapshot_id=snapshot_id,
            privacy_unit=list(self.schema.privacy_unit),
            max_rows_per_unit=self.schema.privacy.max_rows_per_unit,
            unit_rule=report["unit_cap"]["rule"],
            config=self.config.to_dict(),
            encoder=self.encoder.state_dict(),
            versions={"torch": torch.__version__, "opacus": opacus.__version__,
                      "numpy": np.__version__, "pandas": pd.__version__,
                      "python": platform.python_version()},
            training_report=report,
        )
        return meta

    def _check_target_collapse(self) -> None:
        target = self.schema.target
        if target is None or target not in self.encoder.column_names:
            return
        synth = self.sample(COLLAPSE_CHECK_ROWS, seed=self.seed)
        classes = int(synth[target].nunique(dropna=True))
        report = self.metadata["training_report"]
        report["synthetic_target_classes"] = classes
        if classes < 2:
            report["collapse_warning"] = True
            report["collapse_reasons"].append(
                f"synthetic target '{target}' has a single class in {COLLAPSE_CHECK_ROWS} rows"
            )

    # --- use ----------------------------------------------------------------------------

    def _require_model(self) -> TabularVAE:
        if self.model is None:
            raise RuntimeError("synthesizer is not fitted")
        return self.model

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """Draw ``n`` synthetic rows (schema's synthesized columns only); same seed, same rows."""
        model = self._require_model()
        model.eval()
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z = torch.randn(n, model.latent_dim, generator=gen)
            logits = model.decode(z)
            probs = np.empty(logits.shape, dtype=np.float64)
            for _, start, width in self.encoder.blocks:
                probs[:, start:start + width] = torch.softmax(
                    logits[:, start:start + width].double(), dim=1).numpy()
        return self.encoder.inverse_transform(probs, np.random.default_rng(seed))

    def elbo(self, df: pd.DataFrame) -> pd.DataFrame:
        """Per-record ``elbo``, ``reconstruction`` and ``kl`` (z at the posterior mean).

        Deterministic: the reconstruction term is evaluated at the posterior mean, the KL
        term in closed form, so ``elbo = -(reconstruction + kl)`` (unweighted KL).
        """
        model = self._require_model()
        model.eval()
        x = torch.from_numpy(self.encoder.transform(df))
        crit = NegativeELBO(self.encoder.blocks, model.data_dim, model.latent_dim,
                            reduction="none")
        with torch.no_grad():
            recon, kl = crit.parts(model(x), x)
        recon_np = recon.double().numpy()
        kl_np = kl.double().numpy()
        return pd.DataFrame(
            {"elbo": -(recon_np + kl_np), "reconstruction": recon_np, "kl": kl_np},
            index=df.index,
        )

    @property
    def privacy_report(self) -> dict[str, Any]:
        """What a reviewer needs: guarantee, mechanism parameters and the unit rule."""
        if not self.metadata:
            return {"fitted": False, "private": self.private, "target_epsilon": self.epsilon}
        m = self.metadata
        keys = ("private", "epsilon", "target_epsilon", "delta", "accountant",
                "noise_multiplier", "sample_rate", "steps", "planned_steps", "max_grad_norm",
                "batch_size", "epochs", "train_rows", "privacy_unit", "max_rows_per_unit",
                "unit_rule", "dataset_id", "snapshot_id", "schema_hash", "seed")
        out = {k: m.get(k) for k in keys}
        out["fitted"] = True
        out["collapse_warning"] = m["training_report"]["collapse_warning"]
        return out

    # --- persistence --------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state_dict) and ``metadata.json`` into ``directory``."""
        model = self._require_model()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path / MODEL_FILE)
        (path / METADATA_FILE).write_text(
            json.dumps(self.metadata, indent=2, sort_keys=True, default=_json_default),
            encoding="utf-8",
        )
        return path

    @classmethod
    def load(cls, directory: str | Path, schema: DatasetSchema) -> DPVAESynthesizer:
        """Load a saved synthesizer; refuses a schema whose hash differs from training's."""
        path = Path(directory)
        meta = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
        if meta.get("schema_hash") != schema.hash:
            raise SchemaError(
                f"{path}: model was trained under schema hash {meta.get('schema_hash')}, "
                f"but schema {schema.id} now has hash {schema.hash}; retrain the model"
            )
        config = TrainConfig.from_dict(meta["config"])
        synth = cls(
            schema, epsilon=meta.get("target_epsilon") or schema.privacy.epsilon,
            delta=meta.get("delta"), private=bool(meta["private"]), seed=int(meta["seed"]),
            epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
            kl_weight=config.kl_weight, max_grad_norm=config.max_grad_norm,
            hidden=config.hidden, latent_dim=config.latent_dim, accountant=config.accountant,
        )
        if synth.encoder.state_dict() != meta["encoder"]:
            raise SchemaError(f"{path}: encoder layout differs from the saved one")
        model = TabularVAE(synth.encoder.width, config.hidden, config.latent_dim)
        state = torch.load(path / MODEL_FILE, weights_only=True)
        model.load_state_dict(state)
        model.eval()
        synth.model = model
        synth.metadata = meta
        return synth


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
