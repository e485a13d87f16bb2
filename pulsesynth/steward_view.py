"""A steward's view of dirty data: the unexpected values behind a failed validation.

Validation reports are value-free (they reach logs, Prefect and ``state/``). A steward
cleaning an export needs the values themselves — ``' 10 - 19'`` among the age bands, a
``temple`` among the accident types — and ``pulsesynth validate ID --file F
--show-values`` gives them, **to the steward's terminal only**: this module returns them
to its caller and never logs, stores or hands them to GX; the CLI prints them on stdout.

For each failing declared column it lists the unexpected values with their row counts
(the top :data:`TOP` and how many more), and suggests a schema fragment: a ``recode:``
entry for the schema's ``ingest:`` block where a label's normalised form (stripped,
spaces removed, case-folded) matches exactly one declared level, or the declared list
with the other labels added. Numeric and date/time columns get no bounds suggestion:
bounds come from the codebook, never from the file's minimum or maximum. A date/time
column's cells that do not read in its declared ``format`` (Excel's ``#########``) are
suggested as missing where the column is nullable.

With ``--show-values`` it also lists **point masses**: a value of a synthesized numeric
column that holds at least :data:`POINT_MASS_SHARE` of its rows and is not a declared
exact value. The release draws such a value across its public bin; a model trained on
the synthetic table may then split inside the bin and send every real row holding the
value to one side (measured on patient_tests, where 94% of ``ct_result`` is 45, the edge
of the bin [45, 50]: TSTR accuracy 0.44–0.96 over four fits until 45 was declared). The
steward declares ``exact_values`` only where the codebook gives the value a meaning of
its own — the value then becomes public with the schema.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pulsesynth.schema import CategoricalColumn, DatasetSchema, NumericColumn, TemporalColumn
from pulsesynth.source_mapping import is_number
from pulsesynth.temporal import parse_text
from pulsesynth.validation import ValidationReport

if TYPE_CHECKING:
    import duckdb

    from pulsesynth.paths import Paths

#: Values listed per column; the rest are counted ("and K more").
TOP = 20
#: A numeric value holding at least this share of its column's in-bounds rows is shown
#: as a point mass (a codebook value such as 0 = none or 45 = "not detected" usually is).
POINT_MASS_SHARE = 0.2

#: Said before any value is printed: where values go, and what copying one into the
#: schema means.
CAVEAT = ("from the file, on this terminal only (never logged or stored); a label "
          "copied into the schema becomes public with it")


@dataclass(frozen=True)
class ColumnValues:
    """A failing column's unexpected values (private: for the steward's terminal)."""

    column: str
    rows: int  # rows holding an unexpected value
    distinct: int  # distinct unexpected values
    top: tuple[tuple[str, int], ...]  # (value as text, rows), most frequent first
    recode: dict[str, Any] = field(default_factory=dict)  # value → declared level
    accept: tuple[Any, ...] = ()  # values that could be added as levels
    note: str = ""

    @property
    def more(self) -> int:
        """Distinct values not listed in :attr:`top`."""
        return self.distinct - len(self.top)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "rows": self.rows, "distinct": self.distinct,
                "values": [{"value": v, "rows": n} for v, n in self.top],
                "more": self.more, "suggest_recode": self.recode,
                "suggest_levels": list(self.accept), "note": self.note}


@dataclass(frozen=True)
class PointMass:
    """A value holding a large share of a numeric column (private: steward's terminal)."""

    column: str
    value: float | int
    rows: int  # rows holding the value
    share: float  # of the column's in-bounds rows
    bin: tuple[float, float]  # the public bin the release draws it across

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "value": self.value, "rows": self.rows,
                "share": self.share, "bin": list(self.bin)}


def normalise(label: str) -> str:
    """A label's comparison form: no whitespace anywhere, case-folded."""
    return "".join(label.split()).casefold()


def file_values(file: str | Path, schema: DatasetSchema, paths: Paths | None = None,
                top: int = TOP) -> tuple[ValidationReport, list[ColumnValues]]:
    """Validate ``file`` as ingest would (its ``ingest:`` mapping applied) and, for each
    failing declared column, its unexpected values. Stores nothing."""
    from pulsesynth.validation import validate_relation
    from pulsesynth.warehouse import staged_file

    with staged_file(file, schema, paths) as (con, relation):
        report = validate_relation(con, relation, schema)
        return report, unexpected_values(con, relation, schema, report, top)


def file_point_masses(file: str | Path, schema: DatasetSchema,
                      paths: Paths | None = None) -> list[PointMass]:
    """:func:`point_masses` of ``file`` read as ingest reads it. Stores nothing."""
    from pulsesynth.warehouse import staged_file

    with staged_file(file, schema, paths) as (con, relation):
        return point_masses(con, relation, schema)


def table_values(path: Path, schema: DatasetSchema, report: ValidationReport,
                 top: int = TOP) -> list[ColumnValues]:
    """The unexpected values of a stored warehouse table (a Parquet version file)."""
    import duckdb

    con = duckdb.connect()
    try:
        return unexpected_values(con, f"read_parquet({_literal(path)})", schema, report, top)
    finally:
        con.close()


def table_point_masses(path: Path, schema: DatasetSchema) -> list[PointMass]:
    """:func:`point_masses` of a stored warehouse table (a Parquet version file)."""
    import duckdb

    con = duckdb.connect()
    try:
        return point_masses(con, f"read_parquet({_literal(path)})", schema)
    finally:
        con.close()


def point_masses(con: duckdb.DuckDBPyConnection, relation: str, schema: DatasetSchema,
                 min_share: float = POINT_MASS_SHARE) -> list[PointMass]:
    """Values of synthesized numeric columns holding at least ``min_share`` of the
    column's in-bounds rows and not declared in its ``exact_values``, most frequent
    first, each with the public bin the release would draw it across."""
    present = {str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    out: list[PointMass] = []
    for col in schema.columns:
        if not (isinstance(col, NumericColumn) and col.is_synthesized
                and col.name in present):
            continue
        value = f"TRY_CAST({_quote(col.name)} AS DOUBLE)"
        inside = (f"{value} IS NOT NULL AND isfinite({value}) "
                  f"AND {value} BETWEEN {col.bounds[0]!r} AND {col.bounds[1]!r}")
        listed = con.execute(
            f"WITH v AS (SELECT {value} AS x FROM {relation} WHERE {inside}) "
            "SELECT x, count(*) AS n, (SELECT count(*) FROM v) AS total FROM v "
            "GROUP BY x ORDER BY n DESC, x LIMIT 5").fetchall()
        for x, n, total in listed:
            if n < min_share * total:
                break
            if any(x == e for e in col.exact_values):
                continue
            low, high = _bin_of(col, x)
            if col.type == "integer" and _integers_in(col, low, high) == 1:
                continue  # an integer bin of one value already releases it exactly
            shown: float | int = int(x) if col.type == "integer" else float(x)
            out.append(PointMass(col.name, shown, int(n), n / total, (low, high)))
    return out


def _integers_in(col: NumericColumn, low: float, high: float) -> int:
    """Integers an integer column's bin [low, high) holds ([low, high] for the last)."""
    last = high == col.bins[-1]
    top = math.floor(high) if last else math.ceil(high) - 1
    return max(0, top - math.ceil(low) + 1)


def _bin_of(col: NumericColumn, x: float) -> tuple[float, float]:
    """The public bin holding ``x`` (bins are [a, b), the last [a, b]), as the encoder
    assigns it."""
    edges = col.bins
    i = max(0, min(bisect.bisect_right(edges, x) - 1, len(edges) - 2))
    return float(edges[i]), float(edges[i + 1])


def unexpected_values(con: duckdb.DuckDBPyConnection, relation: str, schema: DatasetSchema,
                      report: ValidationReport, top: int = TOP) -> list[ColumnValues]:
    """For each declared categorical, numeric or date/time column with a failed
    expectation, the values outside its declared domain (null is a not-null failure,
    counted in the report: no value to show)."""
    failing = {f.column for f in report.failed if f.column}
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    present = {str(r[0]) for r in described}
    types = {str(r[0]): str(r[1]) for r in described}
    out = []
    for col in schema.columns:
        if col.name not in failing or col.name not in present:
            continue
        name = _quote(col.name)
        text = f"CAST({name} AS VARCHAR)"
        if isinstance(col, CategoricalColumn):
            levels = ", ".join(_literal(str(c)) for c in col.categories)
            bad = f"{text} NOT IN ({levels})"
        elif isinstance(col, NumericColumn):
            value = f"TRY_CAST({name} AS DOUBLE)"
            integral = f" OR {value} <> round({value})" if col.type == "integer" else ""
            bad = (f"({value} IS NULL OR NOT isfinite({value}) OR {value} < {col.bounds[0]!r}"
                   f" OR {value} > {col.bounds[1]!r}{integral})")
        elif isinstance(col, TemporalColumn):
            temporal = _temporal_misfit(col, name, types[col.name])
            if temporal is None:
                continue  # neither text nor the column's type: the type check counts it
            bad = temporal
        else:
            continue  # free text has no domain to fall outside
        where = f"{name} IS NOT NULL AND {bad}"
        rows, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT {text}) FROM {relation} WHERE {where}").fetchone() \
            or (0, 0)
        if not rows:
            continue
        listed = con.execute(
            f"SELECT {text} AS v, count(*) AS n FROM {relation} WHERE {where} "
            f"GROUP BY v ORDER BY n DESC, v LIMIT {int(top)}").fetchall()
        shown = tuple((str(v), int(n)) for v, n in listed)
        out.append(_suggest(col, int(rows), int(distinct), shown,
                            typed=types[col.name] != "VARCHAR"))
    return out


_SQL_TEMPORAL = {"date": "DATE", "time": "TIME", "datetime": "TIMESTAMP"}


def _temporal_misfit(col: TemporalColumn, name: str, typ: str) -> str | None:
    """SQL true for a cell of a date/time column that does not read in the declared
    format or falls outside the bounds; ``None`` when the stored type is neither text
    nor the column's own."""
    target = _SQL_TEMPORAL[col.type]
    low, high = (f"CAST({_literal(b.isoformat())} AS {target})" for b in col.bounds)
    if typ == "VARCHAR":
        if col.format is None:
            return "TRUE"  # text with no declared format: every cell is unreadable
        value = f"CAST(try_strptime(trim({name}), {_literal(col.format)}) AS {target})"
    elif typ == target:
        value = name
    else:
        return None
    return f"({value} IS NULL OR {value} < {low} OR {value} > {high})"


def _suggest(col: CategoricalColumn | NumericColumn | TemporalColumn, rows: int,
             distinct: int, shown: tuple[tuple[str, int], ...],
             typed: bool = False) -> ColumnValues:
    """Suggestions for the values shown: recode to a level they normalise to, else add
    them as levels (categorical); missing for placeholders of a nullable number or
    date/time column (``typed``: the column is stored as its date/time type, so every
    value shown is a value outside the bounds)."""
    if isinstance(col, TemporalColumn):
        unreadable = [] if typed else [v for v, _ in shown if parse_text(v, col) is None]
        notes = []
        if unreadable:
            declared = (f"in the declared format {col.format!r}" if col.format else
                        "(no format is declared to read text)")
            notes.append(
                f"not a {col.type} {declared} (Excel writes "
                "######### when a column is too narrow: widen it and export again)"
                + ("; or recode it to null if the value is lost" if col.nullable else
                   "; or declare the column nullable and recode it to null if the value "
                   "is lost"))
        if len(unreadable) < len(shown):
            notes.append("outside the declared bounds: check the codebook's bounds (never "
                         "the file's earliest or latest) or clean the file")
        return ColumnValues(col.name, rows, distinct, shown,
                            recode=dict.fromkeys(unreadable) if col.nullable else {},
                            note="; ".join(notes))
    if isinstance(col, NumericColumn):
        words = [v for v, _ in shown if not is_number(v)]
        notes = []
        if words:
            notes.append("text among numbers: recode it to null if the codebook says it "
                         "means missing" if col.nullable else "text among numbers: fix the "
                         "export, or declare the column nullable and recode it to null if "
                         "the codebook says it means missing")
        if len(words) < len(shown):
            notes.append("numbers outside the declared bounds: check the codebook's bounds "
                         "(never the file's minimum or maximum) or clean the file")
        return ColumnValues(col.name, rows, distinct, shown,
                            recode=dict.fromkeys(words) if col.nullable else {},
                            note="; ".join(notes))
    by_form: dict[str, list[Any]] = {}
    for level in col.categories:
        by_form.setdefault(normalise(str(level)), []).append(level)
    recode: dict[str, Any] = {}
    accept: list[Any] = []
    integers = all(isinstance(c, int) for c in col.categories)
    for value, _ in shown:
        matches = by_form.get(normalise(value), [])
        if len(matches) == 1:
            recode[value] = matches[0]
        elif integers:
            if _is_int(value):
                accept.append(int(value))
        else:
            accept.append(value)
    return ColumnValues(col.name, rows, distinct, shown, recode=recode, accept=tuple(accept))


def render(values: list[ColumnValues], schema: DatasetSchema) -> list[str]:
    """The steward's lines: values with counts, then the suggested fragments."""
    if not values:
        return []
    lines = [f"unexpected values — {CAVEAT}:"]
    for cv in values:
        lines.append(f"  {cv.column}: {cv.rows} row(s), {cv.distinct} distinct value(s)")
        width = max(len(str(n)) for _, n in cv.top)
        lines += [f"    {n:>{width}}  {v!r}" for v, n in cv.top]
        if cv.more:
            lines.append(f"    and {cv.more} more value(s)")
        if cv.note:
            lines.append(f"    note: {cv.note}")
    recode = {cv.column: cv.recode for cv in values if cv.recode}
    if recode:
        lines.append("suggestion: clean them at ingest — add to the schema's ingest: block:")
        lines += _yaml({"ingest": {"recode": recode}})
    accept = [cv for cv in values if cv.accept]
    if accept:
        lines.append(f"suggestion: {'or, ' if recode else ''}if the codebook has them, "
                     "accept them as levels:")
        fragment = []
        for cv in accept:
            col = schema.column(cv.column)
            if isinstance(col, CategoricalColumn):
                fragment.append({"name": col.name,
                                 "categories": [*col.categories, *cv.accept]})
        lines += _yaml({"columns": fragment})
        if any(cv.more for cv in accept):
            lines.append("  (only the values listed above are in these fragments)")
    return lines


def render_point_masses(masses: list[PointMass], schema: DatasetSchema) -> list[str]:
    """The steward's lines for point masses, and the ``exact_values`` fragment to declare
    where the codebook gives a value a meaning of its own."""
    if not masses:
        return []
    lines = ["point masses — from the rows, on this terminal only (never logged or stored); "
             "a value copied into the schema becomes public with it:"]
    for pm in masses:
        col = schema.column(pm.column)
        assert isinstance(col, NumericColumn)
        low, high = pm.bin
        closing = "]" if high == col.bins[-1] else ")"
        lines.append(f"  {pm.column}: {pm.value!r} holds {pm.share:.0%} of rows ({pm.rows}); "
                     f"the release draws it across its bin [{_num(low)}, {_num(high)}{closing}")
    lines.append("suggestion: if the codebook gives a value a meaning of its own (0 = none, "
                 "a 'not detected' code), declare it exact — released exactly, a level of "
                 "its own:")
    fragment = []
    for name in dict.fromkeys(pm.column for pm in masses):
        col = schema.column(name)
        assert isinstance(col, NumericColumn)
        new = [pm.value for pm in masses if pm.column == name]
        declared = [int(e) if col.type == "integer" else e for e in col.exact_values]
        fragment.append({"name": name, "exact_values": sorted([*declared, *new])})
    lines += _yaml({"columns": fragment})
    return lines


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _yaml(data: dict[str, Any]) -> list[str]:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88,
                          default_flow_style=None)
    return ["    " + line for line in text.splitlines()]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'
