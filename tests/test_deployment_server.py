"""The deployment path a city data office runs: a real Prefect server, a process work
pool, ``prefect deploy`` of ``deployments/prefect.yaml``, and a process worker that picks up
a run of the nightly deployment and completes it (slow: ~1–2 minutes).

The project root is a copy of the repo's flows/tasks/deployments/schemas with its own
warehouse and Prefect home, so nothing touches the checkout's state.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsesynth.governance.ledger import Ledger
from pulsesynth.governance.record import list_releases
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).parent / "prefect")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("deployroot")
    for name in ("flows", "tasks", "deployments", "schemas"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(REPO / "prefect.toml", root / "prefect.toml")
    (root / "state" / "prefect").mkdir(parents=True)
    Warehouse(Paths(root)).build()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(root / "state" / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PULSESYNTH_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    log = open(root / "server.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("Prefect server did not start:\n" +
                                (root / "server.log").read_text()[-2000:])
                time.sleep(1)
        yield root, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _prefect(root: Path, env: dict[str, str], *args: str, timeout: int = 120) -> str:
    out = subprocess.run([PREFECT, "--no-prompt", *args], cwd=root, env=env, text=True,
                         capture_output=True, timeout=timeout)
    assert out.returncode == 0, f"prefect {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _api(env: dict[str, str], path: str, body: dict | None = None) -> object:
    req = urllib.request.Request(env["PREFECT_API_URL"] + path, method="POST" if body else "GET",
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_nightly_deployment_deploys_schedules_and_runs_on_a_process_worker(server) -> None:
    root, env = server
    # The README's steps as written: `deploy --all` from the project root, with no
    # PULSESYNTH_ROOT exported (the build step finds the root) and no pulse-k8s pool.
    _prefect(root, env, "work-pool", "create", "pulse-process", "--type", "process")
    bare = {k: v for k, v in env.items() if k != "PULSESYNTH_ROOT"}
    _prefect(root, bare, "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
    published = _api(env, "/deployments/name/publish-approved/publish-approved")
    assert isinstance(published, dict)
    assert published["job_variables"]["env"]["PULSESYNTH_ROOT"] == os.path.realpath(root)

    deployment = _api(env, "/deployments/name/nightly-synthesis/nightly")
    assert isinstance(deployment, dict)
    schedule = deployment["schedules"][0]["schedule"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "Asia/Dubai")
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert deployment["work_pool_name"] == "pulse-process"
    assert deployment["job_variables"]["env"]["PULSESYNTH_ROOT"] == os.path.realpath(root)
    assert deployment["job_variables"]["working_dir"] == os.path.realpath(root)
    assert deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"][
        "directory"] == os.path.realpath(root)

    run = _api(env, f"/deployments/{deployment['id']}/create_flow_run",
               {"parameters": {"datasets": ["census_income"], "max_rows": 600, "epochs": 2}})
    assert isinstance(run, dict)
    out = subprocess.run([PREFECT, "worker", "start", "--pool", "pulse-process", "--run-once"],
                         cwd=root, env=env, text=True, capture_output=True, timeout=600)
    state = _api(env, f"/flow_runs/{run['id']}")
    assert isinstance(state, dict)
    assert state["state_type"] == "COMPLETED", out.stdout[-3000:] + out.stderr[-3000:]

    paths = Paths(root)
    assert Ledger(paths).spent("census_income").runs == 1
    assert [r.dataset for r in list_releases(paths)] == ["census_income"]


def test_kubernetes_variant_deploys_against_its_job_template(server) -> None:
    root, env = server
    _prefect(root, env, "work-pool", "create", "pulse-k8s", "--type", "kubernetes",
             "--base-job-template", "deployments/k8s-job-template.json")
    _prefect(root, env, "deploy", "--all", "--prefect-file", "deployments/prefect-k8s.yaml")
    deployment = _api(env, "/deployments/name/nightly-synthesis/nightly-k8s")
    assert isinstance(deployment, dict)
    assert deployment["work_pool_name"] == "pulse-k8s"
    assert deployment["job_variables"]["pvc_name"] == "pulse-synth-data"
    assert deployment["schedules"][0]["active"] is False  # enabled instead of, not beside
    assert deployment["job_variables"]["env"]["PULSESYNTH_ROOT"] == "/data"
