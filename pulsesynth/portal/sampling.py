"""The portal's model-sampling service: ``GET /datasets/{id}/{version}/sample``.

Token holders of a published DP generative model's label draw ``n`` seeded synthetic rows
from it. Requests are bounded (:class:`SampleLimits`), rate limited per entity (counted in
``audit_log``, so the limit holds across portal processes and restarts) and audited, one
record per request (entity, release, n, seed; never rows). Sampling is post-processing:
nothing is charged to the privacy ledger. The model is loaded only from published files
whose SHA-256 matches the index, and cached per (directory, hashes).

The catalogue (which entries a request may see, how a published file is read safely) stays
in :mod:`pulsesynth.portal.app`; this module receives the resolved entry and a reader, so it
does not import the app (and the app's route only does access control, then delegates).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse, Response

from pulsesynth.artifacts import WEIGHTS_RELEASE_FILES
from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.paths import Paths
from pulsesynth.settings import SampleSettings

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_FORMATS = ("csv", "json")
MODEL_CACHE_SIZE = 4
#: Reads one listed file of a release with the portal's checks (``_read_published``):
#: ``(paths, entry, name, file info) -> bytes``, 404 when anything is off.
PublishedReader = Callable[[Paths, dict[str, Any], str, dict[str, Any]], bytes]


@dataclass(frozen=True)
class SampleLimits:
    """Bounds of the sample endpoint: rows per request and requests per entity per window."""

    # The defaults of the environment variables are SampleSettings' (one place).
    max_rows: int = SampleSettings.max_rows
    default_rows: int = 100
    rate_limit: int = SampleSettings.rate_limit
    window_s: int = SampleSettings.window_s

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.rate_limit < 1 or self.window_s < 1:
            raise ValueError("sample limits must be positive")
        if not 1 <= self.default_rows <= self.max_rows:
            raise ValueError("default_rows must lie in 1..max_rows")

    @classmethod
    def from_env(cls) -> SampleLimits:
        """``PULSESYNTH_SAMPLE_MAX_ROWS``, ``PULSESYNTH_SAMPLE_RATE_LIMIT`` (requests) and
        ``PULSESYNTH_SAMPLE_RATE_WINDOW`` (seconds), as read by
        :meth:`pulsesynth.settings.SampleSettings.from_env`, else the defaults."""
        env = SampleSettings.from_env()
        return cls(max_rows=env.max_rows, default_rows=min(cls.default_rows, env.max_rows),
                   rate_limit=env.rate_limit, window_s=env.window_s)


class SampleService:
    """Draws rows from published models for one portal: limits, rate limit, audit, cache."""

    def __init__(self, paths: Paths, limits: SampleLimits, clock: Callable[[], datetime],
                 read: PublishedReader) -> None:
        self.paths = paths
        self.limits = limits
        self.clock = clock
        self.models = _ModelCache(MODEL_CACHE_SIZE, read)

    def respond(self, *, entity: str, entry: dict[str, Any], dataset: str, version: str,
                n: str | None, seed: str | None, fmt: str | None, head: bool,
                client: str | None) -> Response:
        """The response to one sample request whose caller may see ``entry`` (a samplable
        release; the route checked access). 422 on bad parameters, 429 when rate limited."""
        rows, seed_value, fmt = sample_params(n, seed, fmt, self.limits)
        if head:  # no body: nothing is sampled or counted
            return Response(media_type="application/json" if fmt == "json"
                            else "text/csv; charset=utf-8")
        subject = f"{dataset}/{version}"
        detail = {"n": rows, "seed": seed_value, "format": fmt, "label": entry["label"],
                  "candidate_id": entry.get("candidate_id"), "client": client}
        limits = self.limits
        retry_after = rate_limited(self.paths, entity, subject, detail, limits, self.clock())
        if retry_after is not None:
            raise HTTPException(429, detail=f"rate limit: at most {limits.rate_limit} sample "
                                f"requests per {limits.window_s} s per entity; retry in "
                                f"{retry_after} s", headers={"Retry-After": str(retry_after)})
        synth = self.models.get(self.paths, entry)
        # Imported here: the generative stack is heavy and only a sample request needs it.
        from pulsesynth.synth.release import sample_rows

        table = sample_rows(synth, rows, seed_value)
        if fmt == "json":
            body = {"id": dataset, "version": version, "kind": "model", "n": rows,
                    "seed": seed_value, "columns": [str(c) for c in table.columns],
                    "rows": json.loads(_iso_temporal(table).to_json(orient="records"))}
            return JSONResponse(body)
        return Response(table.to_csv(index=False, lineterminator="\n"),
                        media_type="text/csv; charset=utf-8", headers={
                            "content-disposition": f'attachment; filename="{dataset}-'
                            f'{version}-sample-n{rows}-seed{seed_value}.csv"'})


def sample_params(n: str | None, seed: str | None, fmt: str | None,
                  limits: SampleLimits) -> tuple[int, int, str]:
    """Parse and bound the sample request; 422 with a message naming the bound."""
    def integer(value: str | None, name: str, default: int) -> int:
        if value is None or value.strip() == "":
            return default
        if not re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
            raise HTTPException(422, detail=f"{name} must be an integer")
        return int(value)

    rows = integer(n, "n", limits.default_rows)
    if not 1 <= rows <= limits.max_rows:
        raise HTTPException(422, detail=f"n must be between 1 and {limits.max_rows} rows per "
                                        f"request (got {rows})")
    seed_value = integer(seed, "seed", 0)
    if not 0 <= seed_value < 2**63:
        raise HTTPException(422, detail="seed must be between 0 and 2^63 - 1")
    fmt = (fmt or "csv").strip().lower()
    if fmt not in SAMPLE_FORMATS:
        raise HTTPException(422, detail=f"format must be one of {', '.join(SAMPLE_FORMATS)}")
    return rows, seed_value, fmt


def rate_limited(paths: Paths, entity: str, subject: str, detail: dict[str, Any],
                 limits: SampleLimits, now: datetime) -> int | None:
    """Record the request in ``audit_log``; when the entity already made ``rate_limit``
    sample requests in the window, record a refusal instead and return Retry-After (s).

    The count is read from ``audit_log`` inside the same write transaction, so the limit
    holds across portal processes and restarts. The window slides on sub-second time:
    ``audit_log.time`` keeps whole seconds, which let requests drop out of the window up to
    a second early (10 served inside one 10 s window at 5 per 10 s), so every request also
    records its exact instant (``at``, Unix seconds with microseconds) and the window is
    counted on that. It is wall-clock time, not ``time.monotonic``: a monotonic clock is
    per boot and cannot be compared across portal processes and restarts, which the count
    spans.
    """
    at_us = _micros(now)
    start_us = at_us - limits.window_s * 1_000_000
    # The index on (action, actor, time) narrows to the window's whole seconds (the
    # boundary second included); the exact instants, in integer microseconds, decide.
    coarse = now_iso(now - timedelta(seconds=limits.window_s + 1))
    with open_db(paths) as conn, transaction(conn):
        recent = sorted(t for t in (_instant_us(r["time"], r["at"]) for r in conn.execute(
            "SELECT time, json_extract(detail, '$.at') AS at FROM audit_log "
            "WHERE action = 'release.sample' AND actor = ? AND time >= ?",
            (entity, coarse))) if t > start_us)
        at = at_us / 1_000_000
        if len(recent) >= limits.rate_limit:
            oldest = recent[len(recent) - limits.rate_limit]
            retry = max(1, math.ceil((oldest - start_us) / 1_000_000))
            log_event(conn, entity, "release.sample_refused", subject,
                      detail | {"reason": "rate limit", "retry_after": retry, "at": at}, now)
            return retry
        log_event(conn, entity, "release.sample", subject, detail | {"at": at}, now)
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float rounding at the window's edge)."""
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def _instant_us(time_text: str, at: Any) -> int:
    """A sample request's instant in microseconds: its recorded ``at`` (seconds, rounded
    back to the microsecond it was written from), else (a record written before ``at``
    existed) the end of its whole second, so it is never counted out early."""
    if isinstance(at, (int, float)):
        return round(at * 1_000_000)
    return _micros(datetime.fromisoformat(time_text)) + 1_000_000


class _ModelCache:
    """Loaded release models keyed by (version directory, SHA-256 of each file read)."""

    def __init__(self, size: int, read: PublishedReader) -> None:
        self.size = size
        self.read = read
        self.lock = threading.Lock()
        self.items: OrderedDict[tuple[str, ...], Any] = OrderedDict()

    def get(self, paths: Paths, entry: dict[str, Any]) -> Any:
        from pulsesynth.synth.release import load_release

        infos = {f.get("name"): f for f in entry.get("files", [])}
        if any(name not in infos for name in WEIGHTS_RELEASE_FILES):
            raise HTTPException(404)
        key = (str(paths.published.resolve() / entry["path"]),
               *(str(infos[name].get("sha256")) for name in WEIGHTS_RELEASE_FILES))
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        # Read through the same checks as downloads: listed, regular, inside published/,
        # SHA-256 equal to the index's.
        files = {name: self.read(paths, entry, name, infos[name])
                 for name in WEIGHTS_RELEASE_FILES}
        synth = load_release(files)
        with self.lock:
            self.items[key] = synth
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return synth


def _iso_temporal(table: pd.DataFrame) -> pd.DataFrame:
    """Date, time and datetime cells as ISO text (as in the CSV form), not epoch numbers."""
    import pandas as pd  # the portal imports pandas only to answer a sample request

    def iso(value: Any) -> str | None:
        if value is None or value is pd.NaT:
            return None
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        return value.isoformat() if isinstance(value, (date, time)) else None

    out = table.copy()
    for name in out.columns:
        series = out[name]
        if pd.api.types.is_datetime64_any_dtype(series) or (
                series.dtype == object and series.map(
                    lambda v: isinstance(v, (date, time))).any()):
            out[name] = series.astype(object).map(iso)
    return out
