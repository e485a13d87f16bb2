"""The reliability suite's figures: each ``test_reliability_*`` module records what it saw.

``make test-reliability`` sets ``PULSESYNTH_RELIABILITY_RESULTS`` to
``benchmarks/results/reliability.json``; each section is merged into that file as its
module finishes, and the top-level totals the issue asks for (``cases``,
``refused_cleanly``, ``value_leaks``, ``warehouse_changed_on_refusal``, ``kill_trials``,
``inconsistencies``, ``double_charges``, ``load``) are recomputed from every section on
each write, so a partial run (one module) updates its own section and leaves the others.
Without the variable nothing is written: the suite's assertions are the test.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV = "PULSESYNTH_RELIABILITY_RESULTS"


@dataclass
class InputCase:
    """One hostile input: was it refused in one clean line, did it echo a value, did it
    change the warehouse, the governance store or ``published/``?"""

    name: str
    refused_cleanly: bool
    value_leak: bool
    changed_on_refusal: bool
    exit_code: int
    seconds: float
    first_line: str = ""


@dataclass
class KillTrial:
    """One kill -9 (or injected fault) and what the next reader saw."""

    target: str
    stage: str
    inconsistencies: list[str] = field(default_factory=list)
    double_charges: int = 0
    orphans: int = 0


@dataclass
class Section:
    """What one module of the suite measured."""

    name: str
    cases: list[InputCase] = field(default_factory=list)
    kills: list[KillTrial] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self) -> None:
        """Merge this section into the results file named by :data:`ENV` (if set)."""
        target = os.environ.get(ENV)
        if not target:
            return
        path = Path(target)
        data: dict[str, Any] = {}
        if path.is_file():
            data = json.loads(path.read_text("utf-8"))
        sections = data.get("sections", {})
        sections[self.name] = {"cases": [asdict(c) for c in self.cases],
                               "kills": [asdict(k) for k in self.kills], **self.extra}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(totals(sections), indent=2) + "\n", "utf-8")


def totals(sections: dict[str, Any]) -> dict[str, Any]:
    """The issue's summary figures over every section, then the sections themselves."""
    cases = [c for s in sections.values() for c in s.get("cases", [])]
    kills = [k for s in sections.values() for k in s.get("kills", [])]
    load = next((s["load"] for s in sections.values() if "load" in s), None)
    return {
        "cases": len(cases),
        "refused_cleanly": sum(c["refused_cleanly"] for c in cases),
        "value_leaks": sum(c["value_leak"] for c in cases),
        "warehouse_changed_on_refusal": sum(c["changed_on_refusal"] for c in cases),
        "kill_trials": len(kills),
        "inconsistencies": sum(len(k["inconsistencies"]) for k in kills),
        "double_charges": sum(k["double_charges"] for k in kills),
        "orphaned_processes": sum(k.get("orphans", 0) for k in kills),
        "load": load,
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform(terse=True)}",
        "sections": sections,
    }
