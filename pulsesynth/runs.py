"""Run bookkeeping for an orchestrator: content cache keys, reusable runs, run summaries.

A run is cached on its *content*, never on frames: the key is the SHA-256 of

- the snapshot id (SHA-256 of the warehouse's Parquet file),
- the declared schema's hash,
- the synthesizer/run configuration hash (ε, epochs, seeds, row limit, shadows, ...),
- the code fingerprint: a SHA-256 of the package's own source files, so a change to the
  audit, the gate or the synthesizer re-runs instead of reusing a stale result.

``record_key`` writes ``cache.json`` into a run directory once the run has started;
``find_run`` finds the newest run directory holding a key (complete or not), so a nightly
run on unchanged data reuses the finished run (no training, no ledger charge) and a run
that failed half-way is resumed in the same directory under the same ledger idempotency
key (a retried charge is recorded once). ``summarize`` reads a run directory's reports and
returns public facts and DP figures only: ε, δ, the DP row count, the gate's label and
reason, the DP release report's attack advantage and TSTR accuracy (what an orchestrator
may show; the exact audit stays in the run directory for the steward).

The run policy lives here too, as plain functions returning typed decisions, so the
nightly flow, the CLI and the tests share one implementation: :func:`plan_run` (a new,
reusable or resumable run under the content key → :class:`RunPlan`) and
:func:`decide_retrain` (train, resume, forced retrain, reuse or skip under the ledger's
refresh policy → :class:`RetrainDecision`), both tagged with an :class:`Outcome`.

One run per dataset at a time: :func:`run_lock` (an ``flock`` under ``state/locks/``,
released when its holder exits or is killed) is taken by the nightly subflow for the whole
run and by every run-writing step of :mod:`pulsesynth.pipeline` (so by the CLI), re-entrant
for its holder; a second run of the dataset gets :class:`RunLocked` (``skipped: another run
holds the lock``).

No Prefect here: ``tasks/`` and ``flows/`` call these functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import pulsesynth
from pulsesynth.artifacts import CandidateDir, RunDir, runs_root
from pulsesynth.fitness import verdict
from pulsesynth.governance.locks import LOCK_HELD as LOCK_HELD  # re-exported
from pulsesynth.governance.locks import RunLocked as RunLocked
from pulsesynth.governance.locks import run_lock as run_lock
from pulsesynth.paths import Paths


def code_fingerprint(root: Path | None = None) -> str:
    """``<version>+src.<sha256[:16]>`` over every source file of the package at ``root``
    (default: the installed one), path and bytes in sorted order: it changes with the
    code, whatever git says, so a fix to the audit or the gate invalidates cached runs."""
    return _fingerprint(Path(root or Path(pulsesynth.__file__).resolve().parent))


@lru_cache(maxsize=4)
def _fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".html", ".css", ".yaml", ".json"):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return f"{pulsesynth.__version__}+src.{digest.hexdigest()[:16]}"


CODE_VERSION = code_fingerprint()


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
    return RunDir(run_dir).write_cache({"key": key, **components})


def run_key(run_dir: Path) -> str | None:
    """The cache key recorded in a run directory, or ``None`` (none, or unreadable)."""
    run = RunDir(run_dir)
    if not run.cache_json.is_file():
        return None
    try:
        return run.read_cache().get("key")
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(run_dir: Path) -> bool:
    """A finished run: model saved and every candidate report written."""
    run = RunDir(run_dir)
    candidate = run.candidate
    needed = [run.model.state_pt, candidate.synthetic_parquet, candidate.privacy_json,
              candidate.utility_json, candidate.audit_json, candidate.release_stats_json,
              candidate.gate_json]
    return all(p.is_file() for p in needed)


def run_dirs(paths: Paths, dataset: str) -> list[Path]:
    """A dataset's run directories, newest first (run ids start with a UTC timestamp)."""
    base = runs_root(paths, dataset)
    if not base.is_dir():
        return []
    return sorted((d for d in base.iterdir() if d.is_dir() and RunDir(d).run_json.is_file()),
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
            run = RunDir(run_dir).read_run()
        except (OSError, json.JSONDecodeError):
            continue
        if run.get("snapshot_id") == snapshot_id:
            return run_dir
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def summarize(run_dir: Path) -> dict[str, Any]:
    """Public and DP figures of a run for reports and Prefect artifacts (no exact audit or
    utility figure, no exact row count)."""
    run_dir = Path(run_dir)
    candidate = RunDir(run_dir).candidate
    privacy = _read(candidate.privacy_json)
    gate = _read(candidate.gate_json)
    report = _read(candidate.release_stats_json)
    stats = report.get("statistics") or {}

    def dp(name: str) -> float | None:
        value = (stats.get(name) or {}).get("value")
        return None if value is None else round(float(value), 3)

    return {
        "run_id": run_dir.name,
        "run_dir": str(run_dir),
        "rows": privacy.get("rows_dp"),
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "label": gate.get("label"),
        "reason": gate.get("reason"),
        "attack_advantage_dp": dp("max_attack_advantage"),
        "tstr_accuracy_dp": dp("tstr_accuracy"),
        "majority_accuracy_dp": dp("majority_accuracy"),
        "fit_for_purpose": verdict(report, _target(candidate))["verdict"],
    }


def _target(candidate: CandidateDir) -> str | None:
    import yaml

    try:
        declared = yaml.safe_load(candidate.schema_yaml.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return declared.get("target") if isinstance(declared, dict) else None


# --- run policy -------------------------------------------------------------------------


class Outcome(StrEnum):
    """What the run policy decided for one dataset.

    :func:`plan_run` answers ``NEW``, ``REUSE`` or ``RESUME``; :func:`decide_retrain`
    answers ``TRAIN``, ``RESUME``, ``FORCED_RETRAIN``, ``REUSE`` or ``SKIP``.
    """

    #: No run under this content key: a fresh run directory.
    NEW = "new"
    #: A finished run to reuse: no training, nothing charged.
    REUSE = "reuse"
    #: An unfinished run (plan) or a ledger charge (decide) under this key: continue it in
    #: the same directory; the idempotent charge is not repeated.
    RESUME = "resume"
    #: The refresh policy allows a retrain (first run, or changed snapshot and due).
    TRAIN = "train"
    #: The refresh policy says no, but the caller forced a (charged) retrain.
    FORCED_RETRAIN = "forced-retrain"
    #: The refresh policy says no and no finished run of this snapshot exists.
    SKIP = "skip"


@dataclass(frozen=True)
class RunPlan:
    """Where a dataset's run goes under its content cache key, and why."""

    dataset: str
    key: str
    snapshot_id: str
    schema_hash: str
    config_hash: str
    code_version: str
    run_dir: Path
    outcome: Outcome
    lifetime_epsilon: float
    refresh_days: float

    @property
    def reuse(self) -> bool:
        """A finished run under this key exists: reuse it."""
        return self.outcome is Outcome.REUSE

    @property
    def resume(self) -> bool:
        """An unfinished run under this key exists: continue it."""
        return self.outcome is Outcome.RESUME

    def as_dict(self) -> dict[str, Any]:
        """The plan as the ``plan-run`` task returns it (strings and numbers only)."""
        return {"dataset": self.dataset, "key": self.key, "snapshot_id": self.snapshot_id,
                "schema_hash": self.schema_hash, "config_hash": self.config_hash,
                "code_version": self.code_version, "run_dir": str(self.run_dir),
                "reuse": self.reuse, "resume": self.resume,
                "lifetime_epsilon": self.lifetime_epsilon,
                "refresh_days": self.refresh_days}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunPlan:
        """Rebuild a plan from :meth:`as_dict`'s output (what flows pass between tasks)."""
        outcome = (Outcome.REUSE if data["reuse"] else
                   Outcome.RESUME if data["resume"] else Outcome.NEW)
        return cls(dataset=data["dataset"], key=data["key"],
                   snapshot_id=data["snapshot_id"], schema_hash=data["schema_hash"],
                   config_hash=data["config_hash"], code_version=data["code_version"],
                   run_dir=Path(data["run_dir"]), outcome=outcome,
                   lifetime_epsilon=data["lifetime_epsilon"],
                   refresh_days=data["refresh_days"])


def plan_for_key(paths: Paths, dataset: str, *, snapshot_id: str, schema_hash: str,
                 config_digest: str, lifetime_epsilon: float, refresh_days: float,
                 code_version: str = CODE_VERSION,
                 run_dir: Path | None = None) -> RunPlan:
    """The plan for a run on known content: reuse the newest finished run under the key,
    else resume the newest unfinished one, else a new run directory (``run_dir`` when
    given, a fresh timestamped one otherwise; not created)."""
    key = cache_key(snapshot_id, schema_hash, config_digest, code_version)
    reusable = find_reusable_run(paths, dataset, key)
    resumable = None if reusable else find_run(paths, dataset, key, complete=False)
    if reusable is not None:
        outcome, chosen = Outcome.REUSE, reusable
    elif resumable is not None:
        outcome, chosen = Outcome.RESUME, resumable
    else:
        outcome, chosen = Outcome.NEW, run_dir or _new_run_dir(paths, dataset)
    return RunPlan(dataset=dataset, key=key, snapshot_id=snapshot_id,
                   schema_hash=schema_hash, config_hash=config_digest,
                   code_version=code_version, run_dir=Path(chosen), outcome=outcome,
                   lifetime_epsilon=lifetime_epsilon, refresh_days=refresh_days)


def _new_run_dir(paths: Paths, dataset: str) -> Path:
    # Imported here: the pipeline pulls in the data stack, which planning a reuse never needs.
    from pulsesynth.pipeline import new_run_dir

    return new_run_dir(paths, dataset)


def plan_run(paths: Paths, dataset: str, config: Mapping[str, Any], *,
             code_version: str = CODE_VERSION) -> RunPlan:
    """Plan a run of a catalogued dataset: the content cache key from the stored table's
    hash (no rows read), the schema's hash, the run ``config`` and the code version, then
    :func:`plan_for_key`."""
    from pulsesynth.warehouse import Warehouse, file_sha256

    wh = Warehouse(paths)
    entry = wh.entry(dataset)
    return plan_for_key(paths, dataset,
                        snapshot_id=file_sha256(paths.resolve(entry["table_path"])),
                        schema_hash=wh.schema(dataset).hash,
                        config_digest=config_hash(dict(config)),
                        lifetime_epsilon=entry["lifetime_epsilon"],
                        refresh_days=entry["refresh_days"], code_version=code_version)


@dataclass(frozen=True)
class RetrainDecision:
    """Whether a started run trains, and why; ``run_dir`` is the run to reuse."""

    outcome: Outcome
    reason: str
    run_dir: Path | None = None

    @property
    def action(self) -> str:
        """``train``, ``reuse`` or ``skip``: what the flow does next (resume and forced
        retrain both train)."""
        if self.outcome in (Outcome.TRAIN, Outcome.RESUME, Outcome.FORCED_RETRAIN):
            return "train"
        return self.outcome.value

    def as_dict(self) -> dict[str, Any]:
        """The decision as the ``decide-retrain`` task returns it."""
        out: dict[str, Any] = {"action": self.action}
        if self.run_dir is not None:
            out["run_dir"] = str(self.run_dir)
        return out | {"reason": self.reason}


def decide_retrain(paths: Paths, plan: RunPlan, *, force: bool = False,
                   now: datetime | None = None) -> RetrainDecision:
    """Train, resume (a charge under this key exists), reuse a model of this snapshot, or
    skip, following the ledger's refresh policy; ``force`` retrains (charged) where the
    policy would reuse or skip."""
    from pulsesynth.governance.ledger import Ledger

    ledger = Ledger(paths)
    dataset = plan.dataset
    charge_key = idempotency_key(dataset, plan.key)
    if any(c.idempotency_key == charge_key for c in ledger.charges(dataset)):
        return RetrainDecision(Outcome.RESUME, f"{dataset}: resuming a run already charged "
                                               "under this key (the charge is not repeated)")
    policy = ledger.should_retrain(dataset, plan.snapshot_id, plan.refresh_days, now=now)
    if policy.retrain:
        return RetrainDecision(Outcome.TRAIN, policy.reason)
    if force:
        return RetrainDecision(Outcome.FORCED_RETRAIN, f"{policy.reason}; retraining forced "
                                                       "(charged, within the lifetime budget)")
    previous = latest_complete_run(paths, dataset, plan.snapshot_id)
    if previous is not None:
        return RetrainDecision(Outcome.REUSE, policy.reason, run_dir=previous)
    return RetrainDecision(Outcome.SKIP, policy.reason)
