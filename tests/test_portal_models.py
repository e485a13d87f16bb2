"""The portal with classifier and model releases: kinds in listings, model cards, access by
label, and release mechanism 2 — sampling rows from a published DP model."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from governance_fixtures import make_candidate, plant_real_table
from model_fixtures import make_classifier_candidate, make_model_candidate, tiny_model

from pulsesynth.frames import conform
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import audit_events, open_db
from pulsesynth.governance.grants import add_grant
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.tokens import create_token
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app
from pulsesynth.portal.app import SampleLimits
from pulsesynth.validation import validate

MODEL_ID = "taxi_trips_model"
SAMPLE = f"/datasets/{MODEL_ID}/v1/sample"
LIMITS = SampleLimits(max_rows=500, default_rows=50, rate_limit=4, window_s=60)


class Clock:
    """A settable UTC clock (moves rate-limit windows without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _publish_all(paths: Paths) -> None:
    snapshot = plant_real_table(paths, "taxi_trips")
    for kind, cand in (
            ("table", make_candidate(paths, "taxi_trips", "r1", snapshot_id=snapshot)),
            ("classifier", make_classifier_candidate(paths)),
            ("model", make_model_candidate(paths))):
        rel = register_candidate(paths, "taxi_trips", cand, f"m-{kind}", kind=kind)
        approve(paths, rel.candidate_id, "alice", note=f"{kind} reviewed")
    publish_approved(paths)


class Site:
    def __init__(self, root: Path) -> None:
        self.paths = Paths(root)
        _publish_all(self.paths)
        self.clock = Clock()
        self.app = create_app(self.paths, limits=LIMITS, clock=self.clock)
        self.client = TestClient(self.app)
        self.index = {e["id"]: e for e in json.loads(
            (self.paths.published / "index.json").read_text())["dataset"]}

    def token(self, entity: str, dataset: str | None = "taxi_trips") -> dict[str, str]:
        """A token of a new entity, granted ``dataset`` (the model's by default)."""
        token, _ = create_token(self.paths, entity)
        if dataset is not None:
            add_grant(self.paths, entity, dataset, steward="alice")
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(tmp_path_factory.mktemp("portal-models"))


def _samples(paths: Paths, action: str = "release.sample") -> list[dict]:
    return audit_events(paths, action)


def test_listings_show_each_kind_and_hide_the_model_without_a_token(site: Site) -> None:
    assert site.index[MODEL_ID]["label"] == "confidential"
    page = site.client.get("/")
    assert page.status_code == 200
    assert 'data-kind="table"' in page.text and 'data-kind="classifier"' in page.text
    assert MODEL_ID not in page.text and 'data-kind="model"' not in page.text
    api = site.client.get("/api/datasets").json()
    assert sorted((d["id"], d["kind"], d["dataset"]) for d in api) == [
        ("taxi_trips", "table", "taxi_trips"),
        ("taxi_trips_classifier", "classifier", "taxi_trips")]
    auth = site.token("listing-entity")
    listed = {d["id"]: d for d in site.client.get("/api/datasets", headers=auth).json()}
    assert listed[MODEL_ID]["kind"] == "model" and listed[MODEL_ID]["label"] == "confidential"
    page = site.client.get("/", headers=auth)
    assert 'data-kind="model"' in page.text and "DP generative model" in page.text


def test_model_release_is_404_without_a_valid_token(site: Site) -> None:
    unknown = site.client.get("/datasets/no_such_dataset")
    urls = [f"/datasets/{MODEL_ID}", f"/datasets/{MODEL_ID}/v1", f"/api/datasets/{MODEL_ID}",
            SAMPLE, f"{SAMPLE}?n=10&seed=1", f"{SAMPLE}?n=0", f"{SAMPLE}?n=abc&format=xml",
            f"{SAMPLE}?format=json"] + [f["downloadURL"] for f in site.index[MODEL_ID]["files"]]
    before = len(_samples(site.paths)) + len(_samples(site.paths, "release.sample_refused"))
    for creds in ({}, {"headers": {"Authorization": "Bearer not-a-token"}},
                  {"cookies": {"pulsesynth_session": "not-a-token"}}):
        client = TestClient(site.app)
        for url in urls:
            r = client.get(url, **creds)
            assert r.status_code == 404, (url, creds)
            assert r.content == unknown.content
    assert site.client.get("/datasets/no_such/v1/sample", headers=site.token("e1")
                           ).content == unknown.content
    # A valid token of an entity granted another dataset (or none): the same 404, bytes
    # and headers, on every model route, the sample endpoint included, GET and HEAD.
    unknown_head = site.client.head("/datasets/no_such_dataset")
    for auth in (site.token("other-grant", "patient_tests"), site.token("no-grant", None)):
        for url in urls:
            for method, expected in (("GET", unknown), ("HEAD", unknown_head)):
                r = site.client.request(method, url, headers=auth)
                assert (r.status_code, r.content, sorted(r.headers.multi_items())) == (
                    404, expected.content, sorted(expected.headers.multi_items())), (url,
                                                                                     method)
    assert site.client.post(SAMPLE).status_code == 405
    after = len(_samples(site.paths)) + len(_samples(site.paths, "release.sample_refused"))
    assert after == before                                   # nothing sampled, nothing logged


def test_model_page_renders_the_card_and_the_sample_form(site: Site) -> None:
    auth = site.token("page-entity")
    page = site.client.get(f"/datasets/{MODEL_ID}", headers=auth)
    assert page.status_code == 200
    text = page.text
    assert 'data-kind="model"' in text and "Shared: Confidential — DP generative model" in text
    assert f'action="/datasets/{MODEL_ID}/v1/sample"' in text and 'method="get"' in text
    assert 'name="n"' in text and 'name="seed"' in text and 'max="500"' in text
    for name in ("weights.pt", "model.json", "schema.yaml", "modelcard.md", "modelcard.json"):
        assert f'data-name="{name}"' in text, name
    assert "sample-release --release" in text and "strongest membership attack" in text
    assert "capped at confidential" in text
    assert "form-action 'self'" in page.headers["content-security-policy"]
    detail = site.client.get(f"/api/datasets/{MODEL_ID}", headers=auth).json()
    assert detail["kind"] == "model" and detail["datacard"]["kind"] == "model"
    # The weights download is what was approved, and it is logged (confidential).
    weights = next(f for f in site.index[MODEL_ID]["files"] if f["name"] == "weights.pt")
    r = site.client.get(weights["downloadURL"], headers=auth)
    assert r.status_code == 200
    state = torch.load(io.BytesIO(r.content), weights_only=True)
    assert set(state) == set(tiny_model().model.state_dict())
    assert audit_events(site.paths, "release.download")[-1]["subject"] == (
        f"{MODEL_ID}/v1/weights.pt")
    # The open classifier renders its model card publicly, without a sample form.
    clf = site.client.get("/datasets/taxi_trips_classifier")
    assert clf.status_code == 200 and 'data-kind="classifier"' in clf.text
    assert "pulsesynth predict --release" in clf.text and "sample-form" not in clf.text
    assert "target: <strong>tip</strong>" in clf.text


def test_sample_is_seeded_schema_valid_logged_and_free(site: Site) -> None:
    auth = site.token("sampler-a")
    with open_db(site.paths) as conn:
        ledger_before = conn.execute("SELECT count(*) FROM privacy_ledger").fetchone()[0]
    logged_before = len(_samples(site.paths))
    first = site.client.get(SAMPLE, params={"n": 40, "seed": 1}, headers=auth)
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/csv")
    assert "attachment" in first.headers["content-disposition"]
    again = site.client.get(SAMPLE, params={"n": 40, "seed": 1}, headers=auth)
    other = site.client.get(SAMPLE, params={"n": 40, "seed": 2}, headers=auth)
    assert again.content == first.content and other.content != first.content
    as_json = site.client.get(SAMPLE, params={"n": 40, "seed": 1, "format": "json"},
                              headers=auth).json()
    assert (as_json["n"], as_json["seed"], as_json["kind"]) == (40, 1, "model")
    table = pd.read_csv(io.StringIO(first.text))
    assert len(table) == 40 and list(table.columns) == as_json["columns"]
    assert len(as_json["rows"]) == 40 and as_json["rows"][0].keys() == set(table.columns)
    # Exactly what the released model gives locally for that seed.
    schema = tiny_model().schema
    expected = conform(tiny_model().sample(40, seed=1), schema)
    pd.testing.assert_frame_equal(conform(table, schema), expected, check_dtype=False)
    report = validate(conform(table, schema), schema, synthetic=True)
    assert report.success, report.to_dict()["failed"]
    events = _samples(site.paths)[logged_before:]
    assert [(e["actor"], e["subject"], e["detail"]["n"], e["detail"]["seed"]) for e in events] \
        == [("sampler-a", f"{MODEL_ID}/v1", 40, s) for s in (1, 1, 2, 1)]
    assert set(events[0]["detail"]) <= {"n", "seed", "format", "label", "candidate_id",
                                        "client", "at"}             # counts, never rows
    assert str(table.iloc[0]["company"]) not in json.dumps([e["detail"] for e in events])
    with open_db(site.paths) as conn:
        assert conn.execute("SELECT count(*) FROM privacy_ledger").fetchone()[0] == ledger_before
    # HEAD answers without sampling or counting.
    head = site.client.head(SAMPLE, params={"n": 5}, headers=site.token("sampler-c"))
    assert head.status_code == 200 and head.content == b""
    assert [e["actor"] for e in _samples(site.paths)].count("sampler-c") == 0
    # Defaults: n from the limits, seed 0 (another entity: sampler-a used its 4 requests).
    default = site.client.get(SAMPLE, headers=site.token("sampler-b"))
    assert len(pd.read_csv(io.StringIO(default.text))) == LIMITS.default_rows
    assert _samples(site.paths)[-1]["detail"]["seed"] == 0


def test_sample_bounds_are_422_with_a_clear_message(site: Site) -> None:
    auth = site.token("bounds-entity")
    before = len(_samples(site.paths))
    for params, message in (({"n": 0}, "n must be between 1 and 500"),
                            ({"n": 501}, "n must be between 1 and 500"),
                            ({"n": -3}, "n must be between 1 and 500"),
                            ({"n": "ten"}, "n must be an integer"),
                            ({"n": 5, "seed": -1}, "seed must be between 0"),
                            ({"n": 5, "seed": "x"}, "seed must be an integer"),
                            ({"n": 5, "format": "xml"}, "format must be one of csv, json")):
        r = site.client.get(SAMPLE, params=params, headers=auth)
        assert r.status_code == 422, params
        assert message in r.json()["detail"], (params, r.json())
    assert len(_samples(site.paths)) == before
    assert site.client.get(SAMPLE, params={"n": 500}, headers=auth).status_code == 200


def test_sample_rate_limit_per_entity_is_429_with_retry_after(site: Site) -> None:
    busy, calm = site.token("busy-entity"), site.token("calm-entity")
    for _ in range(LIMITS.rate_limit):
        assert site.client.get(SAMPLE, params={"n": 2}, headers=busy).status_code == 200
    site.clock.now += timedelta(seconds=10)
    r = site.client.get(SAMPLE, params={"n": 2}, headers=busy)
    assert r.status_code == 429 and "at most 4 sample requests per 60 s" in r.json()["detail"]
    assert 1 <= int(r.headers["retry-after"]) <= 51
    assert "default-src 'none'" in r.headers["content-security-policy"]
    [refused] = [e for e in _samples(site.paths, "release.sample_refused")
                 if e["actor"] == "busy-entity"]
    assert refused["detail"]["reason"] == "rate limit" and refused["detail"]["n"] == 2
    # Another entity has its own budget of requests.
    assert site.client.get(SAMPLE, params={"n": 2}, headers=calm).status_code == 200
    # A second portal process (another app) sees the same count: it lives in audit_log.
    other = TestClient(create_app(site.paths, limits=LIMITS, clock=site.clock))
    assert other.get(SAMPLE, params={"n": 2}, headers=busy).status_code == 429
    site.clock.now += timedelta(seconds=LIMITS.window_s)
    assert site.client.get(SAMPLE, params={"n": 2}, headers=busy).status_code == 200


def test_only_models_are_sampled(site: Site) -> None:
    auth = site.token("kinds-entity")
    for url in ("/datasets/taxi_trips/v1/sample", "/datasets/taxi_trips_classifier/v1/sample",
                f"/datasets/{MODEL_ID}/v9/sample"):
        assert site.client.get(url, params={"n": 5}, headers=auth).status_code == 404, url


def test_model_is_loaded_once_and_only_from_verified_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = Paths(tmp_path)
    _publish_all(paths)
    token, _ = create_token(paths, "cache-entity")
    add_grant(paths, "cache-entity", "taxi_trips", steward="alice")
    auth = {"Authorization": f"Bearer {token}"}
    import pulsesynth.synth.release as release_mod

    loads: list[int] = []
    real_load = release_mod.load_release

    def counting(files):  # type: ignore[no-untyped-def]
        loads.append(1)
        return real_load(files)

    monkeypatch.setattr(release_mod, "load_release", counting)
    client = TestClient(create_app(paths, limits=LIMITS))
    for seed in (1, 2, 3):
        assert client.get(SAMPLE, params={"n": 3, "seed": seed}, headers=auth).status_code == 200
    assert len(loads) == 1
    # Weights changed on disk after publication: a fresh portal refuses to load them.
    weights = paths.published / MODEL_ID / "v1" / "weights.pt"
    state = torch.load(weights, weights_only=True)
    key = next(iter(state))
    state[key] = state[key] * 0
    torch.save(state, weights)
    fresh = TestClient(create_app(paths, limits=LIMITS))
    assert fresh.get(SAMPLE, params={"n": 3}, headers=auth).status_code == 404
    assert fresh.get(f"/datasets/{MODEL_ID}/v1/files/weights.pt",
                     headers=auth).status_code == 404
    assert len(loads) == 1
