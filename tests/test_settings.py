"""``pulsesynth.settings``: every ``PULSESYNTH_*`` variable parsed in one place, one-line
errors for malformed values, and the project root and default policy found without
``__file__``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pulsesynth import gate
from pulsesynth.paths import Paths
from pulsesynth.settings import SampleSettings, Settings, SettingsError

REPO = Path(__file__).resolve().parent.parent


def test_defaults_when_nothing_is_set() -> None:
    assert Settings.from_env({}) == Settings(root=None, threads=1, task_runner="default",
                                             dask_address=None, dask_workers=2)


def test_every_variable_is_parsed(tmp_path: Path) -> None:
    env = {"PULSESYNTH_ROOT": str(tmp_path), "PULSESYNTH_THREADS": " 4 ",
           "PULSESYNTH_TASK_RUNNER": " Dask", "PULSESYNTH_DASK_ADDRESS": "tcp://h:8786",
           "PULSESYNTH_DASK_WORKERS": "3"}
    assert Settings.from_env(env) == Settings(root=tmp_path.resolve(), threads=4,
                                              task_runner="dask",
                                              dask_address="tcp://h:8786", dask_workers=3)


def test_empty_values_count_as_unset() -> None:
    env = dict.fromkeys(("PULSESYNTH_ROOT", "PULSESYNTH_THREADS", "PULSESYNTH_TASK_RUNNER",
                         "PULSESYNTH_DASK_ADDRESS", "PULSESYNTH_DASK_WORKERS"), "")
    assert Settings.from_env(env) == Settings()


def test_threads_at_least_one() -> None:
    assert Settings.from_env({"PULSESYNTH_THREADS": "0"}).threads == 1


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PULSESYNTH_THREADS", "many", "PULSESYNTH_THREADS must be a whole number, got 'many'"),
    ("PULSESYNTH_TASK_RUNNER", "ray",
     "PULSESYNTH_TASK_RUNNER must be 'default' or 'dask', got 'ray'"),
    ("PULSESYNTH_DASK_WORKERS", "two",
     "PULSESYNTH_DASK_WORKERS must be a whole number of at least 1, got 'two'"),
    ("PULSESYNTH_DASK_WORKERS", "0",
     "PULSESYNTH_DASK_WORKERS must be a whole number of at least 1, got '0'"),
])
def test_malformed_values_are_one_line_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: value})
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


def test_sample_limits_defaults_and_values() -> None:
    assert SampleSettings.from_env({}) == SampleSettings(max_rows=10_000, rate_limit=30,
                                                         window_s=60)
    env = {"PULSESYNTH_SAMPLE_MAX_ROWS": " 500 ", "PULSESYNTH_SAMPLE_RATE_LIMIT": "4",
           "PULSESYNTH_SAMPLE_RATE_WINDOW": ""}
    assert SampleSettings.from_env(env) == SampleSettings(max_rows=500, rate_limit=4,
                                                          window_s=60)


def test_malformed_sample_limit_stops_the_portal_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pulsesynth.portal.sampling import SampleLimits

    monkeypatch.setenv("PULSESYNTH_SAMPLE_MAX_ROWS", "lots")
    Settings.from_env()  # the pipeline is unaffected: no error
    with pytest.raises(SettingsError) as err:
        SampleLimits.from_env()
    assert str(err.value) == "PULSESYNTH_SAMPLE_MAX_ROWS must be a whole number, got 'lots'"
    monkeypatch.setenv("PULSESYNTH_SAMPLE_MAX_ROWS", "0")
    with pytest.raises(ValueError, match="^sample limits must be positive$"):
        SampleLimits.from_env()


def test_paths_default_is_the_env_root_else_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(tmp_path / "elsewhere"))
    assert Paths.default().root == (tmp_path / "elsewhere").resolve()
    monkeypatch.delenv("PULSESYNTH_ROOT")
    monkeypatch.chdir(tmp_path)
    assert Paths.default().root == tmp_path.resolve()


def test_default_policy_ships_in_the_package_and_the_checkout_links_to_it() -> None:
    assert gate.DEFAULT_POLICY.is_file()
    assert gate.DEFAULT_POLICY.parent == Path(gate.__file__).resolve().parent
    checkout = REPO / "deployments" / "policy.yaml"
    assert checkout.resolve() == gate.DEFAULT_POLICY.resolve()
    assert gate.load_policy() == gate.load_policy(checkout)


ENV_READ = re.compile(r"os\.environ|getenv")
#: Modules allowed to read the environment: the settings themselves; Prefect's own
#: variables in ``flows``.
ALLOWED = {"pulsesynth/settings.py", "flows/__init__.py", "flows/runners.py",
           "flows/server.py"}


def test_pulsesynth_variables_are_read_only_in_settings() -> None:
    offenders = []
    for top in ("pulsesynth", "flows", "tasks", "deployments"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            text = path.read_text(encoding="utf-8")
            for n, line in enumerate(text.splitlines(), 1):
                if rel == "pulsesynth/settings.py":
                    continue
                if "PULSESYNTH_" in line and ENV_READ.search(line):
                    offenders.append(f"{rel}:{n}")
                elif ENV_READ.search(line) and rel not in ALLOWED:
                    offenders.append(f"{rel}:{n}")
    assert offenders == []


def test_contact_email_defaults_substitutes_the_office_and_refuses_non_addresses() -> None:
    from pulsesynth.settings import ContactSettings

    assert ContactSettings.from_env({}).email() == "open-data@city.example"
    assert ContactSettings.from_env({"PULSESYNTH_CONTACT_EMAIL": " "}).email("x") == \
        "open-data@city.example"
    office = ContactSettings.from_env({"PULSESYNTH_CONTACT_EMAIL": "{steward}@data.gov.example"})
    assert office.email("health-data-office") == "health-data-office@data.gov.example"
    assert office.email() == "city-data-office@data.gov.example"
    for bad in ("not-an-address", "a@b", "x@y.z <script>", "a,b@c.d"):
        with pytest.raises(SettingsError) as err:
            ContactSettings.from_env({"PULSESYNTH_CONTACT_EMAIL": bad})
        assert str(err.value) == ("PULSESYNTH_CONTACT_EMAIL must be an email address "
                                  f"(optionally with {{steward}}), got {bad!r}")
