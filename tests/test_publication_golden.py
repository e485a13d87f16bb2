"""Golden publication: the exact bytes and records publication produces, pinned.

One candidate of each release kind (table, classifier, model) is registered, approved and
published under a fixed clock; the SHA-256 of every published file and the release
records must equal the values below. They were measured on the code before the
governance release module was split into candidate / lifecycle / publisher / catalogue,
so the split (and any later refactor) is proven byte-identical. A change that *means* to
change what is published updates the pins in the same commit and says why.

Nothing is trained: the model candidate carries a small fixed ``state_dict`` (the
governance layer only checks that the weights load as one), so this stays in the unit
tier. ``index.json`` is pinned whole, ``modified`` included: :func:`write_index` stamps
the ``now=`` it is given (publication passes its own), so under the fixed clock every
byte of the catalogue is reproducible too.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from governance_fixtures import make_candidate
from model_fixtures import make_classifier_candidate, make_untrained_model_candidate

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.paths import Paths

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish_one_of_each(root: Path) -> dict[str, Any]:
    """Register, approve and publish one candidate of each kind; everything observable."""
    paths = Paths(root)
    candidates = [("table", make_candidate(paths)),
                  ("classifier", make_classifier_candidate(paths)),
                  ("model", make_untrained_model_candidate(paths))]
    registered = []
    for kind, cand in candidates:
        rel = register_candidate(paths, "taxi_trips", cand, f"m-{kind}", kind=kind, now=NOW)
        approve(paths, rel.candidate_id, "alice", note="golden", now=NOW)
        registered.append(rel.to_dict())
    releases = [r.to_dict() for r in publish_approved(paths, now=NOW)]
    index_bytes = (paths.published / "index.json").read_bytes()
    index = json.loads(index_bytes.decode("utf-8"))
    files = {p.relative_to(paths.published).as_posix(): _sha(p.read_bytes())
             for p in sorted(paths.published.rglob("*"))
             if p.is_file() and p.name != "index.json"}
    return {"registered": registered, "published": releases, "index": index,
            "index_sha": _sha(index_bytes), "files": files}


@pytest.fixture
def published(project_root: Path) -> dict[str, Any]:
    return publish_one_of_each(project_root)


#: SHA-256 of every published file but ``index.json`` (pinned on its own below).
#: Re-pinned for the per-release quality report (#22): a table release adds two quality
#: plots and a ``quality`` card section; the fixture's ``hour`` gained declared bins.
GOLDEN_FILES: dict[str, str] = {
    "taxi_trips/v1/datacard.json":
        "2b4cc818204ba0ddc19088a33a337b0763a623892375be1bfe09127cd13b39ba",
    "taxi_trips/v1/datacard.md":
        "e50a5852c8f433ec80b454880c8b235dc87f0cc311f66685d30eec04af8e7922",
    "taxi_trips/v1/plots/00-tip.png":
        "70c0704c1c248a75c5a47268a3348433af21604c9ed86611ed68c2bdb9650b16",
    "taxi_trips/v1/plots/01-distance.png":
        "e89bb487fff2fe0a4f34a12ecb6f7a997404e6a855a941cc8d17e2db559bbedd",
    "taxi_trips/v1/plots/02-company.png":
        "54c2bdcb34fb774549b5ccaf5dfe5296ba2fbf54e392c3c85348e48fba5bc642",
    "taxi_trips/v1/plots/03-hour.png":
        "e1b93b29ed2fafec4ccaaf683e27db31c3e02616ce9f75e2b5d17b4bade6e54a",
    "taxi_trips/v1/plots/quality-associations.png":
        "b011b2075825579840e61154dc615c2907395dfe76770ca65751537b2a0965b3",
    "taxi_trips/v1/plots/quality-shapes.png":
        "03767548227c8a0b4b2898193fe6f600c8a3b6a1debe47f87e579416baf499b3",
    "taxi_trips/v1/synthetic.csv":
        "e04a1fe2f4389c81876849d3ce7d2432f1ec5ee3dbfd0b55fc46eebbc1d870ce",
    "taxi_trips/v1/synthetic.parquet":
        "a99c9bff46251a6a0a51e9bd941a0f243f78cb9c436fc7250d9ed57d3c8974e5",
    "taxi_trips_classifier/v1/model.json":
        "6c29f595fb8c19778acb7efc5e783a34f5c1a28a3c9506bc5be2681db8dae7b2",
    "taxi_trips_classifier/v1/modelcard.json":
        "defba0e899cb9129b0a2e98fc2b20edbb8ec8a72913f6d4cea4570809b22b721",
    "taxi_trips_classifier/v1/modelcard.md":
        "59e8939923176a668f7ee714e11b579f2f0c5f272607fe54335e17c72612fe72",
    "taxi_trips_classifier/v1/schema.yaml":
        "8a415e611f955ddfa2c3e81eee5997fc4a27a213b5c3b756a2c5f96679ceec4e",
    "taxi_trips_classifier/v1/weights.pt":
        "08cdbaa3aa142450543ac4307c43e85f516a14ed28f2db7491b6a74c321359d4",
    "taxi_trips_model/v1/model.json":
        "d59080718fd4180b19437d4d68cf606b039765e6eb38fbc291e03f927d6f4a95",
    "taxi_trips_model/v1/modelcard.json":
        "de58062ae8c2128451d60525b50ebbc5d93e65d9e19dd384f2b5bc71a3f99106",
    "taxi_trips_model/v1/modelcard.md":
        "f018e9bff4c8c5114c8c864c10c13c527fbefa6260dd0e62c066a353983a22dc",
    "taxi_trips_model/v1/schema.yaml":
        "8a415e611f955ddfa2c3e81eee5997fc4a27a213b5c3b756a2c5f96679ceec4e",
    "taxi_trips_model/v1/weights.pt":
        "2a29fd2c98da45ee31e475f51005c38f2427884c20e0e48c2628bfe1e2f2d107",
}
#: SHA-256 of the ``index.json`` file, byte for byte (``modified`` is the fixed clock).
GOLDEN_INDEX = "6ff25753edeeae5837f9a35c515e5b6ffe217cb314e338b9cfc4ea8b60944a00"
#: SHA-256 of the registered and the published release records (canonical JSON).
GOLDEN_REGISTERED = "c23d4afa3706f1263f610ad03c97a53f7555a97c9af43f3b8b99ab9e2e7df13a"
GOLDEN_PUBLISHED = "da4c7280b78c0522086c37ef132ef8bf1601742ac660bc214cdf004bb786bd95"
#: The candidate ids (kind, id): readable, so a moved id is named in the failure.
GOLDEN_IDS = [("table", "ddf58cd8e26a9197d1504b361c330863c856c285c528550be900e52dd25dce13"),
              ("classifier", "b46a489fc8c629d75c01194f789c94fa2684b8278ef0e44268e1da91237f802b"),
              ("model", "b0baa00fb60bf2be95ee3a5bdd6d5aa328c778b9b49828d8baf398d8adde6f18")]


def _canonical(value: Any) -> str:
    return _sha(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def test_published_bytes_are_pinned(published: dict[str, Any]) -> None:
    assert published["files"] == GOLDEN_FILES


def test_index_is_pinned_with_its_modified_stamp(published: dict[str, Any]) -> None:
    assert published["index"]["modified"] == "2026-01-02T03:04:05+00:00"  # NOW, not the wall
    assert published["index_sha"] == GOLDEN_INDEX


def test_release_records_are_pinned(published: dict[str, Any]) -> None:
    assert [(r["kind"], r["candidate_id"]) for r in published["published"]] == GOLDEN_IDS
    assert [(r["status"], r["version"]) for r in published["published"]] == [
        ("published", "v1")] * 3
    assert _canonical(published["registered"]) == GOLDEN_REGISTERED
    assert _canonical(published["published"]) == GOLDEN_PUBLISHED
