"""Serve the flows locally with their schedules (``make serve``).

Runs in the foreground, polling Prefect's API for scheduled runs: the nightly synthesis at
02:00 Asia/Dubai (no overlapping runs: deployment concurrency limit 1) and publication of
approved candidates every 15 minutes. Start it from the project root so ``prefect.toml``
applies (Prefect home, database and result storage under ``state/prefect``). With no
``PREFECT_API_URL`` a local temporary server is started (:mod:`flows.server`), which
exists only while this process runs and dies with it, even on ``kill -9``; for a UI and
history that outlive it run ``prefect server start`` and export
``PREFECT_API_URL=http://127.0.0.1:4200/api`` first.

    python -m deployments.serve [--max-rows N] [--epochs N]
"""

from __future__ import annotations

import argparse
from datetime import timedelta

import flows  # noqa: F401  (makes state/prefect before Prefect is imported below)

TIMEZONE = "Asia/Dubai"
NIGHTLY_CRON = "0 2 * * *"


def deployments(max_rows: int | None = None, epochs: int | None = None) -> list:
    """The runner deployments: nightly (cron, Asia/Dubai, one at a time) and publication."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.nightly import nightly_synthesis, publish_approved

    nightly = nightly_synthesis.to_deployment(
        name="nightly",
        schedules=[Cron(NIGHTLY_CRON, timezone=TIMEZONE)],
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        parameters={"datasets": None, "max_rows": max_rows, "epochs": epochs},
        description="Synthesise, audit and gate every catalogued dataset.",
        tags=["pulse-synth", "nightly"],
    )
    publish = publish_approved.to_deployment(
        name="publish-approved",
        interval=timedelta(minutes=15),
        concurrency_limit=1,
        description="Publish steward-approved candidates to published/.",
        tags=["pulse-synth", "governance"],
    )
    return [nightly, publish]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve")
    parser.add_argument("--max-rows", type=int, help="row slice for every scheduled run")
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args(argv)
    from prefect import serve

    from flows.server import owned_api_server

    # Without PREFECT_API_URL: a temporary server owned by this process (dies with it).
    with owned_api_server():
        serve(*deployments(args.max_rows, args.epochs))


if __name__ == "__main__":
    main()
