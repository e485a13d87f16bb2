"""The Kubernetes variant without a cluster: prefect-kubernetes' own worker configuration
renders ``deployments/k8s-job-template.json`` with the ``nightly-k8s`` job variables into
the Job manifest a Kubernetes worker would submit, and that manifest is checked."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import jsonschema
import pytest
import yaml
from prefect.client.schemas.objects import FlowRun
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from flows.testing import shared_test_harness

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = json.loads((REPO / "deployments" / "k8s-job-template.json").read_text())


def _job_variables() -> dict:
    spec = yaml.safe_load((REPO / "deployments" / "prefect-k8s.yaml").read_text())
    k8s = next(d for d in spec["deployments"] if d["name"] == "nightly-k8s")
    assert k8s["work_pool"]["name"] == "pulse-k8s"
    return k8s["work_pool"]["job_variables"]


@pytest.fixture(scope="module")
def harness() -> str:
    # Rendering asks the Prefect API to resolve template references: the shared harness.
    return shared_test_harness()


def _manifest() -> dict:
    values = _job_variables()
    config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(
        TEMPLATE, values))
    run = FlowRun(id=uuid.uuid4(), name="calm-otter", flow_id=uuid.uuid4())
    config.prepare_for_flow_run(run)
    return config.job_manifest


def test_job_variables_conform_to_the_templates_schema() -> None:
    jsonschema.validate(_job_variables(), TEMPLATE["variables"])


def test_rendered_job_runs_the_flow_with_the_data_volume_and_dask_settings(harness) -> None:
    job = _manifest()
    values = _job_variables()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["namespace"] == values["namespace"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == values["service_account_name"]
    (container,) = pod["containers"]
    assert container["image"] == values["image"]
    assert "prefect" in " ".join(container.get("args") or container.get("command") or [])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PULSESYNTH_ROOT"] == "/data"
    assert env["PULSESYNTH_TASK_RUNNER"] == "dask"
    assert env["PREFECT__FLOW_RUN_ID"]  # the worker tells the pod which run to execute
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v]
    assert claims == [values["pvc_name"]]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/data" in mounts
    requests = container["resources"]["requests"]
    assert (requests["cpu"], requests["memory"]) == (values["cpu_request"],
                                                     values["memory_request"])
