"""Run bookkeeping for an orchestrator: content cache keys, reusable runs, run summaries.

A run is cached on its *content*, never on frames: the key is the SHA-256 of

- the snapshot id (SHA-256 of the warehouse's Parquet file),
- the declared schema's hash,
- the synthesizer/run configuration hash (ε, epochs, seeds, row limit, shadows, ...),
- the code version (``pulsesynth.__version__``).

``record_key`` writes ``cache.json`` into a run directory once the run has started;
``find_run`` finds the newest run directory holding a key (complete or not), so a nightly
run on unchanged data reuses the finished run (no training, no ledger charge) and a run
that failed half-way is resumed in the same directory under the same ledger idempotency
key (a retried charge is recorded once). ``summarize`` reads a run directory's reports and
returns only aggregates: ε, δ, gate label/reason, attack accuracies, TSTR/TRTR accuracy
(no value from the real table ever appears here).

No Prefect here: ``tasks/`` and ``flows/`` call these functions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pulsesynth
from pulsesynth.paths import Paths

CACHE_FILE = "cache.json"
CODE_VERSION = pulsesynth.__version__
#: The classifier whose TSTR/TRTR accuracy the summary reports.
SUMMARY_CLASSIFIER = "hist_gb"


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of a configuration dict in canonical JSON (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key(snapshot_id: str, schema_hash: str, config_digest: str,
              code_version: str = CODE_VERSION) -> str:
    """The content cache key of a run: (snapshot, schema, config, code version)."""
    parts = [snapshot_id, schema_hash, config_digest, code_version]
    if not all(parts):
        raise ValueError("a cache key needs snapshot id, schema hash, config hash and version")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def idempotency_key(dataset: str, key: str) -> str:
    """The ledger idempotency key for training ``dataset`` under cache ``key``."""
    return f"train:{dataset}:{key}"


def record_key(run_dir: Path, key: str, components: dict[str, Any]) -> Path:
    """Write ``cache.json`` (the key and what it was made from) into a run directory."""
    path = Path(run_dir) / CACHE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, **components}, indent=2, sort_keys=True,
                               default=str), encoding="utf-8")
    return path


def run_key(run_dir: Path) -> str | None:
    path = Path(run_dir) / CACHE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("key")
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(run_dir: Path) -> bool:
    """A finished run: model saved and every candidate report written."""
    run_dir = Path(run_dir)
    candidate = run_dir / "candidate"
    needed = [run_dir / "model" / "model.pt", candidate / "synthetic.parquet",
              candidate / "privacy.json", candidate / "utility.json",
              candidate / "audit.json", candidate / "gate.json"]
    return all(p.is_file() for p in needed)


def run_dirs(paths: Paths, dataset: str) -> list[Path]:
    """A dataset's run directories, newest first (run ids start with a UTC timestamp)."""
    base = paths.state / "runs" / dataset
    if not base.is_dir():
        return []
    return sorted((d for d in base.iterdir() if d.is_dir() and (d / "run.json").is_file()),
                  key=lambda d: d.name, reverse=True)


def find_run(paths: Paths, dataset: str, key: str,
             complete: bool | None = None) -> Path | None:
    """The newest run directory of ``dataset`` recorded under ``key``.

    ``complete=True`` only finished runs, ``False`` only unfinished ones, ``None`` either.
    """
    for run_dir in run_dirs(paths, dataset):
        if run_key(run_dir) != key:
            continue
        if complete is None or is_complete(run_dir) == complete:
            return run_dir
    return None


def find_reusable_run(paths: Paths, dataset: str, key: str) -> Path | None:
    """The newest *finished* run under ``key``: reuse it instead of training again."""
    return find_run(paths, dataset, key, complete=True)


def latest_complete_run(paths: Paths, dataset: str, snapshot_id: str) -> Path | None:
    """The newest finished run on ``snapshot_id`` whatever its configuration (used when the
    refresh policy forbids retraining but a model of this very snapshot exists)."""
    for run_dir in run_dirs(paths, dataset):
        if not is_complete(run_dir):
            continue
        try:
            run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if run.get("snapshot_id") == snapshot_id:
            return run_dir
    return None


def planned_privacy(run_dir: Path, epsilon: float | None = None,
                    delta: float | None = None, paths: Paths | None = None) -> dict[str, Any]:
    """The (ε, δ) a training run will target, known *before* training (to charge the ledger).

    δ is the schema's (or the argument), else 1/(10·n) with n the training rows after the
    per-unit cap — exactly what the trainer uses. Returns counts only, never row values.
    """
    from pulsesynth.pipeline import run_data
    from pulsesynth.splits import cap_rows_per_unit
    from pulsesynth.synth.train import default_delta

    data = run_data(Path(run_dir), paths)
    schema = data.schema
    eps = float(schema.privacy.epsilon if epsilon is None else epsilon)
    n = len(cap_rows_per_unit(data.train, schema, schema.privacy.max_rows_per_unit))
    if delta is None:
        delta = schema.privacy.delta
    if delta is None:
        delta = default_delta(n)
    return {"epsilon": eps, "delta": float(delta), "train_rows": n,
            "lifetime_epsilon": float(schema.privacy.lifetime_epsilon),
            "refresh_days": float(schema.privacy.refresh_days)}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def summarize(run_dir: Path) -> dict[str, Any]:
    """Aggregates of a run for reports and Prefect artifacts (no real values, no rows)."""
    run_dir = Path(run_dir)
    candidate = run_dir / "candidate"
    run = _read(run_dir / "run.json")
    privacy = _read(candidate / "privacy.json")
    gate = _read(candidate / "gate.json")
    audit = _read(candidate / "audit.json")
    utility = _read(candidate / "utility.json")
    attacks = audit.get("membership_attacks") or {}

    def accuracy(name: str) -> float | None:
        value = (attacks.get(name) or {}).get("accuracy")
        return None if value is None else round(float(value), 4)

    def util(kind: str) -> float | None:
        value = ((utility.get(kind) or {}).get(SUMMARY_CLASSIFIER) or {}).get("accuracy")
        return None if value is None else round(float(value), 4)

    label = gate.get("label")
    return {
        "run_id": run_dir.name,
        "run_dir": str(run_dir),
        "rows": run.get("max_rows") and min(run["max_rows"], run.get("source_rows") or 0)
        or run.get("source_rows"),
        "train_rows": privacy.get("train_rows"),
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "label": label,
        "reason": gate.get("reason"),
        "model_mia_accuracy": accuracy("model_mia"),
        "synthetic_mia_accuracy": accuracy("synthetic_mia"),
        "tstr_accuracy": util("tstr"),
        "trtr_accuracy": util("trtr"),
        "classifier": SUMMARY_CLASSIFIER,
    }
