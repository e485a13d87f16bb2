"""The one owner of the on-disk layouts that stages hand to each other.

Stages (pipeline steps, Prefect tasks, the classifier command, governance, the portal)
communicate through directories, not objects, so the directories are the real interface.
Every file name in them is spelled here and only here; a test
(``tests/test_artifacts.py``) fails when a literal name reappears elsewhere.

- :class:`RunDir` — ``state/runs/<dataset>/<run_id>/`` (sensitive): ``run.json``,
  ``cache.json``, ``charge.json``, ``sizes.json``, ``reports.json``, ``error.log``, the
  trained synthesizer under ``model/`` (:class:`ModelDir`) and the candidates
  ``candidate/``, ``model_candidate/`` and ``classifier_candidate/``.
- :class:`ModelDir` — a saved synthesizer: ``model.pt`` (its *full training state*, never
  released) and ``metadata.json``.
- :class:`CandidateDir` — a release candidate: ``synthetic.parquet`` (table) or
  ``weights.pt`` + ``model.json`` (classifier, model), and ``privacy.json``,
  ``utility.json``, ``audit.json`` (+ ``audit.md`` and its images), ``gate.json``,
  ``release_stats.json``, ``schema.yaml``.
- :class:`ReleaseDir` — a published version ``published/<catalogue id>/<version>/``:
  the released files plus the data card or model card; :func:`index_json` is the
  catalogue next to them.

``model.pt`` and ``model.json`` are distinct concepts with distinct names here:
:data:`MODEL_STATE_PT` is the sensitive trained state in the run's ``model/``;
:data:`RELEASE_CONFIG_JSON` is the public, value-free config that rebuilds released
weights.

The JSON helpers write exactly the bytes the stages wrote before this module existed
(``json.dumps(data, indent=2, default=str)`` unless a file says otherwise), since
candidate bytes are hashed into release ids and approvals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulsesynth.paths import Paths
from pulsesynth.reports import AuditReport, PrivacyReport, ReleaseStats, UtilityReport

# --- the run directory (state/runs/<dataset>/<run_id>/, sensitive) ------------------------

#: Under ``state/``: one folder per dataset, one run directory per run.
RUNS_DIR = "runs"
#: Dataset, snapshot id, schema hash, the run's seed (the only place it is written).
RUN_JSON = "run.json"
#: The run's content cache key and what it was made from (:mod:`pulsesynth.runs`).
CACHE_JSON = "cache.json"
#: The ledger charge that pays for the run.
CHARGE_JSON = "charge.json"
#: The Laplace counts of the rows in each role.
SIZES_JSON = "sizes.json"
#: The ledger charge paying for each distinct audit's release report.
REPORTS_JSON = "reports.json"
#: Full tracebacks of failed orchestrated steps (the orchestrator sees the type only).
ERROR_LOG = "error.log"
MODEL_DIR = "model"
CANDIDATE_DIR = "candidate"
MODEL_CANDIDATE_DIR = "model_candidate"
CLASSIFIER_CANDIDATE_DIR = "classifier_candidate"

# --- a saved synthesizer (the run's model/; never released) -------------------------------

#: The trained DP-VAE's ``state_dict`` as training left it (sensitive: it can be attacked).
MODEL_STATE_PT = "model.pt"
#: The synthesizer's metadata: config, encoder layout, privacy figures, seeds.
MODEL_METADATA_JSON = "metadata.json"

# --- candidate files ----------------------------------------------------------------------

SYNTHETIC_PARQUET = "synthetic.parquet"
#: Released weights: a plain ``state_dict``, loadable with ``weights_only=True``.
WEIGHTS_PT = "weights.pt"
#: The public, value-free config that rebuilds released weights (never a loss history).
RELEASE_CONFIG_JSON = "model.json"
PRIVACY_JSON = "privacy.json"
UTILITY_JSON = "utility.json"
AUDIT_JSON = "audit.json"
AUDIT_MD = "audit.md"
AUDIT_ROC_PNG = "roc.png"
AUDIT_DCR_PNG = "dcr.png"
GATE_JSON = "gate.json"
RELEASE_STATS_JSON = "release_stats.json"
SCHEMA_YAML = "schema.yaml"

# Order matters: a candidate's content hash (what an approval binds to) walks these
# tuples in order, so reordering them would void every recorded approval.
TABLE_CANDIDATE_FILES = (SYNTHETIC_PARQUET, AUDIT_JSON, GATE_JSON, PRIVACY_JSON,
                         UTILITY_JSON, RELEASE_STATS_JSON, SCHEMA_YAML)
WEIGHTS_CANDIDATE_FILES = (WEIGHTS_PT, RELEASE_CONFIG_JSON, AUDIT_JSON, GATE_JSON,
                           PRIVACY_JSON, UTILITY_JSON, RELEASE_STATS_JSON, SCHEMA_YAML)

# --- a published release directory (published/<catalogue id>/<version>/) ------------------

SYNTHETIC_CSV = "synthetic.csv"
DATACARD_MD = "datacard.md"
DATACARD_JSON = "datacard.json"
MODELCARD_MD = "modelcard.md"
MODELCARD_JSON = "modelcard.json"
PLOTS_DIR = "plots"
#: The catalogue of every published version, in ``published/``.
INDEX_JSON = "index.json"
#: What a classifier or model release copies from its candidate (the model card aside);
#: also exactly what a sampler or a predictor needs.
WEIGHTS_RELEASE_FILES = (WEIGHTS_PT, RELEASE_CONFIG_JSON, SCHEMA_YAML)

#: Every file name this module owns (the test that keeps them here scans for these).
FILE_NAMES = frozenset({
    RUN_JSON, CACHE_JSON, CHARGE_JSON, SIZES_JSON, REPORTS_JSON, ERROR_LOG,
    MODEL_STATE_PT, MODEL_METADATA_JSON,
    SYNTHETIC_PARQUET, WEIGHTS_PT, RELEASE_CONFIG_JSON, PRIVACY_JSON, UTILITY_JSON,
    AUDIT_JSON, AUDIT_MD, AUDIT_ROC_PNG, AUDIT_DCR_PNG, GATE_JSON, RELEASE_STATS_JSON,
    SCHEMA_YAML,
    SYNTHETIC_CSV, DATACARD_MD, DATACARD_JSON, MODELCARD_MD, MODELCARD_JSON, INDEX_JSON,
})
#: Directory names distinctive enough to be found by a scan (``model``, ``candidate``,
#: ``runs`` and ``plots`` are also ordinary words and keys, e.g. a release status).
DISTINCT_DIR_NAMES = frozenset({MODEL_CANDIDATE_DIR, CLASSIFIER_CANDIDATE_DIR})


def dump_json(data: Any) -> str:
    """The text every stage's JSON report is written as (``indent=2``, ``default=str``)."""
    return json.dumps(data, indent=2, default=str)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_json(data), encoding="utf-8")
    return path


def card_json_name(kind: str) -> str:
    """The card a published release of ``kind`` carries: the data card for a table, the
    model card for a classifier or a model (:attr:`ReleaseKind.card_json`)."""
    # Imported here: the registry is built from this module's names.
    from pulsesynth.release_kinds import get_kind

    return get_kind(kind).card_json


def runs_root(paths: Paths, dataset: str) -> Path:
    """``state/runs/<dataset>/``: where the dataset's run directories live."""
    return paths.state / RUNS_DIR / dataset


def index_json(paths: Paths) -> Path:
    """``published/index.json``: the catalogue of published versions."""
    return paths.published / INDEX_JSON


class _Dir:
    """Shared behaviour of the directory wrappers: a ``Path`` in, a ``Path`` out."""

    path: Path

    def __post_init__(self) -> None:
        # Accept ``str`` (Prefect tasks pass run directories as strings).
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return str(self.path)

    def mkdir(self) -> Path:
        """Create the directory (and its parents) when missing; returns its path."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path


@dataclass(frozen=True)
class ModelDir(_Dir):
    """A saved synthesizer (the run's ``model/``): sensitive, never released."""

    path: Path

    @property
    def state_pt(self) -> Path:
        """``model.pt``: the trained network's ``state_dict``."""
        return self.path / MODEL_STATE_PT

    @property
    def metadata_json(self) -> Path:
        """``metadata.json``: config, encoder layout, privacy figures and seeds."""
        return self.path / MODEL_METADATA_JSON


@dataclass(frozen=True)
class CandidateDir(_Dir):
    """A release candidate directory (table, classifier or model kind)."""

    path: Path

    @property
    def synthetic_parquet(self) -> Path:
        """``synthetic.parquet``: the candidate synthetic table (kind ``table``)."""
        return self.path / SYNTHETIC_PARQUET

    @property
    def weights_pt(self) -> Path:
        """``weights.pt``: the released ``state_dict`` (kinds ``classifier``, ``model``)."""
        return self.path / WEIGHTS_PT

    @property
    def release_config_json(self) -> Path:
        """``model.json``: the value-free config that rebuilds :attr:`weights_pt`."""
        return self.path / RELEASE_CONFIG_JSON

    @property
    def privacy_json(self) -> Path:
        """``privacy.json``: public facts and DP figures."""
        return self.path / PRIVACY_JSON

    @property
    def utility_json(self) -> Path:
        """``utility.json``: the steward's exact utility figures."""
        return self.path / UTILITY_JSON

    @property
    def audit_json(self) -> Path:
        """``audit.json``: the steward's exact attack (and distance) figures."""
        return self.path / AUDIT_JSON

    @property
    def audit_md(self) -> Path:
        """``audit.md``: the steward's readable audit report."""
        return self.path / AUDIT_MD

    @property
    def audit_roc_png(self) -> Path:
        """``roc.png``: the audit report's ROC curves."""
        return self.path / AUDIT_ROC_PNG

    @property
    def audit_dcr_png(self) -> Path:
        """``dcr.png``: the audit report's distance-to-closest-record histogram."""
        return self.path / AUDIT_DCR_PNG

    @property
    def gate_json(self) -> Path:
        """``gate.json``: the release gate's label, reason and checks."""
        return self.path / GATE_JSON

    @property
    def release_stats_json(self) -> Path:
        """``release_stats.json``: the DP release report the gate decides on."""
        return self.path / RELEASE_STATS_JSON

    @property
    def schema_yaml(self) -> Path:
        """``schema.yaml``: the public schema declaration."""
        return self.path / SCHEMA_YAML

    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]:
        """The ``names`` that are not regular files here, in the given order."""
        return [n for n in names if not (self.path / n).is_file()]

    def read_privacy(self) -> PrivacyReport:
        """``privacy.json`` (:class:`~pulsesynth.reports.PrivacyReport`)."""
        report: PrivacyReport = _read_json(self.privacy_json)
        return report

    def write_privacy(self, report: PrivacyReport) -> Path:
        """Write ``privacy.json``."""
        return _write_json(self.privacy_json, report)

    def read_utility(self) -> UtilityReport:
        """``utility.json`` (:class:`~pulsesynth.reports.UtilityReport`)."""
        report: UtilityReport = _read_json(self.utility_json)
        return report

    def write_utility(self, report: UtilityReport) -> Path:
        """Write ``utility.json``."""
        return _write_json(self.utility_json, report)

    def read_audit(self) -> AuditReport:
        """``audit.json`` (:class:`~pulsesynth.reports.AuditReport`)."""
        report: AuditReport = _read_json(self.audit_json)
        return report

    def write_audit(self, report: AuditReport) -> Path:
        """Write ``audit.json``."""
        return _write_json(self.audit_json, report)

    def read_gate(self) -> dict[str, Any]:
        """``gate.json`` as a dict."""
        return _read_json(self.gate_json)

    def write_gate(self, decision: Mapping[str, Any]) -> Path:
        """Write ``gate.json``."""
        return _write_json(self.gate_json, decision)

    def read_release_stats(self) -> ReleaseStats:
        """``release_stats.json`` (:class:`~pulsesynth.reports.ReleaseStats`)."""
        report: ReleaseStats = _read_json(self.release_stats_json)
        return report

    def write_release_stats(self, report: ReleaseStats) -> Path:
        """Write ``release_stats.json``."""
        return _write_json(self.release_stats_json, report)

    def read_release_config(self) -> dict[str, Any]:
        """``model.json`` as a dict (its writer, the model's ``export_release``, owns its
        serialisation)."""
        return _read_json(self.release_config_json)


@dataclass(frozen=True)
class RunDir(_Dir):
    """A run directory ``state/runs/<dataset>/<run_id>/`` (sensitive working state)."""

    path: Path

    @classmethod
    def of(cls, paths: Paths, dataset: str, run_id: str) -> RunDir:
        """The run directory of ``run_id`` of ``dataset`` (not created)."""
        return cls(runs_root(paths, dataset) / run_id)

    @property
    def name(self) -> str:
        """The run id (the directory's name)."""
        return self.path.name

    @property
    def run_json(self) -> Path:
        """``run.json``: the run's record, the only place its seed is written."""
        return self.path / RUN_JSON

    @property
    def cache_json(self) -> Path:
        """``cache.json``: the run's content cache key."""
        return self.path / CACHE_JSON

    @property
    def charge_json(self) -> Path:
        """``charge.json``: the ledger charge paying for the run."""
        return self.path / CHARGE_JSON

    @property
    def sizes_json(self) -> Path:
        """``sizes.json``: the DP row counts of each role."""
        return self.path / SIZES_JSON

    @property
    def reports_json(self) -> Path:
        """``reports.json``: the ledger charge of each distinct audit's release report."""
        return self.path / REPORTS_JSON

    @property
    def error_log(self) -> Path:
        """``error.log``: tracebacks of failed orchestrated steps."""
        return self.path / ERROR_LOG

    @property
    def model(self) -> ModelDir:
        """``model/``: the trained synthesizer."""
        return ModelDir(self.path / MODEL_DIR)

    @property
    def candidate(self) -> CandidateDir:
        """``candidate/``: the synthetic-table candidate."""
        return CandidateDir(self.path / CANDIDATE_DIR)

    @property
    def model_candidate(self) -> CandidateDir:
        """``model_candidate/``: the DP-VAE itself as a ``model`` candidate."""
        return CandidateDir(self.path / MODEL_CANDIDATE_DIR)

    @property
    def classifier_candidate(self) -> CandidateDir:
        """``classifier_candidate/``: a DP classifier as a ``classifier`` candidate."""
        return CandidateDir(self.path / CLASSIFIER_CANDIDATE_DIR)

    def read_run(self) -> dict[str, Any]:
        """``run.json`` as a dict."""
        return _read_json(self.run_json)

    def write_run(self, run: Mapping[str, Any]) -> Path:
        """Write ``run.json`` (no ``default=``: every value in it is plain JSON)."""
        self.mkdir()
        self.run_json.write_text(json.dumps(run, indent=2), encoding="utf-8")
        return self.run_json

    def read_cache(self) -> dict[str, Any]:
        """``cache.json`` as a dict."""
        return _read_json(self.cache_json)

    def write_cache(self, record: Mapping[str, Any]) -> Path:
        """Write ``cache.json`` (keys sorted: it is compared and read by people)."""
        self.mkdir()
        self.cache_json.write_text(json.dumps(record, indent=2, sort_keys=True, default=str),
                                   encoding="utf-8")
        return self.cache_json

    def read_charge(self) -> dict[str, Any] | None:
        """``charge.json`` as a dict, or ``None`` before the run is charged."""
        return _read_json(self.charge_json) if self.charge_json.is_file() else None

    def write_charge(self, record: Mapping[str, Any]) -> Path:
        """Write ``charge.json``."""
        return _write_json(self.charge_json, record)

    def read_sizes(self) -> dict[str, Any]:
        """``sizes.json`` as a dict."""
        return _read_json(self.sizes_json)

    def write_sizes(self, record: Mapping[str, Any]) -> Path:
        """Write ``sizes.json``."""
        return _write_json(self.sizes_json, record)

    def read_reports(self) -> dict[str, Any]:
        """``reports.json`` as a dict (empty before the first audit)."""
        return _read_json(self.reports_json) if self.reports_json.is_file() else {}

    def write_reports(self, reports: Mapping[str, Any]) -> Path:
        """Write ``reports.json``."""
        return _write_json(self.reports_json, reports)


@dataclass(frozen=True)
class ReleaseDir(_Dir):
    """A published version directory ``published/<catalogue id>/<version>/``."""

    path: Path

    @property
    def synthetic_parquet(self) -> Path:
        """``synthetic.parquet``: the released table (kind ``table``)."""
        return self.path / SYNTHETIC_PARQUET

    @property
    def synthetic_csv(self) -> Path:
        """``synthetic.csv``: the released table as CSV (kind ``table``)."""
        return self.path / SYNTHETIC_CSV

    @property
    def plots(self) -> Path:
        """``plots/``: the data card's column plots (kind ``table``)."""
        return self.path / PLOTS_DIR

    @property
    def datacard_md(self) -> Path:
        """``datacard.md``: the readable data card (kind ``table``)."""
        return self.path / DATACARD_MD

    @property
    def datacard_json(self) -> Path:
        """``datacard.json``: the data card (kind ``table``)."""
        return self.path / DATACARD_JSON

    @property
    def weights_pt(self) -> Path:
        """``weights.pt``: the released ``state_dict`` (kinds ``classifier``, ``model``)."""
        return self.path / WEIGHTS_PT

    @property
    def release_config_json(self) -> Path:
        """``model.json``: the config that rebuilds :attr:`weights_pt`."""
        return self.path / RELEASE_CONFIG_JSON

    @property
    def schema_yaml(self) -> Path:
        """``schema.yaml``: the public schema declaration."""
        return self.path / SCHEMA_YAML

    @property
    def modelcard_md(self) -> Path:
        """``modelcard.md``: the readable model card (kinds ``classifier``, ``model``)."""
        return self.path / MODELCARD_MD

    @property
    def modelcard_json(self) -> Path:
        """``modelcard.json``: the model card (kinds ``classifier``, ``model``)."""
        return self.path / MODELCARD_JSON

    def card_json(self, kind: str) -> Path:
        """The card of a release of ``kind`` (:func:`card_json_name`)."""
        return self.path / card_json_name(kind)

    def read_release_config(self) -> dict[str, Any]:
        """``model.json`` as a dict."""
        return _read_json(self.release_config_json)
