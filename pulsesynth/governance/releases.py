"""Release candidates, steward decisions and atomic publication.

A release has a **kind** (white paper mechanisms 3, 1 and 2): ``table`` — a synthetic
table; ``classifier`` — a DP-trained classifier's weights; ``model`` — the DP-VAE itself
(at most ``confidential``). A candidate is a directory the pipeline writes:

- table: ``synthetic.parquet``, ``audit.json``, ``gate.json``, ``privacy.json``,
  ``utility.json``, ``schema.yaml``;
- classifier and model: ``weights.pt`` (a torch ``state_dict``, loadable with
  ``weights_only=True``), ``model.json`` (value-free config: architecture, encoder layout,
  schema id and hash, target, privacy report — never a loss history), ``audit.json``
  (``membership_attacks`` only), ``gate.json``, ``privacy.json``, ``utility.json``,
  ``schema.yaml``.

Its id is the SHA-256 of the kind's primary file (the synthetic table, or the weights),
the audit report's bytes and the gate's label (and the kind, for the new kinds), so the
same content always has the same id. An approval records a second hash over *every* candidate
file; publication re-reads the files once, re-hashes exactly those bytes and refuses if
either hash moved — what is published is what the steward approved.

Status flow::

    candidate ─approve→ approved ─publish→ published ─(newer version)→ superseded
        └─reject→ rejected           └─reject→ rejected      └─withdraw→ withdrawn
    blocked (gate failed or non-DP): terminal, never approvable

Each kind has its own catalogue id and version sequence: ``<dataset>`` for tables,
``<dataset>_classifier`` and ``<dataset>_model`` for the others.
Publication builds ``published/.tmp-*/`` and renames it to
``published/<catalogue id>/<version>/``;
``published/index.json`` is rewritten through a temporary file and ``os.replace``. A crash at
any point leaves either the old or the new state; a rerun adopts a version directory whose
rename happened but whose database update did not.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pulsesynth.artifacts import (
    AUDIT_JSON,
    GATE_JSON,
    PRIVACY_JSON,
    RELEASE_CONFIG_JSON,
    RELEASE_STATS_JSON,
    SCHEMA_YAML,
    WEIGHTS_PT,
    CandidateDir,
    ReleaseDir,
    index_json,
)
from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.errors import (
    CandidateError,
    PublishError,
    ReleaseNotFound,
    ReleaseStateError,
    TamperedCandidate,
)
from pulsesynth.labels import BLOCKED, RELEASE_LABELS, more_open_than
from pulsesynth.paths import Paths
from pulsesynth.release_kinds import (  # KINDS: re-exported by pulsesynth.governance
    KINDS,  # noqa: F401
    ReleaseKind,
    UnknownReleaseKind,
    get_kind,
)

#: Keys that must never appear in a published ``model.json``: the training trajectory (a
#: per-epoch loss is a statistic of the real rows), the training report around it, and
#: the training seed (with it anyone could regenerate the DP noise and the Poisson batches,
#: which voids the guarantee).
FORBIDDEN_MODEL_KEYS = frozenset({"history", "training_report", "loss", "losses",
                                  "loss_history", "epoch_losses", "first_loss", "final_loss",
                                  "seed", "split_seed"})
_VERSION = re.compile(r"^v([1-9][0-9]*)$")

# Test hook: called with the stage name ("before_rename", "after_rename",
# "before_index") during publication; a test raises from it to simulate a crash.
fault_hook: Callable[[str], None] = lambda stage: None  # noqa: E731


@dataclass(frozen=True)
class Release:
    """One row of ``releases``."""

    candidate_id: str
    dataset: str
    version: str | None
    model_id: str
    title: str
    label: str
    gate: dict[str, Any]
    status: str
    candidate_dir: str
    created_at: str
    published_dir: str | None
    published_at: str | None
    kind: str = "table"

    @property
    def catalogue_id(self) -> str:
        """The portal id: ``<dataset>`` for tables, ``<dataset>_<kind>`` otherwise."""
        return catalogue_id(self.dataset, self.kind)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"catalogue_id": self.catalogue_id}


def catalogue_id(dataset: str, kind: str = "table") -> str:
    """``<dataset>`` for tables, ``<dataset>_classifier`` / ``<dataset>_model`` otherwise."""
    return _check_kind(kind).catalogue_id(dataset)


def _check_kind(kind: str) -> ReleaseKind:
    """The registered kind, or :class:`CandidateError` (what callers here catch)."""
    try:
        return get_kind(kind)
    except UnknownReleaseKind as exc:
        raise CandidateError(str(exc)) from None


# --- hashing --------------------------------------------------------------------------------


def read_candidate(candidate_dir: Path, kind: str = "table") -> dict[str, bytes]:
    """Read every candidate file once (the bytes that get hashed are the bytes published)."""
    names = _check_kind(kind).candidate_files
    candidate_dir = Path(candidate_dir)
    if not candidate_dir.is_dir():
        raise CandidateError(f"{candidate_dir}: candidate directory not found")
    missing = CandidateDir(candidate_dir).missing(names)
    if missing:
        raise CandidateError(f"{candidate_dir}: {kind} candidate lacks {', '.join(missing)}")
    out = {}
    for name in names:
        path = candidate_dir / name
        if path.is_symlink():
            raise CandidateError(f"{path}: candidate files must not be symlinks")
        out[name] = path.read_bytes()
    return out


def candidate_id_of(files: dict[str, bytes], label: str, kind: str = "table") -> str:
    """SHA-256 over the primary file's bytes (synthetic table, or weights) + the DP release
    report's bytes + label, and the kind for kinds other than ``table`` (length-prefixed).

    Only DP outputs enter, so the id may be published; the exact audit (a statistic of
    the real rows) is covered by the approval's content hash, which stays internal."""
    spec = _check_kind(kind)
    parts = [files[spec.primary_file], files[RELEASE_STATS_JSON], label.encode()]
    if not spec.predates_kinds:  # table ids are unchanged from before kinds existed
        parts.append(kind.encode())
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def content_hash(files: dict[str, bytes], kind: str = "table") -> str:
    """SHA-256 over every candidate file (name and bytes): what an approval binds to."""
    names = _check_kind(kind).candidate_files
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "big"))
        digest.update(files[name])
    return digest.hexdigest()


def _json(files: dict[str, bytes], name: str, where: Path) -> dict[str, Any]:
    try:
        data = json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CandidateError(f"{where / name}: not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise CandidateError(f"{where / name}: expected a JSON object")
    return data


# --- registration and decisions ------------------------------------------------------------


def register_candidate(paths: Paths, dataset: str, candidate_dir: Path, model_id: str,
                       title: str | None = None, *, kind: str = "table",
                       actor: str = "pipeline", now: datetime | None = None) -> Release:
    """Record a candidate of release ``kind``; a blocked gate or a non-private model
    registers as ``blocked``.

    Idempotent: registering the same content again returns the existing release. A
    classifier or model candidate must carry loadable weights and a value-free
    ``model.json`` bound to its ``schema.yaml``; a label above the kind's cap (a model is
    at most ``confidential``) is refused.
    """
    spec = _check_kind(kind)
    candidate_dir = Path(candidate_dir).resolve()
    files = read_candidate(candidate_dir, kind)
    gate = _json(files, GATE_JSON, candidate_dir)
    privacy = _json(files, PRIVACY_JSON, candidate_dir)
    label = str(gate.get("label", BLOCKED))
    if gate.get("kind", kind) != kind:
        raise CandidateError(f"{candidate_dir / GATE_JSON}: the gate was evaluated for kind "
                             f"{gate.get('kind')!r}, not {kind!r}")
    cap = spec.hard_max_label
    if cap is not None and label in RELEASE_LABELS and more_open_than(label, cap):
        raise CandidateError(f"{candidate_dir}: a {kind} release is allowed at most at the "
                             f"{cap} label, but its gate says {label}; re-run the gate with "
                             f"kind={kind}")
    if spec.ships_weights:
        _check_model_candidate(files, kind, candidate_dir)
    if privacy.get("private") is True:
        _check_private_candidate(paths, dataset, privacy,
                                 _json(files, RELEASE_STATS_JSON, candidate_dir), candidate_dir)
    if not title:
        try:
            declared = yaml.safe_load(files[SCHEMA_YAML].decode("utf-8")) or {}
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CandidateError(f"{candidate_dir / SCHEMA_YAML}: unreadable") from exc
        title = str(declared.get("title") or dataset) if isinstance(declared, dict) else None
    cid = candidate_id_of(files, label, kind)
    cat_id = catalogue_id(dataset, kind)
    status = "candidate"
    if label not in RELEASE_LABELS or privacy.get("private") is not True:
        status = "blocked"
    with open_db(paths) as conn, transaction(conn):
        row = conn.execute("SELECT * FROM releases WHERE candidate_id = ?", (cid,)).fetchone()
        if row is not None:
            return _release(row)
        for other in conn.execute("SELECT DISTINCT dataset, kind FROM releases"):
            if (catalogue_id(other["dataset"], other["kind"]) == cat_id
                    and (other["dataset"], other["kind"]) != (dataset, kind)):
                raise CandidateError(
                    f"{dataset} ({kind}): catalogue id {cat_id} is already used by the "
                    f"{other['kind']} releases of {other['dataset']}")
        conn.execute(
            "INSERT INTO releases (candidate_id, dataset, version, model_id, title, label, "
            "gate_json, status, candidate_dir, created_at, kind) "
            "VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, dataset, model_id, title or dataset, label, json.dumps(gate, sort_keys=True),
             status, paths.relative(candidate_dir), now_iso(now), kind))
        log_event(conn, actor, "release.register", cid,
                  {"dataset": dataset, "kind": kind, "label": label, "status": status,
                   "model_id": model_id, "reason": gate.get("reason", "")}, now)
        return _release(conn.execute("SELECT * FROM releases WHERE candidate_id = ?",
                                     (cid,)).fetchone())


def _check_private_candidate(paths: Paths, dataset: str, privacy: dict[str, Any],
                             stats: dict[str, Any], where: Path) -> None:
    """A private candidate must be replay-proof and paid for: trained and sampled with
    fresh secret randomness, and its training and release report charged to the ledger
    (the charges exist, belong to this dataset and cover the reported ε)."""
    from pulsesynth.governance.ledger import Ledger
    from pulsesynth.randomness import SECRET

    if privacy.get("randomness") != SECRET:
        raise CandidateError(
            f"{where}: trained or sampled with a caller-given seed (randomness: "
            f"{privacy.get('randomness')!r}); anyone who knows the seed can replay it, so it "
            "is never releasable — train without --seed")
    charges = {c.id: c for c in Ledger(paths).charges(dataset)}
    charge = charges.get(privacy.get("charge_id"))  # type: ignore[arg-type]
    if charge is None:
        raise CandidateError(f"{where}: no ledger charge of {dataset} backs this candidate "
                             f"(charge_id {privacy.get('charge_id')!r}); train through the "
                             "pipeline, which charges the ledger first")
    eps = privacy.get("epsilon")
    if not isinstance(eps, (int, float)) or eps > charge.epsilon * (1 + 1e-9):
        raise CandidateError(f"{where}: reported ε {eps!r} exceeds the ε charged to the "
                             f"ledger ({charge.epsilon:g}, charge {charge.id})")
    if stats.get("charge_id") not in charges:
        raise CandidateError(f"{where}: the release report is not backed by a ledger charge "
                             f"of {dataset}")


def get_release(paths: Paths, candidate_id: str) -> Release:
    """A release by full id or unique prefix (at least 6 characters)."""
    with open_db(paths) as conn:
        return _release(_find(conn, candidate_id))


def list_releases(paths: Paths, dataset: str | None = None,
                  status: str | None = None, kind: str | None = None) -> list[Release]:
    """Releases, newest first, optionally of one dataset, status and/or kind."""
    sql = "SELECT * FROM releases WHERE 1=1"
    args: list[str] = []
    if dataset:
        sql, args = sql + " AND dataset = ?", [*args, dataset]
    if status:
        sql, args = sql + " AND status = ?", [*args, status]
    if kind:
        _check_kind(kind)
        sql, args = sql + " AND kind = ?", [*args, kind]
    with open_db(paths) as conn:
        return [_release(r) for r in conn.execute(sql + " ORDER BY created_at DESC, rowid DESC",
                                                  args)]


def approvals(paths: Paths, candidate_id: str) -> list[dict[str, Any]]:
    """Every decision recorded on a release, oldest first."""
    with open_db(paths) as conn:
        cid = _find(conn, candidate_id)["candidate_id"]
        return [dict(r) for r in conn.execute(
            "SELECT * FROM approvals WHERE candidate_id = ? ORDER BY id", (cid,))]


def approve(paths: Paths, candidate_id: str, steward: str, role: str = "data steward",
            note: str = "", *, now: datetime | None = None) -> Release:
    """Approve a candidate, binding the approval to the hash of its files right now."""
    _need(steward, "steward")
    with open_db(paths) as conn, transaction(conn):
        rel = _release(_find(conn, candidate_id))
        if rel.status == "blocked":
            raise ReleaseStateError(
                f"{rel.dataset} {rel.candidate_id[:12]}: blocked by the gate "
                f"({rel.gate.get('reason') or 'no releasable label'}); it cannot be approved")
        if rel.status != "candidate":
            raise ReleaseStateError(f"{rel.dataset} {rel.candidate_id[:12]}: status is "
                                    f"{rel.status}; only a candidate can be approved")
        files = read_candidate(paths.resolve(rel.candidate_dir), rel.kind)
        if candidate_id_of(files, rel.label, rel.kind) != rel.candidate_id:
            raise TamperedCandidate(f"{rel.dataset} {rel.candidate_id[:12]}: the candidate's "
                                    "files changed since registration; register it again")
        _decide(conn, rel, "approved", steward, role, note, content_hash(files, rel.kind), now)
        return _release(_find(conn, rel.candidate_id))


def reject(paths: Paths, candidate_id: str, steward: str, note: str,
           role: str = "data steward", *, now: datetime | None = None) -> Release:
    """Reject a candidate or an approved (not yet published) release; a note is required."""
    _need(steward, "steward")
    _need(note, "note (say why it is rejected)")
    with open_db(paths) as conn, transaction(conn):
        rel = _release(_find(conn, candidate_id))
        if rel.status not in ("candidate", "approved", "blocked"):
            raise ReleaseStateError(f"{rel.dataset} {rel.candidate_id[:12]}: status is "
                                    f"{rel.status}; withdraw a published release instead")
        _decide(conn, rel, "rejected", steward, role, note, "", now)
        return _release(_find(conn, rel.candidate_id))


def withdraw(paths: Paths, candidate_id: str, steward: str, note: str,
             role: str = "data steward", *, now: datetime | None = None) -> Release:
    """Withdraw an approved, published or superseded release: it leaves the portal's index
    and its directory moves out of ``published/`` (to ``state/withdrawn/``)."""
    _need(steward, "steward")
    _need(note, "note (say why it is withdrawn)")
    with open_db(paths) as conn, transaction(conn):
        rel = _release(_find(conn, candidate_id))
        if rel.status not in ("approved", "published", "superseded"):
            raise ReleaseStateError(f"{rel.dataset} {rel.candidate_id[:12]}: status is "
                                    f"{rel.status}; only approved or published releases can be "
                                    "withdrawn")
        _decide(conn, rel, "withdrawn", steward, role, note, "", now)
        moved = None
        if rel.published_dir:
            src = paths.resolve(rel.published_dir)
            if src.is_dir():
                dest = paths.state / "withdrawn" / rel.catalogue_id / (
                    f"{rel.version}-{uuid.uuid4().hex[:8]}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                moved = dest
        # Drop it from the index before moving the files: the portal never lists a
        # directory that is gone.
        write_index(paths, conn)
    if moved is not None:
        shutil.move(str(paths.resolve(rel.published_dir or "")), str(moved))
    return get_release(paths, rel.candidate_id)


def _decide(conn: Any, rel: Release, decision: str, steward: str, role: str, note: str,
            chash: str, now: datetime | None) -> None:
    at = now_iso(now)
    conn.execute("INSERT INTO approvals (candidate_id, steward, role, decision, note, "
                 "decided_at, candidate_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (rel.candidate_id, steward, role, decision, note, at, chash))
    conn.execute("UPDATE releases SET status = ? WHERE candidate_id = ?",
                 (decision, rel.candidate_id))
    log_event(conn, steward, f"release.{decision}", rel.candidate_id,
              {"dataset": rel.dataset, "kind": rel.kind, "from": rel.status, "to": decision,
               "role": role, "note": note, "candidate_hash": chash, "version": rel.version},
              now)


# --- publication ---------------------------------------------------------------------------


def publish_approved(paths: Paths, *, actor: str = "publisher",
                     now: datetime | None = None) -> list[Release]:
    """Publish every approved candidate (oldest approval first); returns what was published.

    Raises :class:`TamperedCandidate` for a candidate whose files changed since approval
    (after publishing the others); the index is rewritten in every case.
    """
    paths.published.mkdir(parents=True, exist_ok=True)
    published: list[Release] = []
    failures: list[Exception] = []
    with _publish_lock(paths):
        _clean_temp(paths)
        for rel in list_releases(paths, status="approved")[::-1]:
            try:
                published.append(_publish_one(paths, rel, _builder(rel.kind), actor, now))
            except (TamperedCandidate, CandidateError) as exc:
                failures.append(exc)
                with open_db(paths) as conn, transaction(conn):
                    log_event(conn, actor, "release.publish_refused", rel.candidate_id,
                              {"dataset": rel.dataset, "kind": rel.kind, "error": str(exc)},
                              now)
        fault_hook("before_index")
        with open_db(paths) as conn:
            write_index(paths, conn)
    if failures:
        raise failures[0] if len(failures) == 1 else PublishError(
            "; ".join(str(f) for f in failures))
    return published


def _builder(kind: str) -> Callable[..., Any]:
    """The function that writes a release directory of this kind."""
    return _check_kind(kind).card_builder()


def _publish_one(paths: Paths, rel: Release, build: Callable[..., Any], actor: str,
                 now: datetime | None) -> Release:
    with open_db(paths) as conn:
        approval = conn.execute(
            "SELECT * FROM approvals WHERE candidate_id = ? AND decision = 'approved' "
            "ORDER BY id DESC LIMIT 1", (rel.candidate_id,)).fetchone()
    if approval is None:
        raise ReleaseStateError(f"{rel.dataset} {rel.candidate_id[:12]}: no approval recorded")
    files = read_candidate(paths.resolve(rel.candidate_dir), rel.kind)
    if (candidate_id_of(files, rel.label, rel.kind) != rel.candidate_id
            or content_hash(files, rel.kind) != approval["candidate_hash"]):
        raise TamperedCandidate(
            f"{rel.dataset} {rel.candidate_id[:12]}: the candidate's files changed after "
            f"{approval['steward']} approved them on {approval['decided_at']}; the approval "
            "no longer counts — re-register and approve the new candidate")
    dataset_dir = paths.published / rel.catalogue_id
    dataset_dir.mkdir(parents=True, exist_ok=True)
    version = _adoptable_version(dataset_dir, rel.candidate_id)
    if version is None:
        version = f"v{_next_version_number(paths, rel.dataset, rel.kind, dataset_dir)}"
        tmp = paths.published / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            build(tmp, files, rel, dict(approval), version, paths)
            fault_hook("before_rename")
            os.rename(tmp, dataset_dir / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    fault_hook("after_rename")
    target = dataset_dir / version
    with open_db(paths) as conn, transaction(conn):
        old = conn.execute("SELECT candidate_id, version FROM releases WHERE dataset = ? AND "
                           "kind = ? AND status = 'published'",
                           (rel.dataset, rel.kind)).fetchall()
        for o in old:
            conn.execute("UPDATE releases SET status = 'superseded' WHERE candidate_id = ?",
                         (o["candidate_id"],))
            log_event(conn, actor, "release.supersede", o["candidate_id"],
                      {"dataset": rel.dataset, "kind": rel.kind, "version": o["version"],
                       "by": version}, now)
        conn.execute("UPDATE releases SET status = 'published', version = ?, published_dir = ?, "
                     "published_at = ? WHERE candidate_id = ? AND status = 'approved'",
                     (version, paths.relative(target), now_iso(now), rel.candidate_id))
        log_event(conn, actor, "release.publish", rel.candidate_id,
                  {"dataset": rel.dataset, "kind": rel.kind, "catalogue_id": rel.catalogue_id,
                   "version": version, "label": rel.label,
                   "candidate_hash": approval["candidate_hash"]}, now)
        return _release(_find(conn, rel.candidate_id))


def _adoptable_version(dataset_dir: Path, candidate_id: str) -> str | None:
    """A version directory already renamed into place for this candidate (crash recovery)."""
    for child in sorted(dataset_dir.iterdir()):
        if not _VERSION.match(child.name) or child.is_symlink():
            continue
        version_dir = ReleaseDir(child)
        for card in (version_dir.datacard_json, version_dir.modelcard_json):
            if not card.is_file():
                continue
            try:
                if json.loads(card.read_text("utf-8")).get("candidate_id") == candidate_id:
                    return child.name
            except (OSError, json.JSONDecodeError):
                continue
    return None


def _next_version_number(paths: Paths, dataset: str, kind: str, dataset_dir: Path) -> int:
    numbers = [int(m.group(1)) for c in dataset_dir.iterdir() if (m := _VERSION.match(c.name))]
    with open_db(paths) as conn:
        for row in conn.execute("SELECT version FROM releases WHERE dataset = ? AND kind = ? "
                                "AND version IS NOT NULL", (dataset, kind)):
            if m := _VERSION.match(row["version"]):
                numbers.append(int(m.group(1)))
    return max(numbers, default=0) + 1


@contextmanager
def _publish_lock(paths: Paths) -> Iterator[None]:
    """One publisher at a time (a second waits): temp-dir cleanup must not race a build."""
    lock_path = paths.warehouse / "publish.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _clean_temp(paths: Paths) -> None:
    """Remove half-built temporary directories left by a crash (never listed or served)."""
    for child in paths.published.glob(".tmp-*"):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# --- the catalogue -------------------------------------------------------------------------


def index_entries(paths: Paths, conn: Any) -> list[dict[str, Any]]:
    """One DCAT-style entry per published or superseded version (withdrawn never)."""
    entries = []
    rows = conn.execute("SELECT * FROM releases WHERE status IN ('published', 'superseded') "
                        "ORDER BY dataset, kind, published_at, version").fetchall()
    for row in rows:
        rel = _release(row)
        cat_id = rel.catalogue_id
        version_dir = ReleaseDir(paths.published / cat_id / (rel.version or ""))
        card_path = version_dir.card_json(rel.kind)
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text("utf-8"))
        entries.append({
            "id": cat_id,
            "dataset": rel.dataset,
            "kind": rel.kind,
            "identifier": f"{cat_id}/{rel.version}",
            "type": "dcat:Dataset",
            "title": card.get("title") or rel.title,
            "description": card.get("description", ""),
            "label": rel.label,
            "label_text": card.get("label_text", ""),
            "version": rel.version,
            "status": rel.status,
            "epsilon": card.get("privacy", {}).get("epsilon"),
            "delta": card.get("privacy", {}).get("delta"),
            "issued": rel.published_at,
            "candidate_id": rel.candidate_id,
            "path": f"{cat_id}/{rel.version}",
            "files": [*card.get("files", []), _file_entry(card_path, cat_id,
                                                           rel.version or "")],
        })
    return entries


def write_index(paths: Paths, conn: Any) -> Path:
    """Rewrite ``published/index.json`` atomically (temporary file, fsync, ``os.replace``)."""
    paths.published.mkdir(parents=True, exist_ok=True)
    catalogue = {
        "@context": "https://www.w3.org/ns/dcat",
        "type": "dcat:Catalog",
        "title": "Pulse Synth — synthetic open portal",
        "description": "Differentially private synthetic copies of the city's shared tables.",
        "modified": now_iso(),
        "dataset": index_entries(paths, conn),
    }
    target = index_json(paths)
    tmp = paths.published / f".tmp-index-{uuid.uuid4().hex}.json"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(catalogue, fh, indent=2, sort_keys=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


# --- helpers -------------------------------------------------------------------------------


def _find(conn: Any, candidate_id: str) -> Any:
    cid = (candidate_id or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,64}", cid):
        raise ReleaseNotFound(f"{candidate_id!r}: not a release id (6 to 64 hex characters)")
    rows = conn.execute("SELECT * FROM releases WHERE candidate_id LIKE ? LIMIT 2",
                        (cid + "%",)).fetchall()
    if not rows:
        raise ReleaseNotFound(f"{candidate_id}: no such release")
    if len(rows) > 1:
        raise ReleaseNotFound(f"{candidate_id}: ambiguous prefix; give more characters")
    return rows[0]


def _release(row: Any) -> Release:
    return Release(row["candidate_id"], row["dataset"], row["version"], row["model_id"],
                   row["title"], row["label"], json.loads(row["gate_json"]), row["status"],
                   row["candidate_dir"], row["created_at"], row["published_dir"],
                   row["published_at"], row["kind"])


def _check_model_candidate(files: dict[str, bytes], kind: str, where: Path) -> None:
    """A classifier/model candidate: value-free ``model.json`` of this kind, bound to the
    candidate's schema, weights that load as a plain ``state_dict``, an audit without
    row distances."""
    from pulsesynth.schema import parse_schema

    meta = _json(files, RELEASE_CONFIG_JSON, where)
    if meta.get("kind") != kind:
        raise CandidateError(f"{where / RELEASE_CONFIG_JSON}: kind is {meta.get('kind')!r}, "
                             f"expected {kind!r}")
    leaked = sorted(_forbidden_keys(meta))
    if leaked:
        raise CandidateError(f"{where / RELEASE_CONFIG_JSON}: must not carry the training "
                             f"history, statistics of the real rows or the training seed "
                             f"(found {', '.join(leaked)})")
    try:
        declared = yaml.safe_load(files[SCHEMA_YAML].decode("utf-8"))
        schema_hash = parse_schema(declared).hash
    except Exception as exc:  # SchemaError, YAMLError, UnicodeDecodeError
        raise CandidateError(f"{where / SCHEMA_YAML}: not a valid declared schema "
                             f"({exc.__class__.__name__})") from exc
    if meta.get("schema_hash") != schema_hash:
        raise CandidateError(f"{where / RELEASE_CONFIG_JSON}: schema hash "
                             f"{str(meta.get('schema_hash'))[:12]} does not match {SCHEMA_YAML} "
                             f"({schema_hash[:12]})")
    audit = _json(files, AUDIT_JSON, where)
    if "distances" in audit:
        raise CandidateError(f"{where / AUDIT_JSON}: a {kind} release holds no rows; its "
                             "audit carries membership attacks only (no distances)")
    _check_weights(files[WEIGHTS_PT], where / WEIGHTS_PT)


def _forbidden_keys(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k) in FORBIDDEN_MODEL_KEYS:
                found.add(str(k))
            found |= _forbidden_keys(v)
    elif isinstance(value, list):
        for v in value:
            found |= _forbidden_keys(v)
    return found


def _check_weights(data: bytes, where: Path) -> None:
    """The weights must load with ``torch.load(weights_only=True)`` as name → tensor."""
    import io

    import torch

    try:
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # pickle with code, truncated file, not a torch file
        raise CandidateError(f"{where}: not a weights-only torch state_dict "
                             f"({exc.__class__.__name__})") from exc
    if (not isinstance(state, dict) or not state
            or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                       for k, v in state.items())):
        raise CandidateError(f"{where}: expected a state_dict (parameter name → tensor)")


def _file_entry(path: Path, dataset: str, version: str) -> dict[str, Any]:
    data = path.read_bytes()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "mediaType": "application/json", "downloadURL": f"/datasets/{dataset}/{version}/"
            f"files/{path.name}"}


def _need(value: str, what: str) -> None:
    if not value or not value.strip():
        raise ReleaseStateError(f"a {what} is required")
