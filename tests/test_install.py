"""The package works installed, away from the checkout: ``pip install`` (no editable link)
into a private directory, then the CLI run from an unrelated directory finds the project
through ``PULSESYNTH_ROOT`` and its default gate policy as package data.

Offline: ``--no-index --no-deps --no-build-isolation`` builds with the venv's own setuptools
and installs only ``pulsesynth``; its dependencies come from the venv itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_installed_package_lists_the_catalog_from_another_directory(tmp_path: Path) -> None:
    # Build from a copy: pip builds in the source tree (build/, *.egg-info).
    src = tmp_path / "src"
    shutil.copytree(REPO / "pulsesynth", src / "pulsesynth",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                    "--no-deps", "--no-build-isolation", "--target", str(target), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    assert (target / "pulsesynth" / "policy.yaml").is_file()
    assert (target / "pulsesynth" / "portal" / "templates").is_dir()

    root = tmp_path / "project"
    shutil.copytree(REPO / "schemas", root / "schemas")
    Warehouse(Paths(root)).build(["taxi_trips"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = os.environ | {"PYTHONPATH": str(target), "PULSESYNTH_ROOT": str(root)}

    def run(code: list[str]) -> str:
        done = subprocess.run([sys.executable, *code], cwd=elsewhere, env=env, text=True,
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = json.loads(run(["-c", "import json, pulsesynth, pulsesynth.gate as g; "
                                  "print(json.dumps([pulsesynth.__file__, "
                                  "str(g.DEFAULT_POLICY)]))"]))
    assert where == [str(target / "pulsesynth" / "__init__.py"),
                     str(target / "pulsesynth" / "policy.yaml")]
    listed = json.loads(run(["-m", "pulsesynth.cli", "catalog", "list", "--json"]))
    assert [e["id"] for e in listed] == ["taxi_trips"]
