"""Reliability: a bounded load test of the portal from localhost.

The real portal (``pulsesynth portal``, uvicorn) serves a table, a classifier and a DP
model published the ordinary way; 20 client threads request pages, the API, downloads
(open and confidential) and the model's sample endpoint with an entity's token for 60 s.
A 429 from the sample endpoint's rate limit is the limit working, counted apart; any
other non-2xx answer, connection error or timeout is an error. Throughput, latency
percentiles and the server's resident memory before and after go to
``benchmarks/results/reliability.json`` under ``load``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from governance_fixtures import make_candidate, plant_real_table
from model_fixtures import make_classifier_candidate, make_model_candidate
from reliability_results import Section

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.grants import add_grant
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.tokens import create_token
from pulsesynth.paths import Paths

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

REPO = Path(__file__).resolve().parent.parent
CLIENTS = 20
SECONDS = float(os.environ.get("PULSESYNTH_LOAD_SECONDS", "60"))
ENTITY = "health-authority"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, int]]:
    """(base URL, token, server pid) of a running portal over one release of each kind."""
    root = tmp_path_factory.mktemp("load")
    shutil.copytree(REPO / "schemas", root / "schemas")
    paths = Paths(root)
    snapshot = plant_real_table(paths, "taxi_trips")
    for kind, cand in (
            ("table", make_candidate(paths, "taxi_trips", "r1", snapshot_id=snapshot,
                                     label="confidential")),
            ("classifier", make_classifier_candidate(paths)),
            ("model", make_model_candidate(paths))):
        rel = register_candidate(paths, "taxi_trips", cand, f"m-{kind}", kind=kind)
        approve(paths, rel.candidate_id, "alice")
    publish_approved(paths)
    token, _ = create_token(paths, ENTITY)
    add_grant(paths, ENTITY, "taxi_trips", steward="reliability")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pulsesynth.cli", "portal", "--port", str(port)],
        env=os.environ | {"PULSESYNTH_ROOT": str(root)}, cwd=root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(base + "/", timeout=2)
            break
        except httpx.HTTPError:
            assert server.poll() is None and time.monotonic() < deadline, "portal did not start"
            time.sleep(0.5)
    yield base, token, server.pid
    server.terminate()
    server.wait(timeout=30)


def _urls(base: str, token: str) -> list[tuple[str, bool]]:
    """(URL, sends the token) for every kind of request a visitor or an entity makes."""
    auth = {"Authorization": f"Bearer {token}"}
    entries = httpx.get(base + "/api/datasets", headers=auth, timeout=30).json()
    urls = [("/", False), ("/", True), ("/api/datasets", False), ("/api/datasets", True)]
    for e in entries:
        urls += [(f"/datasets/{e['id']}", True), (f"/datasets/{e['id']}/{e['version']}", True),
                 (f"/api/datasets/{e['id']}", True)]
        urls += [(f["downloadURL"], True) for f in e["files"][:3]]
        if e["kind"] == "model":
            urls.append((f"/datasets/{e['id']}/{e['version']}/sample?n=50", True))
    return urls


def test_twenty_clients_for_a_minute_get_no_errors(portal: tuple[str, str, int]) -> None:
    base, token, pid = portal
    urls = _urls(base, token)
    assert any("/sample" in u for u, _ in urls) and any("/files/" in u for u, _ in urls)
    server = psutil.Process(pid)
    rss_before = sum(p.memory_info().rss for p in [server, *server.children(recursive=True)])
    latencies: list[float] = []
    errors: list[str] = []
    limited = [0]
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def client(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = offset
            while time.monotonic() < stop:
                url, with_token = urls[i % len(urls)]
                i += 1
                headers = {"Authorization": f"Bearer {token}"} if with_token else {}
                start = time.perf_counter()
                try:
                    status = http.get(url, headers=headers).status_code
                except httpx.HTTPError as exc:
                    status, detail = -1, type(exc).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if status == 429 and "/sample" in url:
                        limited[0] += 1
                    elif not 200 <= status < 300:
                        errors.append(f"{url}: {status if status > 0 else detail}")

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    rss_after = sum(p.memory_info().rss for p in [server, *server.children(recursive=True)])
    ms = np.array(latencies) * 1000
    load = {"clients": CLIENTS, "seconds": round(wall, 1), "requests": len(latencies),
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "errors": len(errors), "rate_limited_samples": limited[0],
            "rss_mb_before": round(rss_before / 2**20, 1),
            "rss_mb_after": round(rss_after / 2**20, 1),
            "mix": sorted({u.split("?")[0] for u, _ in urls})}
    Section("load", extra={"load": load}).write()
    assert errors == [], errors[:5]
    assert len(latencies) > CLIENTS
