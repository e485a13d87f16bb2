"""One synthesis run, step by step, passing only ids and paths between steps.

Each step reads what it needs from the warehouse (by dataset id and the run's recorded
snapshot id) and from the run directory, and writes its outputs there, so an orchestrator
(Prefect tasks in ``tasks/``) moves references, never frames of real rows.

A run directory ``state/runs/<dataset>/<run_id>/`` (git-ignored, sensitive) holds:

- ``run.json``      dataset, snapshot id, schema hash, split seed and fractions, row limit
- ``model/``        the trained synthesizer (sensitive: a model can be attacked)
- ``candidate/``    what may be released after approval: ``synthetic.parquet``,
                    ``privacy.json``, ``utility.json``, ``audit.json``, ``audit.md`` (+ plots),
                    ``gate.json``, ``schema.yaml`` (public declaration)
- ``model_candidate/`` (optional, :func:`model_candidate`) the DP-VAE itself as a ``model``
                    release candidate: ``weights.pt``, ``model.json``, ``audit.json`` (the
                    model MIA only), ``gate.json`` (kind ``model``: at most confidential),
                    ``privacy.json``, ``utility.json``, ``schema.yaml``
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pulsesynth.errors import PulseSynthError, ValidationFailed
from pulsesynth.frames import conform
from pulsesynth.paths import Paths
from pulsesynth.schema import DatasetSchema
from pulsesynth.splits import DEFAULT_FRACTIONS, split_by_unit
from pulsesynth.validation import validate
from pulsesynth.warehouse import Warehouse

RUN_FILE = "run.json"
MODEL_DIR = "model"
CANDIDATE_DIR = "candidate"
MODEL_CANDIDATE_DIR = "model_candidate"
#: The audit result that covers releasing the model itself (white-box ELBO attack).
MODEL_ATTACK = "model_mia"
SYNTHETIC_FILE = "synthetic.parquet"


class RunError(PulseSynthError):
    """A run directory is missing, inconsistent, or its source changed."""


@dataclass(frozen=True)
class RunData:
    """The three data roles of a run, rebuilt from the warehouse and the recorded seed."""

    schema: DatasetSchema
    train: pd.DataFrame
    holdout: pd.DataFrame
    reference: pd.DataFrame


def new_run_dir(paths: Paths, dataset_id: str, run_id: str | None = None) -> Path:
    run_id = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    return paths.state / "runs" / dataset_id / run_id


def start_run(dataset_id: str, run_dir: Path, *, split_seed: int = 0,
              max_rows: int | None = None, paths: Paths | None = None) -> dict[str, Any]:
    """Pull the snapshot, validate the source, record the split; nothing is trained yet."""
    wh = Warehouse(paths)
    snap = wh.pull(dataset_id)
    report = validate(snap.frame, snap.schema)
    if not report.success:
        raise ValidationFailed(dataset_id, report)
    run = {
        "dataset": dataset_id,
        "run_id": run_dir.name,
        "snapshot_id": snap.snapshot_id,
        "schema_hash": snap.schema.hash,
        "split_seed": split_seed,
        "fractions": DEFAULT_FRACTIONS,
        "max_rows": max_rows,
        "source_rows": len(snap.frame),
        "validation": report.to_dict(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_FILE).write_text(json.dumps(run, indent=2), encoding="utf-8")
    return run


def load_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run directory (no {RUN_FILE})")
    return json.loads(path.read_text(encoding="utf-8"))


def run_data(run_dir: Path, paths: Paths | None = None) -> RunData:
    """Re-pull the run's snapshot and rebuild its train/holdout/reference split."""
    run = load_run(run_dir)
    wh = Warehouse(paths)
    snap = wh.pull(run["dataset"])
    if snap.snapshot_id != run["snapshot_id"]:
        raise RunError(
            f"{run['dataset']}: the warehouse table changed since run {run['run_id']} "
            f"(snapshot {run['snapshot_id'][:12]} → {snap.snapshot_id[:12]}); start a new run"
        )
    frame = snap.frame
    if run.get("max_rows") and len(frame) > run["max_rows"]:
        keep = np.sort(np.random.default_rng(run["split_seed"]).choice(
            len(frame), run["max_rows"], replace=False))
        frame = frame.iloc[keep]
    parts = split_by_unit(frame, snap.schema, run["fractions"], seed=run["split_seed"])
    return RunData(snap.schema, parts["train"], parts["holdout"], parts["reference"])


def train(run_dir: Path, *, epsilon: float | None = None, private: bool = True,
          seed: int = 0, paths: Paths | None = None, progress=None,
          **config: Any) -> dict[str, Any]:
    """Fit the DP-VAE on the run's training rows and save it under ``model/``."""
    from pulsesynth.synth import DPVAESynthesizer

    run = load_run(run_dir)
    data = run_data(run_dir, paths)
    synth = DPVAESynthesizer(data.schema, epsilon=epsilon, private=private, seed=seed,
                             progress=progress, **config)
    synth.fit(data.train, snapshot_id=run["snapshot_id"])
    synth.metadata["dataset_id"] = run["dataset"]
    synth.save(Path(run_dir) / MODEL_DIR)
    return synth.privacy_report


def load_model(run_dir: Path, paths: Paths | None = None):
    from pulsesynth.synth import DPVAESynthesizer

    schema = Warehouse(paths).schema(load_run(run_dir)["dataset"])
    return DPVAESynthesizer.load(Path(run_dir) / MODEL_DIR, schema)


def sample(run_dir: Path, rows: int | None = None, seed: int = 0,
           paths: Paths | None = None) -> Path:
    """Sample the candidate table (default: as many rows as were trained) and validate it
    against the declared schema; sampling is post-processing and costs no budget."""
    synth = load_model(run_dir, paths)
    rows = rows or int(synth.metadata.get("train_rows") or 1000)
    table = conform(synth.sample(rows, seed=seed), synth.schema)
    report = validate(table, synth.schema, synthetic=True)
    if not report.success:
        raise ValidationFailed(f"{synth.schema.id} (synthetic)", report)
    out = Path(run_dir) / CANDIDATE_DIR
    out.mkdir(parents=True, exist_ok=True)
    path = out / SYNTHETIC_FILE
    table.to_parquet(path, index=False)
    privacy = dict(synth.privacy_report) | {"model_hash": model_hash(run_dir),
                                            "code_version": code_version()}
    (out / "privacy.json").write_text(json.dumps(privacy, indent=2, default=str),
                                      encoding="utf-8")
    if synth.schema.path:
        shutil.copyfile(synth.schema.path, out / "schema.yaml")
    return path


def synthetic_table(run_dir: Path, schema: DatasetSchema) -> pd.DataFrame:
    path = Path(run_dir) / CANDIDATE_DIR / SYNTHETIC_FILE
    if not path.is_file():
        raise RunError(f"{run_dir}: no synthetic table yet (run the sample step)")
    return conform(pd.read_parquet(path), schema)


def evaluate(run_dir: Path, seed: int = 0, paths: Paths | None = None) -> dict[str, Any]:
    """Utility of the candidate: TSTR vs TRTR on the holdout, shapes, pair trends, pMSE."""
    from pulsesynth.utility import evaluate_utility

    data = run_data(run_dir, paths)
    result = evaluate_utility(data.schema, data.train, data.holdout,
                              synthetic_table(run_dir, data.schema), seed=seed)
    _write_json(Path(run_dir) / CANDIDATE_DIR / "utility.json", result)
    return result


def code_version() -> str:
    """The package version plus the git commit when run from a checkout."""
    import subprocess

    from pulsesynth import __version__

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+git.{commit}" if commit else __version__


def model_hash(run_dir: Path) -> str:
    from pulsesynth.warehouse import file_sha256

    return file_sha256(Path(run_dir) / MODEL_DIR / "model.pt")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def _released_rows(run_dir: Path, schema: DatasetSchema,
                   extra_synthetic: list[Path] | None) -> pd.DataFrame:
    synthetic = synthetic_table(run_dir, schema)
    if extra_synthetic:
        synthetic = pd.concat([synthetic] + [conform(pd.read_parquet(p), schema)
                                             for p in extra_synthetic], ignore_index=True)
    return synthetic


def audit_shadow(run_dir: Path, attack: str, index: int, *, seed: int = 0,
                 n_shadows: int = 1, extra_synthetic: list[Path] | None = None,
                 paths: Paths | None = None):
    """Train one shadow of the run's audit (see :func:`audit`'s ``mapper``); it re-reads
    the run's data by reference, so it can run in another process or on another worker."""
    from pulsesynth.audit.report import train_shadow

    data = run_data(run_dir, paths)
    rows = len(_released_rows(run_dir, data.schema, extra_synthetic))
    return train_shadow(data.schema, load_model(run_dir, paths), data.train, data.reference,
                        rows, attack, index, seed=seed, n_shadows=n_shadows)


def audit(run_dir: Path, *, seed: int = 0, n_shadows: int = 1,
          extra_synthetic: list[Path] | None = None, policy_path: Path | None = None,
          paths: Paths | None = None, mapper: Callable | None = None) -> dict[str, Any]:
    """Attack the model and its synthetic table, gate the result, write the reports.

    ``extra_synthetic`` lists other tables already released from the same model: the audit
    covers every row released from it, since more draws make attacks stronger.
    ``mapper(fn, jobs)`` (e.g. a Dask client's map-and-gather) trains the shadow models in
    parallel; each job is ``(run_dir, attack, index)`` — references, not rows.
    """
    from pulsesynth.audit.report import audit_release, shadow_jobs, write_report
    from pulsesynth.gate import DEFAULT_POLICY, evaluate_gate, load_policy

    shadows = None
    if mapper is not None:
        jobs = shadow_jobs(n_shadows)
        done = mapper(partial(_shadow_job, seed=seed, n_shadows=n_shadows,
                              extra_synthetic=extra_synthetic, paths=paths),
                      [(str(run_dir), attack, i) for attack, i in jobs])
        shadows = {}
        for (attack, _), result in zip(jobs, done, strict=True):
            shadows.setdefault(attack, []).append(result)
    data = run_data(run_dir, paths)
    model = load_model(run_dir, paths)
    synthetic = _released_rows(run_dir, data.schema, extra_synthetic)
    result = audit_release(data.schema, model, data.train, data.holdout, data.reference,
                           synthetic, seed=seed, n_shadows=n_shadows, shadows=shadows)
    result["shadow_training"] = {"jobs": 2 * n_shadows,
                                 "where": "mapped" if mapper is not None else "in-process"}
    candidate = Path(run_dir) / CANDIDATE_DIR
    privacy = json.loads((candidate / "privacy.json").read_text(encoding="utf-8"))
    gate = evaluate_gate(load_policy(policy_path or DEFAULT_POLICY), privacy, result)
    _write_json(candidate / "gate.json", gate.to_dict())
    write_report(result, candidate, privacy, gate.to_dict())
    return result | {"gate": gate.to_dict()}


def _shadow_job(job: tuple[str, str, int], **kwargs: Any):
    run_dir, attack, index = job
    return audit_shadow(Path(run_dir), attack, index, **kwargs)


def model_candidate(run_dir: Path, policy_path: Path | None = None,
                    paths: Paths | None = None) -> Path:
    """Build ``<run_dir>/model_candidate/``: the run's DP-VAE as a ``model`` release.

    Needs an already trained, sampled, evaluated and audited run. Writes the public
    release files (``weights.pt`` + sanitized ``model.json``), the run's privacy report,
    an audit holding only the model membership attack (the attack on the released object
    itself; a model releases no rows, so no distances), the run's TSTR utility, the gate
    evaluated for kind ``model`` (capped at confidential; a non-DP model is blocked) and
    the declared schema. Trains nothing and charges nothing.
    """
    import yaml

    from pulsesynth.gate import DEFAULT_POLICY, evaluate_gate, load_policy
    from pulsesynth.schema import parse_schema

    run_dir = Path(run_dir)
    candidate = run_dir / CANDIDATE_DIR
    needed = ("privacy.json", "audit.json", "utility.json", "schema.yaml")
    missing = [n for n in needed if not (candidate / n).is_file()]
    if missing:
        raise RunError(f"{run_dir}: run is not audited and evaluated yet (candidate lacks "
                       f"{', '.join(missing)}); run sample, evaluate and audit first")
    synth = load_model(run_dir, paths)
    privacy = json.loads((candidate / "privacy.json").read_text(encoding="utf-8"))
    run_audit = json.loads((candidate / "audit.json").read_text(encoding="utf-8"))
    attack = (run_audit.get("membership_attacks") or {}).get(MODEL_ATTACK)
    if not isinstance(attack, dict):
        raise RunError(f"{run_dir}: the run's audit has no {MODEL_ATTACK} result")
    audit = {"dataset": run_audit.get("dataset", synth.schema.id), "kind": "model",
             "membership_attacks": {MODEL_ATTACK: attack},
             "seed": run_audit.get("seed"), "caveat": run_audit.get("caveat")}
    out = run_dir / MODEL_CANDIDATE_DIR
    out.mkdir(parents=True, exist_ok=True)
    if privacy.get("private") is True and synth.metadata.get("private") is True:
        synth.export_release(out)
    else:
        # A non-DP model is never exported for release; the candidate is recorded (blocked)
        # with a placeholder so the steward sees why.
        _write_blocked_model_files(out, synth)
    gate = evaluate_gate(load_policy(policy_path or DEFAULT_POLICY), privacy, audit,
                         kind="model")
    _write_json(out / "privacy.json", privacy)
    _write_json(out / "audit.json", audit)
    _write_json(out / "gate.json", gate.to_dict())
    shutil.copyfile(candidate / "utility.json", out / "utility.json")
    declared = (candidate / "schema.yaml").read_bytes()
    if parse_schema(yaml.safe_load(declared.decode("utf-8"))).hash == synth.schema.hash:
        (out / "schema.yaml").write_bytes(declared)
    else:  # e.g. a catalogued classification that overrides the file's
        (out / "schema.yaml").write_text(yaml.safe_dump(synth.schema.raw, sort_keys=False),
                                         encoding="utf-8")
    return out


def _write_blocked_model_files(out: Path, synth: Any) -> None:
    """Stand-in release files for a non-DP model: an empty-tensor state_dict (the real
    weights never leave the run directory) and a config that says it is not private."""
    import torch

    torch.save({"withheld": torch.zeros(0)}, out / "weights.pt")
    _write_json(out / "model.json", {
        "format_version": 1, "kind": "model", "model": "dp-vae", "withheld": True,
        "reason": "non-private (non-DP) model: weights are never exported for release",
        "schema_id": synth.schema.id, "schema_hash": synth.schema.hash,
        "privacy": {"private": False}})
