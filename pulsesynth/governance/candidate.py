"""Release candidates: the format of a candidate directory, its ids, and registration.

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
same content always has the same id. An approval records a second hash over *every*
candidate file (:func:`content_hash`); publication re-reads the files once, re-hashes
exactly those bytes and refuses if either hash moved — what is published is what the
steward approved.
"""

from __future__ import annotations

import hashlib
import json
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
)
from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.errors import CandidateError
from pulsesynth.governance.record import Release, catalogue_id, check_kind, release_of
from pulsesynth.labels import BLOCKED, RELEASE_LABELS, more_open_than
from pulsesynth.paths import Paths
from pulsesynth.release_kinds import TABLE

#: Keys that must never appear in a published ``model.json``: the training trajectory (a
#: per-epoch loss is a statistic of the real rows), the training report around it, and
#: the training seed (with it anyone could regenerate the DP noise and the Poisson batches,
#: which voids the guarantee).
FORBIDDEN_MODEL_KEYS = frozenset({"history", "training_report", "loss", "losses",
                                  "loss_history", "epoch_losses", "first_loss", "final_loss",
                                  "seed", "split_seed"})


# --- format and hashing --------------------------------------------------------------------


def read_candidate(candidate_dir: Path, kind: str = TABLE.name) -> dict[str, bytes]:
    """Read every candidate file once (the bytes that get hashed are the bytes published)."""
    names = check_kind(kind).candidate_files
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


def candidate_id_of(files: dict[str, bytes], label: str, kind: str = TABLE.name) -> str:
    """SHA-256 over the primary file's bytes (synthetic table, or weights) + the DP release
    report's bytes + label, and the kind for kinds other than ``table`` (length-prefixed).

    Only DP outputs enter, so the id may be published; the exact audit (a statistic of
    the real rows) is covered by the approval's content hash, which stays internal."""
    spec = check_kind(kind)
    parts = [files[spec.primary_file], files[RELEASE_STATS_JSON], label.encode()]
    if not spec.predates_kinds:  # table ids are unchanged from before kinds existed
        parts.append(kind.encode())
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def content_hash(files: dict[str, bytes], kind: str = TABLE.name) -> str:
    """SHA-256 over every candidate file (name and bytes): what an approval binds to."""
    names = check_kind(kind).candidate_files
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "big"))
        digest.update(files[name])
    return digest.hexdigest()


def read_json(files: dict[str, bytes], name: str, where: Path) -> dict[str, Any]:
    """A candidate JSON file as an object, or :class:`CandidateError` naming the file."""
    try:
        data = json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CandidateError(f"{where / name}: not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise CandidateError(f"{where / name}: expected a JSON object")
    return data


# --- registration --------------------------------------------------------------------------


def register_candidate(paths: Paths, dataset: str, candidate_dir: Path, model_id: str,
                       title: str | None = None, *, kind: str = TABLE.name,
                       actor: str = "pipeline", now: datetime | None = None) -> Release:
    """Record a candidate of release ``kind``; a blocked gate or a non-private model
    registers as ``blocked``.

    Idempotent: registering the same content again returns the existing release. A
    classifier or model candidate must carry loadable weights and a value-free
    ``model.json`` bound to its ``schema.yaml``; a label above the kind's cap (a model is
    at most ``confidential``) is refused.
    """
    spec = check_kind(kind)
    candidate_dir = Path(candidate_dir).resolve()
    files = read_candidate(candidate_dir, kind)
    gate = read_json(files, GATE_JSON, candidate_dir)
    privacy = read_json(files, PRIVACY_JSON, candidate_dir)
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
                                 read_json(files, RELEASE_STATS_JSON, candidate_dir), candidate_dir)
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
            return release_of(row)
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
        return release_of(conn.execute("SELECT * FROM releases WHERE candidate_id = ?",
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


# --- model-file checks ---------------------------------------------------------------------


def _check_model_candidate(files: dict[str, bytes], kind: str, where: Path) -> None:
    """A classifier/model candidate: value-free ``model.json`` of this kind, bound to the
    candidate's schema, weights that load as a plain ``state_dict``, an audit without
    row distances."""
    from pulsesynth.schema import parse_schema

    meta = read_json(files, RELEASE_CONFIG_JSON, where)
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
    audit = read_json(files, AUDIT_JSON, where)
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
