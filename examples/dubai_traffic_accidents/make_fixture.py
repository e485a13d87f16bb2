"""Write the worked example's fixture: a FAKE Dubai Pulse "Traffic Accidents" export.

Every row is drawn here from made-up frequencies with a fixed seed — no real accident,
person or insurer is in these files. The export's shape is the real one: one row per
person, no key, the published column list in upper case, an index column left by pandas
(``Unnamed: 0``), dates as ``%d/%m/%Y`` text and times as ``%H:%M``.

Two files, beside this script:

- ``accidents_export.csv``: 800 clean rows, every value inside the declared domains of
  ``dubai_traffic_accidents.yaml``.
- ``accidents_export_dirty.csv``: the same rows with what a steward met in real exports
  (issue #23): age bands ``' 10 - 19'`` (5 rows) and ``'80- 89'`` (3 rows), a ``temple``
  among the accident types (1 row) and Excel's ``#########`` in the date column (4 rows).

Run from the project root: ``.venv/bin/python examples/dubai_traffic_accidents/make_fixture.py``
(the output is byte-identical on every run; a test checks the committed files match).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 23  # a fixture, not a private run: a fixed seed is right here
ROWS = 800

HEADER = ["Unnamed: 0", "ACD_DATE", "ACD_TIME", "ACD_LOCATION", "ACD_TYPE", "ACD_CAUSE",
          "WEATHER", "ROAD_STATUS", "AGE", "GENDER", "INJURY_SEVERITIES", "INTOXICATION",
          "SEAT_BELT_STATUS", "YEAR_MANUFACTURED", "INSURANCE_COMPANY_NAME"]

LOCATIONS = ["Deira", "Bur Dubai", "Al Barsha", "Al Quoz", "Jumeirah", "Business Bay",
             "Dubai Marina", "Al Qusais", "Jebel Ali", "Hatta", "other"]
TYPES = (["collision", "run-over", "rollover", "fall", "fire", "other"],
         [60, 15, 12, 6, 2, 5])
CAUSES = (["speeding", "sudden swerving", "not keeping distance", "lack of attention",
           "running a red light", "driving under the influence", "wrong entry", "other"],
          [20, 18, 22, 20, 6, 4, 4, 6])
WEATHER = (["clear", "cloudy", "rain", "fog", "dust", "other"], [80, 8, 4, 3, 4, 1])
ROAD = (["dry", "wet", "sandy", "under maintenance", "other"], [85, 6, 4, 4, 1])
AGES = (["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89",
         "90+"], [3, 9, 32, 27, 15, 8, 4, 1, 1, 0.2])
INTOXICATION = (["none", "alcohol", "drugs", "unknown"], [88, 6, 2, 4])
SEVERITIES = ["slight", "moderate", "severe", "death"]
INSURERS = [f"Fixture Insurer {c}" for c in "ABCDE"]  # plainly fake names

FIRST, LAST = dt.date(2015, 1, 1), dt.date(2025, 12, 31)


def pick(rng: random.Random, table: tuple[list[str], list[float]]) -> str:
    """One label drawn with the table's weights."""
    labels, weights = table
    return rng.choices(labels, weights)[0]


def fake_row(rng: random.Random, index: int) -> list[str]:
    """One made-up person of one made-up accident, as the export would write it."""
    day = FIRST + dt.timedelta(days=rng.randrange((LAST - FIRST).days + 1))
    hour = rng.choices(range(24), [1, 1, 1, 1, 1, 2, 4, 7, 7, 5, 4, 4,
                                   5, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2])[0]
    kind = pick(rng, TYPES)
    cause = pick(rng, CAUSES)
    intox = pick(rng, INTOXICATION)
    pedestrian = kind == "run-over" and rng.random() < 0.7
    belt = ("not applicable" if pedestrian else
            rng.choices(["fastened", "not fastened", "unknown"], [70, 22, 8])[0])
    # Severity depends on what a codebook would make plausible: belts, speed, run-overs.
    risk = (1.0 + 1.2 * (belt == "not fastened") + 1.0 * (cause == "speeding")
            + 1.5 * (kind in ("run-over", "rollover")) + 0.8 * (intox != "none"))
    severity = rng.choices(SEVERITIES, [6.0, 2.0 * risk, 0.8 * risk ** 1.5,
                                        0.15 * risk ** 2])[0]
    year = "" if pedestrian else str(rng.randint(max(1990, day.year - 25), day.year))
    insurer = "" if pedestrian or rng.random() < 0.1 else rng.choice(INSURERS)
    return [str(index), day.strftime("%d/%m/%Y"), f"{hour:02d}:{rng.randrange(60):02d}",
            rng.choice(LOCATIONS), kind, cause, pick(rng, WEATHER), pick(rng, ROAD),
            pick(rng, AGES), rng.choices(["male", "female"], [78, 22])[0], severity, intox,
            belt, year, insurer]


#: Dirty cells: (column, value, how many rows), planted in rows chosen by the seed.
DIRT = [("AGE", " 10 - 19", 5), ("AGE", "80- 89", 3), ("ACD_TYPE", "temple", 1),
        ("ACD_DATE", "#########", 4)]


def make() -> tuple[str, str]:
    """The clean and the dirty export's text."""
    rng = random.Random(SEED)
    rows = [fake_row(rng, i) for i in range(ROWS)]
    dirty = [list(r) for r in rows]
    chosen = rng.sample(range(ROWS), sum(n for _, _, n in DIRT))
    for column, value, count in DIRT:
        for _ in range(count):
            dirty[chosen.pop()][HEADER.index(column)] = value
    return _csv(rows), _csv(dirty)


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue()


def main() -> None:
    clean, dirty = make()
    (HERE / "accidents_export.csv").write_text(clean, encoding="utf-8")
    (HERE / "accidents_export_dirty.csv").write_text(dirty, encoding="utf-8")


if __name__ == "__main__":
    main()
