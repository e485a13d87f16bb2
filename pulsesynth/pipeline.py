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
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
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


def audit(run_dir: Path, *, seed: int = 0, n_shadows: int = 1,
          extra_synthetic: list[Path] | None = None, policy_path: Path | None = None,
          paths: Paths | None = None) -> dict[str, Any]:
    """Attack the model and its synthetic table, gate the result, write the reports.

    ``extra_synthetic`` lists other tables already released from the same model: the audit
    covers every row released from it, since more draws make attacks stronger.
    """
    from pulsesynth.audit.report import audit_release, write_report
    from pulsesynth.gate import DEFAULT_POLICY, evaluate_gate, load_policy

    data = run_data(run_dir, paths)
    model = load_model(run_dir, paths)
    synthetic = synthetic_table(run_dir, data.schema)
    if extra_synthetic:
        synthetic = pd.concat([synthetic] + [conform(pd.read_parquet(p), data.schema)
                                             for p in extra_synthetic], ignore_index=True)
    result = audit_release(data.schema, model, data.train, data.holdout, data.reference,
                           synthetic, seed=seed, n_shadows=n_shadows)
    candidate = Path(run_dir) / CANDIDATE_DIR
    privacy = json.loads((candidate / "privacy.json").read_text(encoding="utf-8"))
    gate = evaluate_gate(load_policy(policy_path or DEFAULT_POLICY), privacy, result)
    _write_json(candidate / "gate.json", gate.to_dict())
    write_report(result, candidate, privacy, gate.to_dict())
    return result | {"gate": gate.to_dict()}
