"""``DPVAESynthesizer``: fit a DP tabular VAE on a table, sample synthetic rows, save/load.

The fitted model and its metadata are *sensitive artifacts* (a model trained without DP,
or the loss trajectory, carry information about the rows); only sampled tables from a
``private=True`` model are meant for release. Everything the encoder knows comes from
the declared schema; the privacy-unit cap is applied before any row reaches training.

A DP-trained model may itself be released (white paper mechanism 2, at most at the
``confidential`` label): :meth:`DPVAESynthesizer.export_release` writes only the public
release files — ``weights.pt`` (the ``state_dict``) and a sanitized ``model.json``
(architecture, schema-derived encoder layout, schema id and hash, the privacy
parameters; never the loss history or any count of the real rows) — and
:meth:`DPVAESynthesizer.from_release` rebuilds a sampler from them.
"""

from __future__ import annotations

import io
import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pulsesynth.artifacts import RELEASE_CONFIG_JSON, WEIGHTS_PT, CandidateDir, ModelDir, ReleaseDir
from pulsesynth.dp import GroupPrivacy, unit_rule
from pulsesynth.encoding import TableEncoder
from pulsesynth.errors import SchemaError
from pulsesynth.params import RecipeParams
from pulsesynth.reports import group_privacy_block
from pulsesynth.schema import DatasetSchema
from pulsesynth.splits import cap_rows_per_unit
from pulsesynth.synth import marginals as dp_marginals
from pulsesynth.synth import within_bin
from pulsesynth.synth.marginals import MarginalPlan, NoisyMarginals
from pulsesynth.synth.model import NegativeELBO, TabularVAE
from pulsesynth.synth.train import (
    ProgressFn,
    TrainConfig,
    gaussian_noise_for,
    train_vae,
    warm_start_state,
)
from pulsesynth.synth.within_bin import SubBins, WithinBin
from pulsesynth.threads import TORCH_RNG_LOCK

FORMAT_VERSION = 1
RELEASE_FORMAT_VERSION = 1
#: The privacy parameters a released model.json carries (public mechanism facts only).
#: Never the training seed: knowing it would let anyone regenerate the DP noise.
RELEASE_PRIVACY_KEYS = ("private", "epsilon", "target_epsilon", "delta", "accountant",
                        "noise_multiplier", "sample_rate", "steps", "max_grad_norm",
                        "batch_size", "epochs", "privacy_unit", "max_rows_per_unit",
                        "unit_rule", "public_rows", "marginal_share",
                        "prior_mechanisms")
#: How a released value is placed inside its public bin.
UNIFORM_IN_BIN = "numeric bins decoded uniformly (log-uniformly for log scale)"
SHARES_IN_BIN = ("numeric values placed inside their bin by the DP shares of its sub-bins "
                 "(given the target's class), uniformly inside a sub-bin")
#: Rows drawn after training to check that the synthetic target keeps more than one class.
COLLAPSE_CHECK_ROWS = 2000
#: Rows decoded at once when sampling: the float64 probabilities of a whole raking pool
#: (5 draws per released row × the encoded width) took 16 KB a row, ~16 GB for 1M rows.
SAMPLE_CHUNK_ROWS = 65_536
#: The training defaults, in one place: the constructor's defaults are read from here.
DEFAULTS = TrainConfig()
#: Epochs of the noise-free warm start on rows drawn from the DP marginals (0: none).
WARM_START_EPOCHS = 10
#: Rows drawn from the DP marginals for the warm start, per (public) training row, and at
#: most (the one-hot pool of a 1M-row table would take gigabytes; 200,000 rows is ~80 MB
#: at 100 encoded columns).
WARM_START_ROWS = 5
WARM_START_MAX_ROWS = 200_000
#: Rows of each privacy unit DP-SGD and the DP marginals train on, where the schema lets a
#: unit keep more (``max_rows_per_unit``). Keeping c rows of a unit costs group privacy
#: over c, so every count's noise grows with c while the rows kept grow by less: the
#: signal-to-noise of a count, sum(min(rows, c)) / c over the units, is largest at c = 1.
#: The cost is weight: units, not rows, weigh equally in what the model sees (measured
#: on the suite's panel table: docs/utility-experiments.md, "One row per person"). The
#: release keeps its size: it samples the DP count of all the run's training rows.
UNIT_ROWS = 1


class DPVAESynthesizer(RecipeParams):
    """Differentially private tabular VAE synthesizer bound to one declared schema."""

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
        kl_weight: float = DEFAULTS.kl_weight,
        max_grad_norm: float = DEFAULTS.max_grad_norm,
        hidden: tuple[int, ...] = DEFAULTS.hidden,
        latent_dim: int = DEFAULTS.latent_dim,
        accountant: str = DEFAULTS.accountant,
        marginal_share: float = dp_marginals.MARGINAL_SHARE,
        warm_start_epochs: int = WARM_START_EPOCHS,
        rows_per_unit: int | None = UNIT_ROWS,
        progress: ProgressFn | None = None,
    ) -> None:
        if accountant not in ("prv", "rdp"):
            raise ValueError(f"accountant must be 'prv' or 'rdp', got {accountant!r}")
        if not 0 <= marginal_share < 1:
            raise ValueError(f"marginal_share must be in [0, 1), got {marginal_share!r}")
        self.schema = schema
        self.epsilon = float(schema.privacy.epsilon if epsilon is None else epsilon)
        self.delta = delta if delta is not None else schema.privacy.delta
        self.private = private
        #: None until fit: then the caller's seed, or a fresh secret one (``seed_source``).
        self.seed = seed
        self.seed_source: str | None = None
        self.config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, kl_weight=kl_weight,
            max_grad_norm=max_grad_norm, hidden=tuple(hidden), latent_dim=latent_dim,
            accountant=accountant,
        )
        #: Share of ε the DP marginals would cost alone (0: no marginals, no raking).
        self.marginal_share = float(marginal_share)
        #: Noise-free epochs on rows drawn from the DP marginals before DP-SGD (private
        #: fits with marginals only; 0: DP-SGD starts from random weights).
        self.warm_start_epochs = int(warm_start_epochs)
        #: Rows of each privacy unit trained on (at most the schema's cap; None: the cap).
        self.rows_per_unit = rows_per_unit
        self.progress = progress
        self.encoder = TableEncoder(schema)
        self.model: TabularVAE | None = None
        #: DP marginals that sampling rakes the VAE's draws to (None: plain VAE draws).
        self.marginals: NoisyMarginals | None = None
        #: DP shares of sub-bins that place values inside their bins (None: uniformly).
        self.within: WithinBin | None = None
        self.metadata: dict[str, Any] = {}

    @property
    def trained_rows_per_unit(self) -> int:
        """Rows of each privacy unit ``fit`` trains on: ``rows_per_unit``, at most the
        schema's ``max_rows_per_unit`` (public: the recipe and the schema)."""
        k = self.schema.privacy.max_rows_per_unit
        return k if self.rows_per_unit is None else min(k, int(self.rows_per_unit))

    # --- fit ----------------------------------------------------------------------------

    def fit(self, df: pd.DataFrame, snapshot_id: str | None = None, *,
            public_rows: int | None = None) -> DPVAESynthesizer:
        """Cap rows per privacy unit, encode with the schema and train (DP unless disabled).

        Each unit keeps :attr:`trained_rows_per_unit` rows, chosen by a keyed hash.
        ``seed=None`` (the default) draws fresh secret randomness for this fit; a given seed
        makes it reproducible and never releasable. ``public_rows`` is the count of those
        kept rows the DP-SGD schedule is planned from: a DP count in the pipeline
        (:func:`pulsesynth.splits.role_counts`); the exact count when omitted
        (experiments: the schedule then reveals it).
        """
        from pulsesynth.randomness import resolve_seed, salt_from_seed
        from pulsesynth.synth.train import default_delta

        seed, self.seed_source = resolve_seed(self.seed)
        self.seed = seed
        k = self.trained_rows_per_unit
        capped = cap_rows_per_unit(df, self.schema, k, salt=salt_from_seed(seed))
        rule = unit_rule(list(self.schema.privacy_unit), k,
                         declared=self.schema.privacy.max_rows_per_unit)
        group = GroupPrivacy.of(self.schema.privacy_unit, k, self.epsilon,
                                default_delta() if self.delta is None else float(self.delta))
        x = self.encoder.transform(capped)
        prior = self._measure_marginals(capped, seed, group, public_rows or len(capped))
        result = train_vae(
            x, self.encoder.blocks, self.config, private=self.private,
            epsilon=group.row_epsilon if self.private else None, delta=group.row_delta,
            seed=seed, public_rows=public_rows, progress=self.progress, prior=prior,
            initial_state=self._warm_start(public_rows or len(x), seed),
        )
        result.metadata = group.report(result.metadata)
        self.model = result.model
        report = dict(result.report)
        report["encoding"] = self.encoder.last_transform_report
        report["unit_cap"] = {"rule": rule,
                              "max_rows_per_unit": self.schema.privacy.max_rows_per_unit,
                              "rows_per_unit_trained": k, "rows_in": len(df),
                              "rows_trained": len(capped)}
        self.metadata = self._metadata(result.metadata, report, snapshot_id, public_rows)
        self._check_target_collapse()
        return self

    def _measure_marginals(self, capped: pd.DataFrame, seed: int, group: GroupPrivacy,
                           rows: int) -> list[tuple[float, float, int]]:
        """Measure the plan's marginals with the Gaussian mechanism (private fits with a
        positive ``marginal_share``), at the row-level target of ``group``; returns its
        accountant entry for DP-SGD to compose. ``rows`` is the public row count."""
        self.marginals = None
        self.within = None
        if not (self.private and self.marginal_share > 0):
            return []
        noise = gaussian_noise_for(self.marginal_share * group.row_epsilon, group.row_delta,
                                   self.config.accountant)
        plan = MarginalPlan.for_columns(self.encoder.column_names,
                                        [b.width for b in self.encoder.block_specs],
                                        self.schema.target)
        rng = np.random.default_rng([seed, 0x4D415247])  # "MARG": its own stream
        levels = self.encoder.levels(capped)
        sub = SubBins.for_plan(self.encoder, plan, noise, rows)
        if sub is not None:  # bins and their parts: one Gaussian mechanism of this σ
            self.marginals, self.within = within_bin.measure(
                levels, self.encoder.bin_positions(capped, levels), plan, sub, noise, rng)
            return [(noise, 1.0, 1)]
        # The scores that choose the tables and the tables are one Gaussian mechanism of
        # noise multiplier ``noise`` (see the marginals module): one accountant entry.
        self.marginals = dp_marginals.measure_selected(levels, plan, noise, rng, rows)
        return [(noise, 1.0, 1)]

    def _warm_start(self, rows: int, seed: int) -> dict[str, torch.Tensor] | None:
        """Initial weights from a noise-free fit to rows drawn from the DP marginals
        (:func:`~pulsesynth.synth.train.warm_start_state`; post-processing, no privacy
        cost). ``rows`` is public (the DP count), so the pool size reveals nothing."""
        if self.marginals is None or self.warm_start_epochs <= 0:
            return None
        rng = np.random.default_rng([seed, 0x5741524D])  # "WARM": its own stream
        pool = min(WARM_START_ROWS * rows, WARM_START_MAX_ROWS)
        levels = dp_marginals.independent_draws(self.marginals, pool, rng)
        return warm_start_state(self.encoder.one_hot(levels), self.encoder.blocks, self.config,
                                epochs=self.warm_start_epochs, public_rows=rows,
                                seed=seed ^ 0x5741524D)

    def _metadata(
        self, train_meta: dict[str, Any], report: dict[str, Any], snapshot_id: str | None,
        public_rows: int | None,
    ) -> dict[str, Any]:
        import opacus

        meta = dict(train_meta)
        meta.update(
            format_version=FORMAT_VERSION,
            model="dp-vae",
            dataset_id=self.schema.id,
            schema_hash=self.schema.hash,
            snapshot_id=snapshot_id,
            seed_source=self.seed_source,
            public_rows=public_rows,
            size_rule=("DP count of the rows trained on" if public_rows
                       else "exact row count (not for release)"),
            privacy_unit=list(self.schema.privacy_unit),
            max_rows_per_unit=self.schema.privacy.max_rows_per_unit,
            unit_rule=report["unit_cap"]["rule"],
            config=self.config.to_dict(),
            marginal_share=self.marginal_share if self.marginals is not None else 0.0,
            warm_start_epochs=self.warm_start_epochs if self.marginals is not None else 0,
            marginals=self.marginals.to_dict() if self.marginals is not None else None,
            within_bin=self.within.to_dict() if self.within is not None else None,
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

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        """Draw ``n`` synthetic rows (schema's synthesized columns only); same seed, same
        rows; without a seed the draw uses fresh secret randomness."""
        from pulsesynth.randomness import resolve_seed

        seed = resolve_seed(seed)[0]
        rng = np.random.default_rng(seed)
        if self.marginals is None:
            levels = self._draw_levels(n, seed, rng)
        else:
            # A pool of VAE draws, raked to the DP marginals, then n rows drawn by weight.
            pool = np.vstack([
                self._draw_levels(max(n, 1) * dp_marginals.POOL_FACTOR, seed, rng),
                dp_marginals.independent_draws(
                    self.marginals, max(n, 1) * dp_marginals.INDEPENDENT_FACTOR, rng)])
            weights = dp_marginals.rake(pool, self.marginals)
            levels = pool[dp_marginals.resample(weights, n, rng)]
        return self.decode(levels, rng)

    def decode(self, levels: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Rows of block levels as the released table: values drawn inside their public
        bins (by the DP sub-bin shares where measured), then the schema's codebook
        relations (public rules: post-processing)."""
        positions = None if self.within is None else self.within.positions(levels, rng)
        table = self.encoder.decode_levels(levels, rng, positions)
        if not self.schema.relations:
            return table
        from pulsesynth.relations import apply_relations

        return apply_relations(table, self.schema.relations,
                               [c.name for c in self.schema.released_columns])

    def _draw_levels(self, n: int, seed: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of block levels from the decoder at standard-normal latents."""
        model = self._require_model()
        model.eval()
        gen = torch.Generator().manual_seed(seed)
        levels = []
        with torch.no_grad():
            # All latents first (one generator stream whatever the chunking), then decode
            # and draw chunk by chunk: ``rng`` is read in row order, so the rows are the
            # same as one pass, and peak memory is one chunk's probabilities.
            z = torch.randn(n, model.latent_dim, generator=gen)
            for begin in range(0, max(n, 1), SAMPLE_CHUNK_ROWS):
                logits = model.decode(z[begin:begin + SAMPLE_CHUNK_ROWS])
                probs = np.empty(logits.shape, dtype=np.float64)
                for _, start, width in self.encoder.blocks:
                    probs[:, start:start + width] = torch.softmax(
                        logits[:, start:start + width].double(), dim=1).numpy()
                levels.append(self.encoder.sample_levels(probs, rng))
        return np.vstack(levels)

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
                "unit_rule", "dataset_id", "schema_hash", "seed_source", "public_rows",
                "size_rule", "marginal_share", "prior_mechanisms")
        out = {k: m.get(k) for k in keys} | group_privacy_block(m)
        out["fitted"] = True
        out["collapse_warning"] = m["training_report"]["collapse_warning"]
        return out

    # --- persistence --------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state_dict) and ``metadata.json`` into ``directory``."""
        model = self._require_model()
        saved = ModelDir(Path(directory))
        saved.mkdir()
        torch.save(model.state_dict(), saved.state_pt)
        saved.metadata_json.write_text(
            json.dumps(self.metadata, indent=2, sort_keys=True, default=_json_default),
            encoding="utf-8",
        )
        return saved.path

    @classmethod
    def load(cls, directory: str | Path, schema: DatasetSchema) -> DPVAESynthesizer:
        """Load a saved synthesizer; refuses a schema whose hash differs from training's."""
        path = Path(directory)
        saved = ModelDir(path)
        meta = json.loads(saved.metadata_json.read_text(encoding="utf-8"))
        if meta.get("schema_hash") != schema.hash:
            raise SchemaError(
                f"{path}: model was trained under schema hash {meta.get('schema_hash')}, "
                f"but schema {schema.id} now has hash {schema.hash}; retrain the model"
            )
        config = TrainConfig.from_dict(meta["config"])
        synth = cls(
            schema, epsilon=meta.get("target_epsilon") or schema.privacy.epsilon,
            delta=meta.get("delta"), private=bool(meta["private"]), seed=int(meta["seed"]),
            marginal_share=float(meta.get("marginal_share") or 0.0),
            # Models from before UNIT_ROWS trained on every row the schema allowed (None).
            rows_per_unit=meta["training_report"]["unit_cap"].get("rows_per_unit_trained"),
            **cls.recipe_from_config(config),
        )
        if synth.encoder.state_dict() != meta["encoder"]:
            raise SchemaError(f"{path}: encoder layout differs from the saved one")
        if meta.get("marginals"):
            synth.marginals = NoisyMarginals.from_dict(meta["marginals"])
        if meta.get("within_bin"):
            synth.within = WithinBin.from_dict(meta["within_bin"])
        with TORCH_RNG_LOCK:  # construction initialises weights from the global generator
            model = TabularVAE(synth.encoder.width, config.hidden, config.latent_dim)
        state = torch.load(saved.state_pt, weights_only=True)
        model.load_state_dict(state)
        model.eval()
        synth.model = model
        synth.metadata = meta
        return synth


    # --- release files (mechanism 2: the model itself) ----------------------------------

    def release_config(self) -> dict[str, Any]:
        """The public ``model.json``: what rebuilds the network, nothing learned from rows."""
        model = self._require_model()
        meta = self.metadata
        privacy = {k: meta.get(k) for k in RELEASE_PRIVACY_KEYS} | group_privacy_block(meta)
        return {
            "format_version": RELEASE_FORMAT_VERSION,
            "kind": "model",
            "model": "dp-vae",
            "architecture": {"class": "TabularVAE", "data_dim": model.data_dim,
                             "hidden": list(model.hidden), "latent_dim": model.latent_dim},
            "dataset_id": meta.get("dataset_id", self.schema.id),
            "schema_id": self.schema.id,
            "schema_hash": self.schema.hash,
            "features": self.encoder.column_names,
            "target": self.schema.target,
            "encoder": self.encoder.state_dict(),
            "config": self.config.to_dict(),
            "privacy": privacy,
            "marginals": meta.get("marginals"),
            "within_bin": meta.get("within_bin"),
            "sampling": {"latent": "standard normal",
                         "decoding": "softmax per column block; " + (
                             SHARES_IN_BIN if meta.get("within_bin") else UNIFORM_IN_BIN),
                         "raking": (f"{dp_marginals.POOL_FACTOR} draws per row raked to the "
                                    "DP marginals, then drawn by weight"
                                    if meta.get("marginals") else None),
                         "seeded": True},
            "versions": {k: v for k, v in (meta.get("versions") or {}).items()
                         if k in ("torch", "opacus")},
        }

    def export_release(self, directory: str | Path) -> Path:
        """Write ``weights.pt`` (state_dict) and ``model.json`` (sanitized) into ``directory``.

        Only for a DP-trained model: a non-private model is never released.
        """
        model = self._require_model()
        if not self.metadata.get("private", self.private):
            raise ValueError("a non-private (non-DP) model is never exported for release")
        out = CandidateDir(Path(directory))
        out.mkdir()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        torch.save(state, out.weights_pt)
        out.release_config_json.write_text(
            json.dumps(self.release_config(), indent=2, sort_keys=True, default=_json_default),
            encoding="utf-8")
        return out.path

    @classmethod
    def from_release(cls, source: str | Path | Mapping[str, bytes],
                     schema: DatasetSchema) -> DPVAESynthesizer:
        """Rebuild a sampler from release files: a directory holding ``weights.pt`` and
        ``model.json``, or a mapping of those names to their (already verified) bytes.

        Refuses a schema whose hash differs from the model's, an encoder layout that
        differs, and weights that are not a plain ``state_dict`` (``weights_only=True``).
        """
        if isinstance(source, Mapping):
            where = "release"
            weights, config_bytes = source[WEIGHTS_PT], source[RELEASE_CONFIG_JSON]
        else:
            where = str(source)
            release = ReleaseDir(Path(source))
            weights = release.weights_pt.read_bytes()
            config_bytes = release.release_config_json.read_bytes()
        config = json.loads(config_bytes.decode("utf-8"))
        if config.get("kind") != "model" or config.get("model") != "dp-vae":
            raise ValueError(f"{where}: model.json does not describe a released DP-VAE")
        if config.get("schema_hash") != schema.hash:
            raise SchemaError(
                f"{where}: model was trained under schema hash {config.get('schema_hash')}, "
                f"but schema {schema.id} has hash {schema.hash}; refusing to load")
        train_config = TrainConfig.from_dict(config["config"])
        privacy = config.get("privacy") or {}
        synth = cls(schema, epsilon=privacy.get("target_epsilon") or schema.privacy.epsilon,
                    delta=privacy.get("delta"), private=bool(privacy.get("private")),
                    seed=None, marginal_share=float(privacy.get("marginal_share") or 0.0),
                    **cls.recipe_from_config(train_config))
        if synth.encoder.state_dict() != config["encoder"]:
            raise SchemaError(f"{where}: encoder layout differs from the released one")
        if config.get("marginals"):
            synth.marginals = NoisyMarginals.from_dict(config["marginals"])
        if config.get("within_bin"):
            synth.within = WithinBin.from_dict(config["within_bin"])
        arch = config["architecture"]
        if (arch.get("data_dim") != synth.encoder.width
                or list(arch.get("hidden", [])) != list(train_config.hidden)
                or arch.get("latent_dim") != train_config.latent_dim):
            raise SchemaError(f"{where}: architecture in model.json does not match its config")
        with TORCH_RNG_LOCK:  # construction initialises weights from the global generator
            model = TabularVAE(synth.encoder.width, train_config.hidden, train_config.latent_dim)
        state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
        model.load_state_dict(state)
        model.eval()
        synth.model = model
        synth.metadata = dict(privacy) | {
            "schema_hash": schema.hash, "dataset_id": config.get("dataset_id"),
            "config": config["config"], "encoder": config["encoder"], "released": True,
            "training_report": {"collapse_warning": False, "collapse_reasons": []},
        }
        return synth


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
