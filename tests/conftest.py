"""Shared fixtures: every test works in its own project root, never in the repo's warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent


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
