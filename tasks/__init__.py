"""Prefect tasks: thin wrappers over ``pulsesynth`` that pass dataset ids and paths only.

No task takes or returns a DataFrame; every task touching real rows has result
persistence off (``persist_result=False``) and no Prefect cache (``NO_CACHE``): the
content cache lives in ``pulsesynth.runs`` and keys on snapshot/schema/config/code.
"""

from tasks.synthesis import (
    StepFailed,
    audit_candidate,
    charge_ledger,
    decide_retrain,
    evaluate_candidate,
    plan_run,
    publish_releases,
    register_release,
    sample_candidate,
    start_run,
    train_model,
)

__all__ = [
    "StepFailed", "audit_candidate", "charge_ledger", "decide_retrain", "evaluate_candidate",
    "plan_run", "publish_releases", "register_release", "sample_candidate", "start_run",
    "train_model",
]
