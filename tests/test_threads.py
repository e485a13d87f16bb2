"""Compute steps (flows, tasks and the CLI) run under a thread cap: ``PULSESYNTH_THREADS``."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from pulsesynth import cli
from pulsesynth.errors import PulseSynthError
from pulsesynth.threads import compute_threads


def test_compute_threads_caps_torch_and_openmp_then_restores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSESYNTH_THREADS", "1")
    torch.set_num_threads(2)
    with compute_threads():
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == 2


def test_a_malformed_thread_setting_is_a_clear_cli_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PULSESYNTH_THREADS", "many")
    with pytest.raises(PulseSynthError, match="PULSESYNTH_THREADS must be a whole number"):
        with compute_threads():
            pass
    assert cli.main(["catalog", "list"]) == 2
    assert "PULSESYNTH_THREADS must be a whole number" in capsys.readouterr().err
