"""One synthesis run, step by step, passing only ids and paths between steps.

Each step reads what it needs from the warehouse (by dataset id and the run's recorded
snapshot id) and from the run directory, and writes its outputs there, so an orchestrator
(Prefect tasks in ``tasks/``) moves references, never frames of real rows.

A run directory ``state/runs/<dataset>/<run_id>/`` (git-ignored, sensitive) holds:

- ``run.json``      dataset, snapshot id, schema hash, the run's seed and where it came
                    from (secret OS entropy, or the caller), role fractions, row limit
- ``charge.json``   the ledger charge that pays for the run (id, ε, δ, idempotency key)
- ``sizes.json``    the Laplace counts of the rows in each role (DP; they size the run),
                    and of the rows the model keeps where it keeps fewer per unit
- ``reports.json``  the ledger charge paying for each distinct audit's release report
- ``model/``        the trained synthesizer (sensitive: a model can be attacked)
- ``candidate/``    the candidate: ``synthetic.parquet``, ``privacy.json`` (public facts and
                    DP figures), ``release_stats.json`` (the DP release report the gate
                    reads), ``gate.json``, ``schema.yaml`` (public declaration), and the
                    steward's exact ``utility.json``, ``audit.json``, ``audit.md`` (+ plots)
                    that never leave ``state/``
- ``model_candidate/`` (optional, :func:`model_candidate`) the DP-VAE itself as a ``model``
                    release candidate: ``weights.pt``, ``model.json``, ``audit.json`` (the
                    model MIA only), ``gate.json`` (kind ``model``: at most confidential),
                    ``privacy.json``, ``utility.json``, ``release_stats.json``, ``schema.yaml``
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import math
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial, wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd

from pulsesynth.artifacts import (
    AUDIT_JSON,
    PRIVACY_JSON,
    RELEASE_STATS_JSON,
    RUN_JSON,
    SCHEMA_YAML,
    UTILITY_JSON,
    CandidateDir,
    RunDir,
    dump_json,
)
from pulsesynth.command import cli_command
from pulsesynth.errors import CatalogError, PulseSynthError, ValidationFailed
from pulsesynth.frames import conform
from pulsesynth.governance.locks import os_error_reason, run_lock
from pulsesynth.ids import check_dataset_id
from pulsesynth.params import (
    MAX_SAMPLE_ROWS,
    MAX_SHADOWS,
    check_count,
    check_epsilon,
    check_recipe,
    check_seed,
)
from pulsesynth.paths import Paths
from pulsesynth.randomness import CALLER, SECRET, resolve_seed, salt_from_seed
from pulsesynth.reports import (
    AuditReport,
    PrivacyReport,
    ReleaseStats,
    UtilityReport,
    group_privacy_block,
)
from pulsesynth.schema import DatasetSchema
from pulsesynth.splits import (
    DEFAULT_FRACTIONS,
    TRAINED_ROWS,
    cap_rows_per_unit,
    role_counts,
    sample_units,
    split_by_unit,
    with_fresh_units,
)
from pulsesynth.validation import validate
from pulsesynth.warehouse import BuildResult, Warehouse

P = ParamSpec("P")
R = TypeVar("R")

ACCOUNTANT = "prv"
#: The audit results that cover releasing the model itself (the white-box ELBO attacks).
MODEL_ATTACKS = ("model_mia", "model_lira")


class RunError(PulseSynthError):
    """A run directory is missing, inconsistent, or its source changed."""


#: Write failures of the run directory that end a step in one line (disk full, quota,
#: permission, read-only filesystem); anything else propagates unchanged.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


def _run_step(fn: Callable[P, R]) -> Callable[P, R]:
    """A step that writes a run: it holds the dataset's run lock
    (:func:`pulsesynth.runs.run_lock`: a second run of the same dataset, from a flow, the
    CLI or a deployment, gets ``RunLocked`` — ``skipped: another run holds the lock``), and
    a full disk or a refused write ends it in one :class:`RunError` line saying what failed
    and what the ledger holds."""
    signature = inspect.signature(fn)

    @wraps(fn)
    def step(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = signature.bind(*args, **kwargs).arguments
        paths, run_dir = bound.get("paths") or Paths.default(), Path(bound["run_dir"])
        dataset = bound.get("dataset_id")
        if dataset is None:
            if not RunDir(run_dir).run_json.is_file():
                # No run to lock: the step refuses its arguments, or the missing run, itself.
                return fn(*args, **kwargs)
            dataset = load_run(run_dir)["dataset"]
        with run_lock(paths, dataset, by=f"pipeline.{fn.__name__}"):
            try:
                return fn(*args, **kwargs)
            except OSError as exc:
                if exc.errno not in _DISK_ERRORS:
                    raise
                raise RunError(_write_failure(fn.__name__, dataset, run_dir, exc)) from None

    return step


def _write_failure(step: str, dataset: str, run_dir: Path, exc: OSError) -> str:
    """One line: which step failed on which file, why, and what was (not) charged."""
    reason = os_error_reason(exc)
    if exc.filename:
        reason += f" on {Path(str(exc.filename)).name}"
    try:
        charged = recorded_charge(run_dir)
    except (OSError, ValueError):
        charged = None
    ledger = (f"the ledger charge #{charged['id']} (ε = {charged['epsilon']:g}) stands and "
              "resuming this run (same run directory) is not charged again" if charged
              else "nothing was charged to the ledger")
    return (f"{dataset}: {step} of run {run_dir.name} failed: {reason}; nothing was "
            f"published; {ledger}")


@dataclass(frozen=True)
class RunData:
    """The three data roles of a run, rebuilt from the warehouse and the recorded seed."""

    schema: DatasetSchema
    train: pd.DataFrame
    holdout: pd.DataFrame
    reference: pd.DataFrame


def ingest(file: str | Path, dataset_id: str, schema_path: str | Path,
           classification: str | None = None, paths: Paths | None = None) -> BuildResult:
    """Ingest a file as a catalogued table under the dataset's governed budget.

    A re-ingest must not reset a budget (a promise about the people in the table, not a
    property of a YAML file): the new schema's privacy block is checked against the
    governed one — the catalogued schema's before its first use — before the file is read,
    and recorded only once the table is in. A refusal changes nothing anywhere.
    """
    from pulsesynth.governance.ledger import Budget, Ledger
    from pulsesynth.schema import load_schema

    paths = paths or Paths.default()
    declared = Budget.declared(load_schema(schema_path))  # a malformed file: refused here
    warehouse, ledger = Warehouse(paths), Ledger(paths)
    try:
        current: Budget | None = Budget.declared(warehouse.schema(check_dataset_id(dataset_id)))
    except CatalogError:
        current = None
    if current is not None:
        ledger.check_budget(dataset_id, declared, current=current)
    result = warehouse.ingest(file, dataset_id, schema_path, classification)
    if current is not None:
        ledger.budget(dataset_id, declared, actor="ingest")
    return result


def new_run_dir(paths: Paths, dataset_id: str, run_id: str | None = None) -> Path:
    """A new run directory's path (not created): ``state/runs/<dataset>/<run_id>/``, the run
    id a UTC timestamp and a random suffix unless given."""
    check_dataset_id(dataset_id)
    run_id = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    return RunDir.of(paths, dataset_id, run_id).path


@_run_step
def start_run(dataset_id: str, run_dir: Path, *, seed: int | None = None,
              max_rows: int | None = None, paths: Paths | None = None) -> dict[str, Any]:
    """Pull the snapshot, validate the source, record the run; nothing is trained yet.

    ``seed=None`` (the default, and the only releasable choice) gives the run fresh secret
    randomness; every later step derives its seed from it. ``run.json`` lives in the
    sensitive state directory and is the only place the seed is written.
    """
    # Arguments are checked before anything is read or written (one-line errors).
    check_dataset_id(dataset_id)
    if max_rows is not None:
        check_count(max_rows, "max_rows")
    if seed is not None:
        check_seed(seed)
    run_seed, source = resolve_seed(seed)
    wh = Warehouse(paths)
    snap = wh.pull(dataset_id)
    report = validate(snap.frame, snap.schema)
    if not report.success:
        raise ValidationFailed(dataset_id, report)
    _check_delta(snap.schema, len(snap.frame))
    run = {
        "dataset": dataset_id,
        "run_id": run_dir.name,
        "snapshot_id": snap.snapshot_id,
        "schema_hash": snap.schema.hash,
        "seed": run_seed,
        "seed_source": source,
        "split_rule": "keyed hash of the privacy unit (secret per-dataset salt)"
                      if source == SECRET else "keyed hash of the privacy unit (public "
                                                "test salt from the caller's seed)",
        "fractions": DEFAULT_FRACTIONS,
        "max_rows": max_rows,
        "source_rows": len(snap.frame),
        "validation": report.to_dict(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RunDir(run_dir).write_run(run)
    return run


def _check_delta(schema: DatasetSchema, rows: int) -> None:
    """Refuse a δ that is not well below 1/units: the fixed public default (10⁻⁶) is only
    meant for tables of at most 100,000 rows. The check reads the row count but only tells
    the operator to declare a smaller δ; nothing about it is released."""
    delta = run_delta(schema)
    if delta * rows > 0.1:
        raise RunError(
            f"{schema.id}: δ = {delta:g} is too large for a table of this size (it must stay "
            f"well below 1 / rows); declare a smaller privacy.delta in its schema, e.g. "
            f"{10 ** math.floor(math.log10(0.1 / rows)):g}")


def load_run(run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json``; :class:`RunError` when ``run_dir`` is not a run directory."""
    run = RunDir(run_dir)
    if not run.run_json.is_file():
        raise RunError(f"{run_dir}: not a run directory (no {RUN_JSON})")
    return run.read_run()


def derived_seed(run: dict[str, Any], purpose: str) -> int:
    """A step's seed from the run's (secret or caller-given) seed: independent per step."""
    digest = hashlib.sha256(f"{run['seed']}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _role_salt(run: dict[str, Any], paths: Paths | None) -> bytes:
    if run.get("seed_source") == SECRET:
        from pulsesynth.governance.secrets import role_salt

        return role_salt(paths or Paths.default(), run["dataset"])
    return salt_from_seed(int(run["seed"]))


def run_data(run_dir: Path, paths: Paths | None = None) -> RunData:
    """Re-pull the run's snapshot and rebuild its roles, each capped per privacy unit.

    Roles and caps are keyed hashes of the units (:mod:`pulsesynth.splits`), so removing
    one unit from the table changes only its own rows; every role is capped at
    ``max_rows_per_unit`` rows per unit, so each unit's weight in training *and* in every
    audit or utility statistic is bounded by the same ``k``.
    """
    run = load_run(run_dir)
    wh = Warehouse(paths)
    snap = wh.pull(run["dataset"])
    if snap.snapshot_id != run["snapshot_id"]:
        raise RunError(
            f"{run['dataset']}: the warehouse table changed since run {run['run_id']}; "
            "start a new run"
        )
    frame, schema = snap.frame, snap.schema
    salt = _role_salt(run, paths)
    if run.get("max_rows") and len(frame) > run["max_rows"]:
        frame = sample_units(frame, schema, run["max_rows"] / len(frame), salt=salt)
    parts = split_by_unit(frame, schema, run["fractions"], salt=salt)
    k = schema.privacy.max_rows_per_unit
    capped = {name: cap_rows_per_unit(part, schema, k, salt=salt)
              for name, part in parts.items()}
    return RunData(schema, capped["train"], capped["holdout"], capped["reference"])


def run_epsilon(schema: DatasetSchema, epsilon: float | None = None) -> float:
    """The run's total ε: the caller's, else the schema's per-run ε; finite, above 0 and at
    most the public ceiling (:data:`pulsesynth.budget.MAX_RUN_EPSILON`)."""
    return check_epsilon(schema.privacy.epsilon if epsilon is None else epsilon)


def run_delta(schema: DatasetSchema) -> float:
    """δ from a public rule: the declared one, else the fixed default (never from n)."""
    from pulsesynth.synth.train import default_delta

    return float(schema.privacy.delta) if schema.privacy.delta is not None else default_delta()


@_run_step
def charge(run_dir: Path, *, epsilon: float | None = None, idempotency_key: str | None = None,
           paths: Paths | None = None, actor: str = "pipeline") -> dict[str, Any]:
    """Charge the run's (ε, δ) on the ledger before anything is trained; idempotent.

    The key defaults to one per run directory, so a retried or resumed run charges once.
    Writes ``charge.json`` (sensitive state) with the charge id that ``privacy.json``
    carries and that registration checks against the ledger. Raises ``BudgetExceeded``.
    """
    from pulsesynth.governance.ledger import Budget, Ledger

    run = load_run(run_dir)
    schema = Warehouse(paths).schema(run["dataset"])
    eps, delta = run_epsilon(schema, epsilon), run_delta(schema)
    key = idempotency_key or f"train:{run['dataset']}:run:{run['run_id']}"
    ledger = Ledger(paths)
    # The governed budget, not the schema file's: editing or re-ingesting a schema cannot
    # raise a lifetime ε (BudgetChanged says how a steward changes it).
    budget = ledger.budget(run["dataset"], Budget.declared(schema), actor=actor)
    c = ledger.charge(run["dataset"], run_id=run["run_id"], snapshot_id=run["snapshot_id"],
                      epsilon=eps, delta=delta, accountant=ACCOUNTANT, idempotency_key=key,
                      lifetime_epsilon=budget.lifetime_epsilon, actor=actor)
    record = {"id": c.id, "epsilon": c.epsilon, "delta": c.delta, "new": c.new,
              "idempotency_key": c.idempotency_key}
    RunDir(run_dir).write_charge(record)
    return record


def recorded_charge(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``charge.json``, or ``None`` before it is charged."""
    return RunDir(run_dir).read_charge()


def public_sizes(run_dir: Path) -> dict[str, int]:
    """The run's DP row counts per role (see :mod:`pulsesynth.budget`)."""
    run = RunDir(run_dir)
    if not run.sizes_json.is_file():
        raise RunError(f"{run_dir}: no DP row counts yet (run the train step)")
    return run.read_sizes()["rows"]


@_run_step
def train(run_dir: Path, *, epsilon: float | None = None, private: bool = True,
          paths: Paths | None = None, progress=None, **config: Any) -> dict[str, Any]:
    """Fit the DP-VAE on the run's training rows and save it under ``model/``.

    A private fit never runs without a ledger charge: the run's recorded charge (made by
    :func:`charge`, e.g. by the flow under its own idempotency key) or one made here. Its
    ε is split (:class:`~pulsesynth.budget.BudgetSplit`) between DP row counts, DP-SGD
    and the release report; the counts size the schedule and the release.
    """
    from pulsesynth.budget import BudgetSplit, laplace_counts
    from pulsesynth.synth import DPVAESynthesizer

    # Checked before the rows are read and the ledger is charged.
    if epsilon is not None:
        check_epsilon(epsilon)
    check_recipe(config)
    run = load_run(run_dir)
    data = run_data(run_dir, paths)
    schema = data.schema
    charged: dict[str, Any] | None = None
    if private:
        charged = recorded_charge(run_dir)
        if charged is None:
            charged = charge(run_dir, epsilon=epsilon, paths=paths)
        elif epsilon is not None and not math.isclose(charged["epsilon"], float(epsilon)):
            raise RunError(f"{run['dataset']}: run {run['run_id']} was charged ε = "
                           f"{charged['epsilon']:g}, not {epsilon:g}; start a new run")
    split = BudgetSplit.of(charged["epsilon"]) if charged else None
    synth = DPVAESynthesizer(
        schema, epsilon=split.training if split else None,
        delta=charged["delta"] if charged else None, private=private,
        seed=derived_seed(run, "train"), progress=progress, **config)
    true_rows, sensitivity = role_counts(
        {"train": data.train, "holdout": data.holdout, "reference": data.reference},
        schema, synth.trained_rows_per_unit)
    if split is not None:
        rng = np.random.default_rng(derived_seed(run, "row-count"))
        sizes = laplace_counts(true_rows, sensitivity, split.row_count, rng)
        RunDir(run_dir).write_sizes({
            "rows": sizes, "mechanism": "Laplace", "sensitivity": sensitivity,
            "epsilon": split.row_count})
    else:
        sizes = true_rows  # non-private runs are never released
        RunDir(run_dir).write_sizes({"rows": sizes, "mechanism": None})
    # The schedule is planned from the rows the model keeps; the release samples "train".
    synth.fit(data.train, snapshot_id=run["snapshot_id"],
              public_rows=sizes.get(TRAINED_ROWS, sizes["train"]))
    synth.metadata["dataset_id"] = run["dataset"]
    # The seed is derived from the run's: it is exactly as secret as the run's seed.
    synth.metadata["seed_source"] = run["seed_source"]
    synth.save(RunDir(run_dir).model.path)
    report = dict(synth.privacy_report) | {"seed_source": run["seed_source"]}
    return report | {"charge_id": charged["id"] if charged else None,
                     "rows": sizes["train"]}


def load_model(run_dir: Path, paths: Paths | None = None):
    """The run's trained synthesizer (from ``model/``), under the dataset's current schema."""
    from pulsesynth.synth import DPVAESynthesizer

    schema = Warehouse(paths).schema(load_run(run_dir)["dataset"])
    return DPVAESynthesizer.load(RunDir(run_dir).model.path, schema)


def _mechanism_text(meta: dict[str, Any]) -> str:
    sgd = "DP-SGD (Opacus: Poisson sampling, ghost clipping, Gaussian noise)"
    if not meta.get("marginals"):
        return sgd
    return ("Gaussian-mechanism marginals (each column with the target, or only the "
            "columns that noisy scores show carry the signal, the rest alone), then " + sgd
            + ", composed in one accountant; samples raked to the DP marginals "
            "(post-processing)" + ("; numeric values placed inside their bins by the same "
                                  "counts taken on sub-bins" if meta.get("within_bin") else ""))


def _marginals_facts(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The DP marginals' mechanism facts (which, how noisy), never their values: the noise
    is public; which columns are paired with the target is DP (chosen from noisy scores)."""
    marg = meta.get("marginals")
    if not marg:
        return None
    within = meta.get("within_bin")
    return {"columns": [list(g) for g in marg["groups"]], "count": len(marg["groups"]),
            "selection": marg.get("selection"),
            # Parts a bin's values were placed by (1: none): whether any column was is
            # decided from the noisy sub-bin counts, so DP.
            "sub_bins": within["most_parts"] if within else 1,
            "noise_multiplier": marg["noise_multiplier"],
            "share_alone": meta.get("marginal_share"),
            "composition": "in the same accountant as the DP-SGD steps"}


def privacy_report(run_dir: Path, synth: Any, *, sample_seed_source: str) -> PrivacyReport:
    """``privacy.json``: public facts and DP figures only (see
    :mod:`pulsesynth.governance.publishable`). The exact row count, the snapshot hash and
    every seed stay in ``run.json`` / ``model/`` (sensitive state)."""
    from pulsesynth.budget import BudgetSplit, budget_report

    run = load_run(run_dir)
    meta = synth.metadata
    charged = recorded_charge(run_dir)
    private = bool(meta.get("private"))
    report: PrivacyReport = {
        "private": private,
        "dataset_id": run["dataset"],
        "schema_hash": run["schema_hash"],
        "mechanism": _mechanism_text(meta),
        "adjacency": "add or remove one privacy unit (all its rows) from the table",
        "privacy_unit": list(synth.schema.privacy_unit) or ["<row>"],
        "max_rows_per_unit": meta.get("max_rows_per_unit"),
        "unit_rule": meta.get("unit_rule"),
        "randomness": SECRET if (run["seed_source"] == SECRET
                                 and sample_seed_source == SECRET) else CALLER,
        "code_version": code_version(),
        "model_hash": model_hash(run_dir),
    }
    if private and charged:
        split = BudgetSplit.of(charged["epsilon"])
        training_eps = float(meta["epsilon"])
        report |= {
            "epsilon": training_eps + split.row_count + split.release_report,
            "target_epsilon": split.total,
            "delta": float(charged["delta"]),
            "budget": budget_report(split, float(charged["delta"])) | {
                "training_epsilon_accountant": training_eps},
            "accountant": meta.get("accountant"),
            "noise_multiplier": meta.get("noise_multiplier"),
            "sample_rate": meta.get("sample_rate"),
            "steps": meta.get("steps"),
            "expected_batch_size": meta.get("batch_size"),
            "epochs": meta.get("epochs"),
            "max_grad_norm": meta.get("max_grad_norm"),
            "marginals": _marginals_facts(meta),
            # The DP marginals' values (Gaussian mechanism, charged with training): the
            # published quality report compares the synthetic rows with them.
            "dp_marginals": meta.get("marginals"),
            "rows_dp": public_sizes(run_dir)["train"],
            "charge_id": charged["id"],
        }
    else:
        report |= {"epsilon": None, "delta": None, "charge_id": None}
    report |= group_privacy_block(meta)
    report["collapse_warning"] = bool(meta.get("training_report", {}).get("collapse_warning"))
    return report


@_run_step
def sample(run_dir: Path, rows: int | None = None, seed: int | None = None,
           paths: Paths | None = None) -> Path:
    """Sample the candidate table and validate it against the declared schema.

    Sampling is post-processing and costs no budget. By default it draws as many rows as
    the DP count of the training rows (never the exact count) with a seed derived from
    the run's secret one; a caller-given seed makes the candidate unreleasable.
    """
    if rows is not None:
        check_count(rows, "rows", maximum=MAX_SAMPLE_ROWS)
    if seed is not None:
        check_seed(seed)
    run = load_run(run_dir)
    synth = load_model(run_dir, paths)
    rows = rows or public_sizes(run_dir)["train"]
    sample_seed = derived_seed(run, "sample") if seed is None else seed
    table = conform(synth.sample(rows, seed=sample_seed), synth.schema)
    report = validate(table, synth.schema, synthetic=True)
    if not report.success:
        raise ValidationFailed(f"{synth.schema.id} (synthetic)", report)
    out = RunDir(run_dir).candidate
    out.mkdir()
    path = out.synthetic_parquet
    table.to_parquet(path, index=False)
    privacy = privacy_report(run_dir, synth,
                             sample_seed_source=SECRET if seed is None else CALLER)
    out.write_privacy(privacy)
    if synth.schema.path:
        shutil.copyfile(synth.schema.path, out.schema_yaml)
    return path


@_run_step
def ensure_sampled(run_dir: Path, paths: Paths | None = None) -> Path | None:
    """The step evaluate and audit need first: sample the run's candidate table when it has
    none yet, exactly as :func:`sample` with its defaults would (post-processing of the
    trained model: no budget). Returns the new table's path, or ``None`` when the run
    already had one. A run that was never trained cannot be sampled: :class:`RunError`
    names the commands that start one. Holds the run lock from the check to the sample."""
    run = load_run(run_dir)
    directory = RunDir(run_dir)
    if directory.candidate.synthetic_parquet.is_file():
        return None
    if not directory.model.state_pt.is_file():
        dataset = run["dataset"]
        raise RunError(f"{run_dir}: no synthetic table and no trained model yet, so nothing "
                       f"to sample; start a run with `{cli_command()} run {dataset}` (train, "
                       f"sample, evaluate, audit) or `{cli_command()} train {dataset}`")
    return sample(run_dir, paths=paths)


@dataclass(frozen=True)
class ChainedRun:
    """What :func:`run_steps` did: the run directory and each step's result."""

    run_dir: Path
    training: dict[str, Any]  # train's privacy report (+ charge id, DP row count)
    synthetic: Path
    utility: UtilityReport
    audit: dict[str, Any]  # audit's result, with the gate and the DP release report

    @property
    def gate(self) -> dict[str, Any]:
        return dict(self.audit["gate"])


def run_steps(dataset_id: str, run_dir: Path, *, epsilon: float | None = None,
              private: bool = True, seed: int | None = None, max_rows: int | None = None,
              n_shadows: int = 1, policy_path: Path | None = None,
              paths: Paths | None = None, progress: Callable | None = None,
              mapper: Callable | None = None, on_step: Callable[[str], None] | None = None,
              **config: Any) -> ChainedRun:
    """Start a run and do every step, train → sample → evaluate → audit (and gate), as
    the separate steps do with their defaults — the same checks, the same ledger charges
    (train's one charge, which also pays for the first audit's release report), the same
    derived seeds — under the dataset's run lock held throughout. ``on_step(name)`` is
    called as each step begins (the CLI says which step runs).
    """
    # Arguments are checked before anything is read or written (one-line errors).
    check_dataset_id(dataset_id)
    if epsilon is not None:
        check_epsilon(epsilon)
    check_recipe(config)
    check_count(n_shadows, "n_shadows", maximum=MAX_SHADOWS)
    say = on_step or (lambda _: None)
    with run_lock(paths or Paths.default(), dataset_id, by="pipeline.run_steps"):
        say("start")
        start_run(dataset_id, run_dir, seed=seed, max_rows=max_rows, paths=paths)
        say("train")
        training = train(run_dir, epsilon=epsilon, private=private, paths=paths,
                         progress=progress, **config)
        say("sample")
        synthetic = sample(run_dir, paths=paths)
        say("evaluate")
        utility = evaluate(run_dir, paths=paths)
        say("audit")
        result = audit(run_dir, n_shadows=n_shadows, policy_path=policy_path, paths=paths,
                       mapper=mapper)
    return ChainedRun(run_dir, training, synthetic, utility, result)


def synthetic_table(run_dir: Path, schema: DatasetSchema) -> pd.DataFrame:
    """The run's candidate synthetic table, in the declared storage types."""
    path = RunDir(run_dir).candidate.synthetic_parquet
    if not path.is_file():
        raise RunError(f"{run_dir}: no synthetic table yet (run the sample step)")
    return conform(pd.read_parquet(path), schema)


@_run_step
def evaluate(run_dir: Path, seed: int = 0, paths: Paths | None = None) -> UtilityReport:
    """Utility of the candidate: TSTR vs TRTR on the holdout, shapes, pair trends, pMSE.

    ``seed`` drives the evaluation's own classifiers and the synthetic TSTS split, not a
    mechanism: its figures go to ``utility.json`` (the steward's, never published; cards
    carry the DP release report), so a public default is fine here.
    """
    from pulsesynth.utility import evaluate_utility

    data = run_data(run_dir, paths)
    result = evaluate_utility(data.schema, data.train, data.holdout,
                              synthetic_table(run_dir, data.schema), seed=seed)
    RunDir(run_dir).candidate.write_utility(result)
    return result


def code_version() -> str:
    """The code fingerprint (:func:`pulsesynth.runs.code_fingerprint`): version + a hash of
    the package sources, the same value the run cache keys on."""
    from pulsesynth.runs import code_fingerprint

    return code_fingerprint()


def model_hash(run_dir: Path) -> str:
    """SHA-256 of the run's trained synthesizer state (``model/model.pt``)."""
    from pulsesynth.warehouse import file_sha256

    return file_sha256(RunDir(run_dir).model.state_pt)


def _released_rows(run_dir: Path, schema: DatasetSchema,
                   extra_synthetic: list[Path] | None) -> pd.DataFrame:
    synthetic = synthetic_table(run_dir, schema)
    if extra_synthetic:
        synthetic = pd.concat([synthetic] + [conform(pd.read_parquet(p), schema)
                                             for p in extra_synthetic], ignore_index=True)
    return synthetic


def auditor_pool(run_dir: Path, model: Any) -> pd.DataFrame:
    """The auditor's reference rows: a fresh draw from the released model (2 × the DP
    training count, at least 1,000 rows). What anyone holding the release could make, so
    attack rules learnt on it are post-processing of DP outputs; the same rows in every
    process of one audit (seeded from the run)."""
    rows = max(1000, 2 * public_sizes(run_dir)["train"])
    pool = conform(model.sample(rows, seed=derived_seed(load_run(run_dir), "audit-pool")),
                   model.schema)
    return with_fresh_units(pool, model.schema)


def audit_shadow(run_dir: Path, kind: str, index: int, *, seed: int = 0,
                 n_shadows: int = 1, extra_synthetic: list[Path] | None = None,
                 paths: Paths | None = None):
    """Train one shadow of the run's audit (see :func:`audit`'s ``mapper``); it re-reads
    the run's data by reference, so it can run in another process or on another worker."""
    from pulsesynth.audit.report import train_shadow

    data = run_data(run_dir, paths)
    model = load_model(run_dir, paths)
    rows = len(_released_rows(run_dir, data.schema, extra_synthetic))
    return train_shadow(data.schema, model, auditor_pool(run_dir, model), rows, kind, index,
                        seed=seed, n_shadows=n_shadows)


@_run_step
def audit(run_dir: Path, *, seed: int = 0, n_shadows: int = 1,
          extra_synthetic: list[Path] | None = None, policy_path: Path | None = None,
          paths: Paths | None = None, mapper: Callable | None = None) -> dict[str, Any]:
    """Attack the model and its synthetic table, make the DP release report, gate, write.

    The exact attack and distance figures go to ``audit.json`` / ``audit.md`` (sensitive,
    for the steward). The gate decides on public facts and ``release_stats.json`` only —
    noisy statistics charged with the run (:mod:`pulsesynth.audit.release_stats`) — so
    its label is post-processing of DP outputs.
    ``extra_synthetic`` lists other tables already released from the same model: the audit
    covers every row released from it, since more draws make attacks stronger.
    ``mapper(fn, jobs)`` (e.g. a Dask client's map-and-gather) trains the shadow models in
    parallel; each job is ``(run_dir, attack, index)`` — references, not rows.
    """
    from pulsesynth.audit.report import (
        DEFAULT_ATTACKS,
        audit_release,
        collect_shadows,
        shadow_jobs,
        write_report,
    )
    from pulsesynth.gate import DEFAULT_POLICY, evaluate_gate, load_policy

    check_seed(seed)
    check_count(n_shadows, "n_shadows", maximum=MAX_SHADOWS)
    shadows = None
    if mapper is not None:
        jobs = shadow_jobs(n_shadows)
        done = mapper(partial(_shadow_job, seed=seed, n_shadows=n_shadows,
                              extra_synthetic=extra_synthetic, paths=paths),
                      [(str(run_dir), kind, i) for kind, i in jobs])
        shadows = collect_shadows(jobs, list(done))
    data = run_data(run_dir, paths)
    model = load_model(run_dir, paths)
    synthetic = _released_rows(run_dir, data.schema, extra_synthetic)
    pool = auditor_pool(run_dir, model)
    decisions: list[Any] = []
    distance_pool = conform(model.sample(
        min(len(synthetic), 5000), seed=derived_seed(load_run(run_dir), "distance-pool")),
        data.schema)
    result = audit_release(data.schema, model, data.train, data.holdout, pool,
                           synthetic, seed=seed, n_shadows=n_shadows, shadows=shadows,
                           decisions=decisions, distance_pool=distance_pool,
                           real_reference=data.reference)
    result["shadow_training"] = {"jobs": 2 * n_shadows,
                                 "where": "mapped" if mapper is not None else "in-process",
                                 "reference": "fresh draws from the released model"}
    candidate = RunDir(run_dir).candidate
    privacy = candidate.read_privacy()
    # Same key, same noise: so the key names everything that shapes the statistics — the
    # settings, the released tables and the code (its attacks). A re-audit by changed
    # code is a new use of the mechanism (new noise, new charge): with the old noise
    # reused, the difference of two published values would reveal the exact difference
    # of two statistics of the private rows.
    audit_key = hashlib.sha256(json.dumps(
        {"seed": seed, "n_shadows": n_shadows, "code": code_version(),
         "attacks": list(DEFAULT_ATTACKS),
         "extra": [hashlib.sha256(Path(p).read_bytes()).hexdigest()
                   for p in extra_synthetic or []]}, sort_keys=True).encode()).hexdigest()
    stats = release_statistics(run_dir, data, synthetic, decisions, privacy, audit_key,
                               paths=paths)
    candidate.write_release_stats(stats)
    gate = evaluate_gate(load_policy(policy_path or DEFAULT_POLICY), privacy, stats)
    candidate.write_gate(gate.to_dict())
    write_report(result, candidate.path, privacy, gate.to_dict(), stats)
    return result | {"gate": gate.to_dict(), "release_stats": stats}


def release_statistics(run_dir: Path, data: RunData, synthetic: pd.DataFrame,
                       decisions: list[Any], privacy: PrivacyReport, audit_key: str,
                       paths: Paths | None = None) -> ReleaseStats:
    """The run's DP release report (Laplace, the ``release_report`` part of its ε).

    Every distinct audit of a run (``audit_key``: its settings and released tables) is a
    new use of the report mechanism: the first is paid by the run's charge, each further
    one is charged to the ledger on its own (idempotently under the key, so a retry of the
    same audit, which redraws exactly the same noise, is charged once) and draws its own
    noise. A non-private run gets the figures without noise, marked ``private: false``
    (never releasable; the gate blocks it first).
    """
    from pulsesynth.audit.distances import GowerSpace, unique_matches
    from pulsesynth.audit.release_stats import release_report
    from pulsesynth.budget import BudgetSplit
    from pulsesynth.utility import tstr_counts

    run = load_run(run_dir)
    sizes = public_sizes(run_dir)
    # Uniqueness depends on set size (a row of a larger set more often has a duplicate), so
    # the training side is a unit-level keyed-hash subsample of the holdout's expected
    # size; its count is compared over the same share of the DP training count.
    share = min(1.0, run["fractions"]["holdout"] / run["fractions"]["train"])
    train_eq = sample_units(data.train, data.schema, share, salt=_role_salt(run, paths))
    unique = unique_matches(GowerSpace(data.schema), [train_eq, data.holdout], synthetic)
    # A public seed is fine: the classifier learns from the released table only, and its
    # calls on real rows are released with secretly seeded Laplace noise below.
    tstr = tstr_counts(data.schema, synthetic, data.holdout, seed=0)
    charged = recorded_charge(run_dir)
    private = bool(privacy.get("private")) and charged is not None
    eps = (BudgetSplit.of(charged["epsilon"]).release_report
           if private and charged is not None else 1e12)
    charge_id = _charge_report(run_dir, run, audit_key, eps, paths) if private else None
    report = release_report(
        decisions=decisions, unique_reproduced=(unique[0], unique[1]),
        tstr_correct=tstr[0] if tstr else None, class_counts=tstr[1] if tstr else None,
        rows=sizes, k=data.schema.privacy.max_rows_per_unit, epsilon=eps, match_share=share,
        rng=np.random.default_rng(derived_seed(run, f"release-report:{audit_key}")))
    report |= {"private": private, "dataset_id": run["dataset"],
               "classifier": "hist_gb" if tstr else None, "charge_id": charge_id}
    return report


def _charge_report(run_dir: Path, run: dict[str, Any], audit_key: str, epsilon: float,
                   paths: Paths | None) -> int:
    """The ledger charge paying for this audit's release report (see
    :func:`release_statistics`); returns its id."""
    from pulsesynth.governance.ledger import Ledger

    reports = RunDir(run_dir).read_reports()
    if audit_key in reports:
        return int(reports[audit_key])
    charged = recorded_charge(run_dir)
    assert charged is not None
    if not reports:
        charge_id = int(charged["id"])  # the run's charge includes one release report
    else:
        from pulsesynth.governance.ledger import Budget

        schema = Warehouse(paths).schema(run["dataset"])
        ledger = Ledger(paths)
        budget = ledger.budget(run["dataset"], Budget.declared(schema), actor="audit")
        c = ledger.charge(
            run["dataset"], run_id=run["run_id"], snapshot_id=run["snapshot_id"],
            epsilon=epsilon, delta=0.0, accountant="laplace",
            idempotency_key=f"report:{run['dataset']}:{run['run_id']}:{audit_key[:24]}",
            lifetime_epsilon=budget.lifetime_epsilon, actor="audit")
        charge_id = c.id
    reports[audit_key] = charge_id
    RunDir(run_dir).write_reports(reports)
    return charge_id


def _shadow_job(job: tuple[str, str, int], **kwargs: Any):
    run_dir, kind, index = job
    return audit_shadow(Path(run_dir), kind, index, **kwargs)


def model_candidate(run_dir: Path, policy_path: Path | None = None,
                    paths: Paths | None = None) -> Path:
    """Build ``<run_dir>/model_candidate/``: the run's DP-VAE as a ``model`` release.

    Needs an already trained, sampled, evaluated and audited run. Writes the public
    release files (``weights.pt`` + sanitized ``model.json``), the run's privacy report,
    an audit holding only the model membership attack (the attack on the released object
    itself; a model releases no rows, so no distances), the run's TSTR utility, its DP
    release report, the gate evaluated on that report for kind ``model`` (capped at
    confidential; a non-DP model is blocked) and the declared schema. Trains nothing and
    charges nothing: the model was paid for by the run's charge (``privacy.json``'s
    ``charge_id``), and releasing it is post-processing of that DP training.
    """
    import yaml

    from pulsesynth.gate import DEFAULT_POLICY, evaluate_gate, load_policy
    from pulsesynth.release_kinds import MODEL
    from pulsesynth.schema import parse_schema

    run_dir = Path(run_dir)
    candidate = RunDir(run_dir).candidate
    missing = candidate.missing((PRIVACY_JSON, AUDIT_JSON, UTILITY_JSON, RELEASE_STATS_JSON,
                                 SCHEMA_YAML))
    if missing:
        raise RunError(f"{run_dir}: run is not audited and evaluated yet (candidate lacks "
                       f"{', '.join(missing)}); run sample, evaluate and audit first")
    synth = load_model(run_dir, paths)
    privacy = candidate.read_privacy()
    run_audit = candidate.read_audit()
    found = run_audit.get("membership_attacks") or {}
    attacks = {name: found[name] for name in MODEL_ATTACKS if isinstance(found.get(name), dict)}
    if not attacks:
        raise RunError(f"{run_dir}: the run's audit has no white-box attack result "
                       f"({', '.join(MODEL_ATTACKS)})")
    vulnerable = run_audit.get("vulnerable_targets") or {}
    audit: AuditReport = {"dataset": run_audit.get("dataset", synth.schema.id),
                          "kind": MODEL.name,
             "membership_attacks": attacks,
             "vulnerable_targets": {n: vulnerable[n] for n in attacks if n in vulnerable},
             "seed": run_audit.get("seed"), "caveat": run_audit.get("caveat")}
    out = MODEL.candidate_of(RunDir(run_dir))
    out.mkdir()
    if privacy.get("private") is True and synth.metadata.get("private") is True:
        synth.export_release(out.path)
    else:
        # A non-DP model is never exported for release; the candidate is recorded (blocked)
        # with a placeholder so the steward sees why.
        _write_blocked_model_files(out, synth)
    stats = candidate.read_release_stats()
    gate = evaluate_gate(load_policy(policy_path or DEFAULT_POLICY), privacy, stats,
                         kind=MODEL.name)
    out.write_privacy(privacy)
    out.write_audit(audit)
    out.write_release_stats(stats)
    out.write_gate(gate.to_dict())
    shutil.copyfile(candidate.utility_json, out.utility_json)
    declared = candidate.schema_yaml.read_bytes()
    if parse_schema(yaml.safe_load(declared.decode("utf-8"))).hash == synth.schema.hash:
        out.schema_yaml.write_bytes(declared)
    else:  # e.g. a catalogued classification that overrides the file's
        out.schema_yaml.write_text(yaml.safe_dump(synth.schema.raw, sort_keys=False),
                                   encoding="utf-8")
    return out.path


def _write_blocked_model_files(out: CandidateDir, synth: Any) -> None:
    """Stand-in release files for a non-DP model: an empty-tensor state_dict (the real
    weights never leave the run directory) and a config that says it is not private."""
    import torch

    torch.save({"withheld": torch.zeros(0)}, out.weights_pt)
    out.release_config_json.write_text(dump_json({
        "format_version": 1, "kind": "model", "model": "dp-vae", "withheld": True,
        "reason": "non-private (non-DP) model: weights are never exported for release",
        "schema_id": synth.schema.id, "schema_hash": synth.schema.hash,
        "privacy": {"private": False}}), encoding="utf-8")
