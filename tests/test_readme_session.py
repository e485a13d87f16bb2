"""The README's example steward session runs as printed, after a real run of census_income.

The session's placeholders are filled with what the run made (the candidate id's first
six characters, the run directory's name, the model candidate's id); every other word is
the README's. The run is trained at the catalog's ε with secret randomness, as the
nightly flow trains, and registered as the flow registers it. Its audit uses a policy
whose label the DP report's noise cannot flip (open fails on ε, confidential takes any
advantage), so the table candidate is approvable; the model candidate goes through the
shipped policy, as the README's line does, on the full census table, where the DP
report's noise is a small fraction of the confidential threshold.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_cli_run import NOISE_PROOF_POLICY

from pulsesynth import cli, pipeline
from pulsesynth.artifacts import RunDir
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

README = Path(__file__).resolve().parent.parent / "README.md"


def session_lines() -> list[str]:
    """The commands of the README's example session, comments cut off."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"Example session \(a steward, after a nightly run[^)]*\):\n\n"
                      r"```bash\n(.*?)```", text, flags=re.S)
    assert block, "the README's example session is gone"
    return [re.split(r"\s#", line)[0].strip() for line in block.group(1).splitlines()
            if line.strip()]


def call(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(argv)
    return code, out.getvalue()


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow  # trains and audits census_income (a few minutes)
def test_the_readme_steward_session_runs_as_printed(
        project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = session_lines()
    assert [shlex.split(line)[1] for line in lines] == [
        "budget", "releases", "releases", "releases", "publish", "tokens", "grants",
        "release-model", "releases", "publish", "portal"]
    paths = Paths(project_root)
    Warehouse(paths).build(["census_income"])
    monkeypatch.chdir(project_root)
    run = project_root / "state" / "runs" / "census_income" / "nightly"
    policy = tmp_path / "policy.yaml"
    policy.write_text(NOISE_PROOF_POLICY, encoding="utf-8")
    code, _ = call(["run", "census_income", "--epochs", "2", "--out", str(run),
                    "--policy", str(policy)])
    assert code == 0
    rel = register_candidate(paths, "census_income", RunDir(run).candidate.path,
                             model_id=pipeline.model_hash(run))
    assert (rel.status, rel.label) == ("candidate", "confidential")

    model_id = None
    for line in lines:
        printed = (line.replace("3f9a1c", rel.candidate_id[:6])
                   .replace("<run>", run.name))
        if "<id>" in printed:
            assert model_id, "release-model printed no candidate id"
            printed = printed.replace("<id>", model_id[:6])
        argv = shlex.split(printed)[1:]
        if argv[0] == "portal":
            assert free(8080), "port 8080 is taken: the README's portal line needs it"
            serve(printed)
            continue
        code, out = call(argv)
        assert code == 0, printed
        if argv[0] == "release-model":
            model_id = out.split()[0]
    published = sorted(p.name for p in paths.published.iterdir() if p.is_dir())
    assert published == ["census_income", "census_income_model"]


def serve(line: str) -> None:
    """Run the README's portal line as a process until it answers ``/``, then stop it."""
    command = [str(Path(sys.executable).parent / "pulsesynth"), *shlex.split(line)[1:]]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=2) as resp:
                    assert resp.status == 200
                    return
            except OSError:
                assert proc.poll() is None, "the portal exited"
                assert time.monotonic() < deadline, "the portal did not answer in 60 s"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
