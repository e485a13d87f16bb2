"""Shared fixtures: every test works in its own project root, never in the repo's warehouse.

Tiers. ``slow`` is marked by hand (``make test`` leaves it out). ``integration`` is marked
here, by module or by fixture, on every test that trains a model, runs a Prefect flow,
starts a server or drives Chromium, builds a real warehouse table, or kills and races real
processes: ``make test-unit`` runs the rest (``not slow and not integration``). A new
test module that trains belongs in :data:`INTEGRATION_MODULES`; one that only uses
:data:`INTEGRATION_FIXTURES` is caught without being listed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent

#: Modules whose tests (or module fixtures) train a synthesizer or a classifier, run flows,
#: start servers or a browser. By file: their expensive fixtures are module-scoped.
INTEGRATION_MODULES = frozenset({
    "test_audit_calibration.py", "test_audit_shadows.py", "test_benchmark_suite.py",
    "test_canary.py", "test_classifier.py", "test_classifier_release.py", "test_cli_chain.py",
    "test_cli_run.py",
    "test_deployment_server.py", "test_dp_engine.py", "test_figure3_benchmark.py",
    "test_flows.py", "test_ingest_crash.py",
    # build a real warehouse table (a file ingested end to end through DuckDB and GX, about
    # 0.7 s of CPU a test), or run publications and runs against injected faults and
    # competing processes (seconds each; the unit tier stays under a minute)
    "test_budget_governance.py", "test_concurrency.py", "test_faults.py",
    "test_ingest.py", "test_ingest_mapping.py", "test_worked_example.py",
    "test_k8s_template.py",
    "test_marginals.py", "test_model_release.py", "test_one_run_audit.py",
    "test_portal_browser.py", "test_portal_models.py", "test_privacy_truth.py",
    "test_relations.py", "test_synthesizer.py", "test_temporal_pipeline.py", "test_utility.py",
    "test_worked_example_run.py", "test_readme_session.py",
})
#: Fixtures that start a Prefect server (``harness``, ``server``) or build and validate every
#: real table of the warehouse (``built_root``, ``built_warehouse``), wherever they are used.
INTEGRATION_FIXTURES = frozenset({"harness", "server", "built_root", "built_warehouse"})


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m "... not integration"`` do not even import the integration modules: their
    imports (Prefect, prefect-kubernetes, Playwright) cost seconds the unit tier lacks."""
    if "not integration" in (config.getoption("markexpr") or ""):
        return True if collection_path.name in INTEGRATION_MODULES else None
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the integration tier (see the module docstring)."""
    for item in items:
        if (item.path.name in INTEGRATION_MODULES
                or INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def built_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root with the real embedded warehouse built once per session (read-only use)."""
    root = tmp_path_factory.mktemp("built")
    shutil.copytree(REPO / "schemas", root / "schemas")
    Warehouse(Paths(root)).build()
    return root


@pytest.fixture(scope="session")
def built_warehouse(built_root: Path) -> Warehouse:
    return Warehouse(Paths(built_root))


@pytest.fixture
def project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project root with the repo's schemas, selected through PULSESYNTH_ROOT."""
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    monkeypatch.setenv("PULSESYNTH_ROOT", str(tmp_path))
    return tmp_path
