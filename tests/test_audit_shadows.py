"""Each audit shadow is an independent job on run references: trained through a mapper
(as an orchestrator would, in other processes) the audit is exactly the in-process one."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from pulsesynth import pipeline
from pulsesynth.audit.report import shadow_jobs
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse


def test_shadow_jobs_in_other_processes_give_the_in_process_audit(
        project_root: Path, tmp_path: Path) -> None:
    Warehouse(Paths(project_root)).build(["taxi_trips"])
    run = tmp_path / "run"
    pipeline.start_run("taxi_trips", run, max_rows=600)
    pipeline.train(run, epochs=2)
    pipeline.sample(run)
    in_process = pipeline.audit(run, n_shadows=2)
    calls: list[list] = []

    def mapper(fn, jobs):
        jobs = list(jobs)
        calls.append(jobs)
        # spawn: a fresh interpreter per worker, like a Dask worker process
        with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
            return list(pool.map(fn, jobs))

    mapped = pipeline.audit(run, n_shadows=2, mapper=mapper)
    assert [job[1:] for job in calls[0]] == shadow_jobs(2)
    assert all(isinstance(job[0], str) for job in calls[0])  # a reference, not rows
    for name in ("model_mia", "synthetic_mia"):  # the attacks of the default audit
        a, b = mapped["membership_attacks"][name], in_process["membership_attacks"][name]
        # Same seeds; only thread-count rounding in other processes may move a score.
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.01 and abs(a["auc"] - b["auc"]) <= 0.01
    assert mapped["shadow_training"]["where"] == "mapped"
    report = json.loads((run / "candidate" / "audit.json").read_text())
    assert report["shadow_training"] == {"jobs": 4, "where": "mapped",
                                         "reference": "fresh draws from the released model"}
