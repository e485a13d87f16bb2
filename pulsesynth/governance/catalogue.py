"""The catalogue: ``published/index.json``, a DCAT-style list of every listed version.

The portal reads only this index and the directories it names. It lists published and
superseded versions (withdrawn never) and is rewritten through a temporary file and
``os.replace``, so a reader sees either the old or the new catalogue, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from pulsesynth.artifacts import ReleaseDir, index_json
from pulsesynth.governance.db import now_iso
from pulsesynth.governance.locks import temp_name
from pulsesynth.governance.record import release_of
from pulsesynth.paths import Paths


def index_entries(paths: Paths, conn: Any) -> list[dict[str, Any]]:
    """One DCAT-style entry per published or superseded version (withdrawn never)."""
    entries = []
    rows = conn.execute("SELECT * FROM releases WHERE status IN ('published', 'superseded') "
                        "ORDER BY dataset, kind, published_at, version").fetchall()
    for row in rows:
        rel = release_of(row)
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


def write_index(paths: Paths, conn: Any, *, now: datetime | None = None) -> Path:
    """Rewrite ``published/index.json`` atomically (temporary file, fsync, ``os.replace``).

    ``modified`` is stamped with ``now`` (the wall clock when ``None``).
    """
    paths.published.mkdir(parents=True, exist_ok=True)
    catalogue = {
        "@context": "https://www.w3.org/ns/dcat",
        "type": "dcat:Catalog",
        "title": "Pulse Synth — synthetic open portal",
        "description": "Differentially private synthetic copies of the city's shared tables.",
        "modified": now_iso(now),
        "dataset": index_entries(paths, conn),
    }
    target = index_json(paths)
    tmp = paths.published / temp_name("index", ".json")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(catalogue, fh, indent=2, sort_keys=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: leave no half-written index behind
        raise
    return target


def _file_entry(path: Path, dataset: str, version: str) -> dict[str, Any]:
    """The card file's own entry (the card cannot list its own hash, so the index does)."""
    data = path.read_bytes()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "mediaType": "application/json", "downloadURL": f"/datasets/{dataset}/{version}/"
            f"files/{path.name}"}
