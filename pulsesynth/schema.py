"""The declared schema: public knowledge about a dataset, written by hand from its codebook.

A schema file (``schemas/<dataset>.yaml``) states, for every column, its type, role,
nullability and *public* domain (category list or numeric bounds with public bin
edges), plus the dataset's catalog facts (classification, target, row key, privacy
unit, privacy budget). Everything downstream that needs a domain — validation, the
encoder, the audit's Gower distance — reads it from here, never from the private rows.

A column parses to one of four types, :data:`Column` = :class:`CategoricalColumn` (its
categories) | :class:`NumericColumn` (bounds, bins, scale, zero bin) | :class:`TextColumn`
(no domain) | :class:`TemporalColumn` (date, time or datetime: public bounds, a source
format, the components the synthesizer models): code that reads a domain field narrows
first (``isinstance``), so a type checker proves it never asks a numeric column for its
categories.

A temporal column is modelled as its components (:class:`ComponentColumn`, categorical
columns over public levels named ``<column>.<component>``): the model, the DP marginals,
utility and the audit see :attr:`DatasetSchema.synthesized_columns` (components in place
of their column), the synthetic table holds :attr:`DatasetSchema.released_columns`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import yaml

from pulsesynth.budget import MAX_LIFETIME_EPSILON, MAX_RUN_EPSILON
from pulsesynth.errors import SchemaError
from pulsesynth.ids import DatasetIdError, check_dataset_id
from pulsesynth.labels import DATASET_CLASSIFICATIONS
from pulsesynth.relations import Derive, Implies, Relation
from pulsesynth.source_mapping import (
    GENERATED,
    GENERATED_KEY,
    SourceMapping,
    parse_source_mapping,
)

ROLES = ("identifier", "quasi_identifier", "sensitive", "target", "other")
TEMPORAL_TYPES = ("date", "time", "datetime")
TYPES = ("categorical", "integer", "float", "text", *TEMPORAL_TYPES)
#: The components a temporal column may model, and the types each is meaningful for.
#: Weekday counts from Monday = 0 (Python's and DuckDB's ``isodow - 1``).
COMPONENTS: dict[str, tuple[str, ...]] = {
    "year": ("date", "datetime"),
    "month": ("date", "datetime"),
    "day": ("date", "datetime"),
    "weekday": ("date", "datetime"),
    "hour": ("time", "datetime"),
    "minute": ("time", "datetime"),
}
#: Source classifications, from their owner (a superset of the release labels).
CLASSIFICATIONS = DATASET_CLASSIFICATIONS
SCALES = ("linear", "log")
#: Schema and policy files are a few KB; anything above this is refused unread.
MAX_YAML_BYTES = 1_000_000
#: Nesting a schema or policy file may use (a schema needs 4: columns, a column, its bins).
MAX_YAML_DEPTH = 32


#: A declared category: a codebook list is all strings or all integers, never mixed.
Category = str | int


@dataclass(frozen=True, kw_only=True)
class ColumnBase:
    """What every declared column states, whatever its type (see :data:`Column`)."""

    name: str
    type: str
    role: str
    nullable: bool = False
    description: str = ""
    synthesize: bool = True

    @property
    def is_numeric(self) -> bool:
        """Whether the column is an integer or float one (a :class:`NumericColumn`)."""
        return self.type in ("integer", "float")

    @property
    def is_synthesized(self) -> bool:
        """Whether the synthesizer models this column (identifiers and free text never)."""
        return self.synthesize and self.role != "identifier" and self.type != "text"


@dataclass(frozen=True, kw_only=True)
class CategoricalColumn(ColumnBase):
    """A column whose public domain is its codebook's category list."""

    type: Literal["categorical"] = "categorical"
    categories: tuple[Category, ...]


@dataclass(frozen=True, kw_only=True)
class NumericColumn(ColumnBase):
    """An integer or float column: public bounds and bin edges (``bins`` spans the bounds;
    a column declared without bins, never synthesized, has the one bin ``[low, high]``)."""

    type: Literal["integer", "float"]
    bounds: tuple[float, float]
    bins: tuple[float, ...]
    scale: str = "linear"
    #: Values the codebook gives a meaning of their own (``0`` = none, ``45`` = "no virus
    #: detected"), ascending: each is a level of its own and is released exactly, not
    #: redrawn inside its bin. ``zero_bin: true`` in the YAML declares ``0``.
    exact_values: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TextColumn(ColumnBase):
    """Free text with no public domain: stored and validated, never synthesized."""

    type: Literal["text"] = "text"


#: A temporal value: ``datetime.datetime`` is a ``datetime.date``, so this covers all three.
Temporal = dt.date | dt.time


@dataclass(frozen=True, kw_only=True)
class TemporalColumn(ColumnBase):
    """A date, time or datetime column: public ``bounds`` (inclusive), the strptime
    ``format`` of its text in a CSV source (``None``: typed sources only), and the
    ``components`` the synthesizer models, each over public levels (:meth:`levels`)."""

    type: Literal["date", "time", "datetime"]
    bounds: tuple[Temporal, Temporal]
    format: str | None = None
    components: tuple[str, ...] = ()

    @property
    def is_synthesized(self) -> bool:
        """Modelled when synthesized and declared with at least one component."""
        return self.synthesize and self.role != "identifier" and bool(self.components)

    def levels(self, component: str) -> tuple[int, ...]:
        """A component's public levels: years from the bounds, hours from a time column's
        bounds, otherwise the calendar's fixed ranges (month 1-12, day 1-31, weekday 0-6,
        hour 0-23, minute 0-59). Never from rows."""
        low, high = self.bounds
        if component == "year":
            assert isinstance(low, dt.date) and isinstance(high, dt.date)
            return tuple(range(low.year, high.year + 1))
        if component == "hour" and isinstance(low, dt.time) and isinstance(high, dt.time):
            return tuple(range(low.hour, high.hour + 1))
        first, last = {"month": (1, 12), "day": (1, 31), "weekday": (0, 6),
                       "hour": (0, 23), "minute": (0, 59)}[component]
        return tuple(range(first, last + 1))

    def component_columns(self) -> tuple[ComponentColumn, ...]:
        """The categorical columns the synthesizer models in this column's place."""
        return tuple(
            ComponentColumn(name=f"{self.name}.{part}", role=self.role, nullable=self.nullable,
                            description=f"{part} of {self.name}", categories=self.levels(part),
                            parent=self, component=part)
            for part in self.components)


@dataclass(frozen=True, kw_only=True)
class ComponentColumn(CategoricalColumn):
    """One component of a :class:`TemporalColumn`, modelled as a categorical column over
    its public integer levels; its values are derived from ``parent``'s (never stored)."""

    parent: TemporalColumn = field(repr=False)
    component: str


#: One declared column: the union is closed, so ``isinstance`` (or a test of ``type``)
#: tells a type checker which domain fields the column has.
Column = CategoricalColumn | NumericColumn | TextColumn | TemporalColumn

#: A column with a declared public domain: the only kinds the synthesizer models.
DomainColumn = CategoricalColumn | NumericColumn


@dataclass(frozen=True)
class PrivacyPolicy:
    """Per-run target and lifetime budget for one dataset."""

    epsilon: float
    delta: float | None
    lifetime_epsilon: float
    refresh_days: int
    max_rows_per_unit: int = 1


@dataclass(frozen=True)
class DatasetSchema:
    """A dataset's declaration: catalog facts plus its columns."""

    id: str
    title: str
    description: str
    classification: str
    steward: str
    source: dict[str, str]
    target: str | None
    row_key: tuple[str, ...]
    privacy_unit: tuple[str, ...]
    min_rows: int
    privacy: PrivacyPolicy
    columns: tuple[Column, ...]
    relations: tuple[Relation, ...] = ()
    #: Columns the codebook says imply the target (a death implies a serious injury):
    #: synthesized and published, but never a predictor when utility is measured.
    leaks_target: tuple[str, ...] = ()
    #: How a source file maps onto the columns (``ingest:``, :mod:`pulsesynth.source_mapping`).
    ingest: SourceMapping = field(default_factory=SourceMapping)
    path: Path | None = field(default=None, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def column(self, name: str) -> Column:
        """The declared column ``name`` (KeyError when none is declared)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def target_column(self) -> CategoricalColumn | None:
        """The target's declared column (categorical by :func:`parse_schema`), if any."""
        if self.target is None:
            return None
        col = self.column(self.target)
        if not isinstance(col, CategoricalColumn):  # parse_schema refuses such a schema
            raise TypeError(f"{self.id}: target {self.target!r} is not a categorical column")
        return col

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def synthesized_columns(self) -> list[DomainColumn]:
        """The columns the synthesizer models, in schema order (never a text column); a
        temporal column appears as its :class:`ComponentColumn` s, in its place."""
        out: list[DomainColumn] = []
        for c in self.columns:
            if isinstance(c, TemporalColumn) and c.is_synthesized:
                out.extend(c.component_columns())
            elif isinstance(c, (CategoricalColumn, NumericColumn)) and c.is_synthesized:
                out.append(c)
        return out

    @property
    def released_columns(self) -> list[Column]:
        """The columns of a synthetic table, in schema order: the synthesized columns, a
        temporal one whole (not as its components)."""
        return [c for c in self.columns
                if isinstance(c, (CategoricalColumn, NumericColumn, TemporalColumn))
                and c.is_synthesized]

    @property
    def temporal_columns(self) -> list[TemporalColumn]:
        """The declared date, time and datetime columns, synthesized or not."""
        return [c for c in self.columns if isinstance(c, TemporalColumn)]

    @property
    def not_predictors(self) -> list[str]:
        """The target and the columns that leak it: left out of every prediction task."""
        return [self.target, *self.leaks_target] if self.target else []

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical declaration; keys caches and binds models to schemas."""
        canonical = json.dumps(self.raw, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_classification(self, classification: str) -> DatasetSchema:
        """A copy with another source classification (used by ``ingest --classification``)."""
        _check_choice(classification, CLASSIFICATIONS, self.path, "classification")
        raw = dict(self.raw, classification=classification)
        return parse_schema(raw, self.path)


class YAMLFileError(SchemaError):
    """A YAML file is missing, too large, not UTF-8, not YAML, or uses anchors/aliases."""


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases: a declaration never needs them,
    and aliases are how a 1 KB file expands to gigabytes ("billion laughs")."""

    _nesting = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            kind = "alias (*)" if isinstance(event, yaml.AliasEvent) else "anchor (&)"
            raise yaml.composer.ComposerError(
                None, None, f"found an {kind}: anchors and aliases are not allowed "
                "(yaml.dump writes them for a shared list: dump a deep copy)",
                event.start_mark)
        # The composer recurses once per level: thousands of "[" would end in a slow
        # RecursionError; a declaration is a few levels deep.
        if self._nesting >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
        self._nesting += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """Parse a small YAML file (schema, policy) safely: at most :data:`MAX_YAML_BYTES`, no
    anchors or aliases, no Python objects; every failure is :class:`YAMLFileError`, one
    line naming the file and the YAML problem's position (never the file's text)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError as exc:
        raise YAMLFileError(f"{path}: {what} not found") from exc
    except OSError as exc:
        raise YAMLFileError(f"{path}: cannot read {what} "
                            f"({exc.strerror or exc.__class__.__name__})") from exc
    if len(data) > MAX_YAML_BYTES:
        raise YAMLFileError(f"{path}: {what} is larger than {MAX_YAML_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLFileError(f"{path}: {what} is not UTF-8 text") from exc
    return parse_yaml(text, f"{path}: not valid YAML")


def parse_yaml(text: str, where: str = "not valid YAML") -> Any:
    """Parse YAML text with :class:`_NoAliasLoader` (what :func:`read_yaml` uses)."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YAMLFileError(f"{where} ({exc.problem or exc.context}{at})") from None
    except yaml.YAMLError as exc:
        raise YAMLFileError(f"{where} ({exc.__class__.__name__})") from None
    except RecursionError:
        # Belt and braces: the loader's depth cap answers first.
        raise YAMLFileError(f"{where} (nested too deeply)") from None


def load_schema(path: str | Path) -> DatasetSchema:
    """Read and check a schema YAML file (:func:`read_yaml`); errors name the file and the
    field."""
    path = Path(path)
    return parse_schema(read_yaml(path, "schema file"), path)


def parse_schema(raw: Any, path: Path | None = None) -> DatasetSchema:
    """Turn a parsed YAML mapping into a typed, checked :class:`DatasetSchema`."""
    if not isinstance(raw, dict):
        raise SchemaError(f"{path}: top level must be a mapping")
    where = _Where(path)
    known = {
        "id", "title", "description", "classification", "steward", "source", "target",
        "row_key", "privacy_unit", "min_rows", "privacy", "columns", "relations",
        "leaks_target", "ingest",
    }
    _no_unknown(raw, known, where, "")
    dataset_id = _req(raw, "id", str, where)
    try:
        check_dataset_id(dataset_id)
    except DatasetIdError as exc:
        raise where.error("id", str(exc)) from None
    classification = _req(raw, "classification", str, where)
    _check_choice(classification, CLASSIFICATIONS, path, "classification")

    raw_columns = _req(raw, "columns", list, where)
    if not raw_columns:
        raise where.error("columns", "must list at least one column")
    columns = tuple(_parse_column(c, i, where) for i, c in enumerate(raw_columns))
    generated = raw.get("row_key") == GENERATED
    if generated:
        columns = _with_generated_key(columns, where)
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise where.error("columns", f"duplicate column name(s): {', '.join(dupes)}")
    for col in columns:
        if isinstance(col, TemporalColumn):
            clash = [f"{col.name}.{p}" for p in col.components if f"{col.name}.{p}" in names]
            if clash:
                raise where.error("columns", f"{clash[0]} is the name of a component of "
                                  f"{col.name}; rename the column")

    target = raw.get("target")
    if target is not None:
        if target not in names:
            raise where.error("target", f"{target!r} is not a declared column")
        tcol = columns[names.index(target)]
        if not isinstance(tcol, CategoricalColumn) or tcol.role != "target":
            raise where.error("target", f"{target!r} must be a categorical column with role target")
        if len(tcol.categories) < 2:
            raise where.error("target", f"{target!r} must declare at least two classes")
    leaks = _name_list(raw.get("leaks_target"), "leaks_target", names, where)
    if leaks and target is None:
        raise where.error("leaks_target", "needs a declared target")
    if target in leaks:
        raise where.error("leaks_target", "cannot list the target itself")
    row_key = ((GENERATED_KEY,) if generated
               else _name_list(raw.get("row_key"), "row_key", names, where, required=True))
    privacy_unit = _name_list(raw.get("privacy_unit"), "privacy_unit", names, where)

    privacy_raw = _req(raw, "privacy", dict, where)
    _no_unknown(privacy_raw, {"epsilon", "delta", "lifetime_epsilon", "refresh_days",
                              "max_rows_per_unit"}, where, "privacy.")
    privacy = PrivacyPolicy(
        epsilon=_positive(privacy_raw, "epsilon", where, "privacy."),
        delta=(None if privacy_raw.get("delta") is None
               else _positive(privacy_raw, "delta", where, "privacy.")),
        lifetime_epsilon=_positive(privacy_raw, "lifetime_epsilon", where, "privacy."),
        refresh_days=int(_req(privacy_raw, "refresh_days", int, where, "privacy.")),
        max_rows_per_unit=(int(_req(privacy_raw, "max_rows_per_unit", int, where, "privacy."))
                           if privacy_raw.get("max_rows_per_unit") is not None else 1),
    )
    if privacy.delta is not None and privacy.delta >= 1:
        raise where.error("privacy.delta", "must be below 1")
    for key, value, ceiling in (("epsilon", privacy.epsilon, MAX_RUN_EPSILON),
                                ("lifetime_epsilon", privacy.lifetime_epsilon,
                                 MAX_LIFETIME_EPSILON)):
        if value > ceiling:
            raise where.error(f"privacy.{key}", f"{value:g} is above the public ceiling "
                              f"{ceiling:g} (pulsesynth/budget.py)")
    if privacy.epsilon > privacy.lifetime_epsilon:
        raise where.error("privacy.epsilon", "per-run epsilon exceeds the lifetime budget")
    if privacy.max_rows_per_unit < 1:
        raise where.error("privacy.max_rows_per_unit", "must be at least 1")

    relations = _parse_relations(raw.get("relations"), columns, where)

    source = raw.get("source") or {}
    if not isinstance(source, dict):
        raise where.error("source", "must be a mapping")
    min_rows = int(_req(raw, "min_rows", int, where)) if raw.get("min_rows") is not None else 2
    if min_rows < 2:
        raise where.error("min_rows", "must be at least 2 (a one-row table cannot be split)")

    return DatasetSchema(
        id=dataset_id,
        title=_req(raw, "title", str, where),
        description=str(raw.get("description", "")).strip(),
        classification=classification,
        steward=_req(raw, "steward", str, where),
        source={str(k): str(v) for k, v in source.items()},
        target=target,
        row_key=row_key,
        privacy_unit=privacy_unit,
        min_rows=min_rows,
        privacy=privacy,
        columns=columns,
        relations=relations,
        leaks_target=leaks,
        ingest=parse_source_mapping(raw.get("ingest"), dict(zip(names, columns, strict=True)),
                                    path, GENERATED_KEY if generated else None),
        path=path,
        raw=raw,
    )


def _parse_relations(raw: Any, columns: tuple[Column, ...],
                     where: _Where) -> tuple[Relation, ...]:
    """``relations``: codebook facts (see :mod:`pulsesynth.relations`), every value inside
    the declared domains, derived columns fixed by a categorical source's whole list."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise where.error("relations", "must be a list")
    by_name = {c.name: c for c in columns}

    def column(name: Any, at: str) -> Column:
        col = by_name.get(name) if isinstance(name, str) else None
        if col is None or not col.is_synthesized:
            raise where.error(at, f"{name!r} is not a declared synthesized column")
        return col

    def in_domain(col: Column, value: Any, at: str) -> None:
        if isinstance(col, CategoricalColumn):
            if value not in col.categories:
                raise where.error(at, f"{value!r} is not a declared category of {col.name}")
        elif not (isinstance(col, NumericColumn) and isinstance(value, (int, float))
                  and col.bounds[0] <= value <= col.bounds[1]):
            raise where.error(at, f"{value!r} is outside {col.name}'s declared bounds")

    out: list[Relation] = []
    derived: set[str] = set()
    for i, rel in enumerate(raw):
        at = f"relations[{i}]"
        if not isinstance(rel, dict):
            raise where.error(at, "must be a mapping")
        if "derive" in rel:
            _no_unknown(rel, {"derive", "from", "map"}, where, f"{at}.")
            target, source = column(rel["derive"], f"{at}.derive"), column(rel.get("from"),
                                                                            f"{at}.from")
            if not isinstance(source, CategoricalColumn) or source.name == target.name:
                raise where.error(f"{at}.from", "must be another, categorical column")
            mapping = rel.get("map")
            if not isinstance(mapping, dict) or set(mapping) != set(source.categories):
                raise where.error(f"{at}.map", f"must map every category of {source.name}")
            for key, value in mapping.items():
                in_domain(target, value, f"{at}.map.{key}")
            if target.name in derived:
                raise where.error(f"{at}.derive", f"{target.name} is derived twice")
            derived.add(target.name)
            out.append(Derive(target.name, source.name, tuple(mapping.items())))
        elif "if" in rel:
            _no_unknown(rel, {"if", "then"}, where, f"{at}.")
            parts = []
            for key in ("if", "then"):
                part = rel.get(key)
                if not isinstance(part, dict) or not part:
                    raise where.error(f"{at}.{key}", "must map columns to values")
                for name, value in part.items():
                    in_domain(column(name, f"{at}.{key}.{name}"), value, f"{at}.{key}.{name}")
                parts.append(tuple(part.items()))
            out.append(Implies(parts[0], parts[1]))
        else:
            raise where.error(at, "must be a derive: or an if:/then: relation")
    sources = {r.source for r in out if isinstance(r, Derive)}
    if derived & sources:
        raise where.error("relations", "a derived column cannot be the source of another")
    return tuple(out)


def _with_generated_key(columns: tuple[Column, ...], where: _Where) -> tuple[Column, ...]:
    """``row_key: generated``: the key column :data:`GENERATED_KEY` (1..n in the file's
    order, see :mod:`pulsesynth.source_mapping`), added first unless the schema declares
    it, in which case it must be an integer identifier."""
    for col in columns:
        if col.name == GENERATED_KEY:
            if col.type != "integer" or col.role != "identifier" or col.nullable:
                raise where.error("row_key", f"a generated key needs {GENERATED_KEY} to be a "
                                  "non-nullable integer identifier column")
            return columns
    top = float(2 ** 53)  # row numbers stay exact as doubles (GX compares bounds as floats)
    key = NumericColumn(name=GENERATED_KEY, type="integer", role="identifier", bounds=(1, top),
                        bins=(1, top), description="generated at ingest: the row number "
                        "in the source file's order (never a value from the file)")
    return (key, *columns)


# --- helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    path: Path | None

    def error(self, fieldname: str, message: str) -> SchemaError:
        return SchemaError(f"{self.path or '<schema>'}: {fieldname}: {message}")


def _check_choice(value: Any, choices: tuple[str, ...], path: Path | None, fieldname: str) -> None:
    if value not in choices:
        raise _Where(path).error(
            fieldname, f"{value!r} is not one of {', '.join(choices)}"
        )


def _no_unknown(raw: dict, known: set[str], where: _Where, prefix: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise where.error(prefix + unknown[0], "unknown field")


def _req(raw: dict, key: str, kind: type | tuple[type, ...], where: _Where,
         prefix: str = "") -> Any:
    if key not in raw or raw[key] is None:
        raise where.error(prefix + key, "is required")
    value = raw[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise where.error(prefix + key, f"must be of type {names}")
    return value


def _positive(raw: dict, key: str, where: _Where, prefix: str) -> float:
    value = _req(raw, key, (int, float), where, prefix)
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise where.error(prefix + key, "must be a positive number")
    return float(value)


def _finite_number(value: Any) -> bool:
    """A YAML number that is not ``.inf``, ``-.inf`` or ``.nan`` (nor a boolean)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _name_list(value: Any, key: str, names: list[str], where: _Where,
               required: bool = False) -> tuple[str, ...]:
    if value is None:
        if required:
            raise where.error(key, "is required")
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise where.error(key, "must be a column name or a list of column names")
    for item in items:
        if item not in names:
            raise where.error(key, f"{item!r} is not a declared column")
    return tuple(items)


class _CommonFields(TypedDict):
    """The :class:`ColumnBase` fields, parsed once and passed to every column type."""

    name: str
    role: str
    nullable: bool
    description: str
    synthesize: bool


def _parse_column(raw: Any, index: int, where: _Where) -> Column:
    """One ``columns[i]`` entry: the fields every column has, then its type's domain."""
    prefix = f"columns[{index}]"
    if not isinstance(raw, dict):
        raise where.error(prefix, "must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise where.error(f"{prefix}.name", "is required")
    prefix = f"columns[{index}] ({name})"
    _no_unknown(raw, {"name", "type", "role", "nullable", "description", "categories",
                      "bounds", "bins", "scale", "zero_bin", "exact_values", "synthesize",
                      "format", "components"}, where, prefix + ".")
    ctype = raw.get("type")
    if ctype not in TYPES:
        raise where.error(f"{prefix}.type",
                          f"unknown type {ctype!r} (expected one of {', '.join(TYPES)})")
    role = raw.get("role")
    if role not in ROLES:
        raise where.error(f"{prefix}.role",
                          f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    nullable = raw.get("nullable", False)
    if not isinstance(nullable, bool):
        raise where.error(f"{prefix}.nullable", "must be true or false")
    common: _CommonFields = {
        "name": name, "role": role, "nullable": nullable,
        "description": str(raw.get("description", "")),
        "synthesize": bool(raw.get("synthesize", True)),
    }
    if ctype in TEMPORAL_TYPES:
        return _parse_temporal(raw, ctype, common, prefix, where)
    for key in ("format", "components"):
        if key in raw:
            raise where.error(f"{prefix}.{key}", "only date, time and datetime columns have "
                              f"a {key}")
    if ctype == "categorical":
        return _parse_categorical(raw, common, prefix, where)
    if ctype == "integer" or ctype == "float":
        return _parse_numeric(raw, ctype, common, prefix, where)
    # text: free text with no public domain; stored and validated, never synthesized
    for key in ("categories", "bounds", "bins", "exact_values"):
        if key in raw:
            raise where.error(f"{prefix}.{key}", "a text column has no declared domain")
    return TextColumn(**common)


def _parse_categorical(raw: dict, common: _CommonFields, prefix: str,
                       where: _Where) -> CategoricalColumn:
    cats = raw.get("categories")
    if not isinstance(cats, list) or not cats:
        raise where.error(f"{prefix}.categories", "a categorical column needs its codebook list")
    kinds = {type(c) for c in cats}
    if not (kinds <= {str} or kinds <= {int}) or bool in kinds:
        raise where.error(f"{prefix}.categories", "must be all strings or all integers")
    if len(set(cats)) != len(cats):
        raise where.error(f"{prefix}.categories", "contains duplicates")
    for key in ("bounds", "bins", "exact_values"):
        if key in raw:
            raise where.error(f"{prefix}.{key}", f"only numeric columns have {key}")
    # ``scale`` and ``zero_bin`` are numeric options; a categorical column has always
    # accepted and ignored them, and still does (the schema hash covers them either way).
    return CategoricalColumn(categories=tuple(cats), **common)


def _parse_numeric(raw: dict, ctype: Literal["integer", "float"], common: _CommonFields,
                   prefix: str, where: _Where) -> NumericColumn:
    b = raw.get("bounds")
    if (not isinstance(b, list) or len(b) != 2
            or not all(_finite_number(x) for x in b) or not b[0] < b[1]):
        raise where.error(f"{prefix}.bounds",
                          "must be [low, high], finite numbers with low < high")
    bounds = (b[0], b[1])
    e = raw.get("bins")
    synthesized = raw.get("synthesize", True) and common["role"] != "identifier"
    if e is None and synthesized:
        raise where.error(f"{prefix}.bins", "a synthesized numeric column needs public bin edges")
    if e is None:
        e = [bounds[0], bounds[1]]
    if (not isinstance(e, list) or len(e) < 2
            or not all(_finite_number(x) for x in e)):
        raise where.error(f"{prefix}.bins", "must be a list of at least two finite numbers")
    if any(a >= b_ for a, b_ in zip(e, e[1:], strict=False)):
        raise where.error(f"{prefix}.bins", "edges must be strictly increasing")
    if e[0] != bounds[0] or e[-1] != bounds[1]:
        raise where.error(f"{prefix}.bins", "first and last edge must equal the bounds")
    scale = raw.get("scale", "linear")
    if scale not in SCALES:
        raise where.error(f"{prefix}.scale", f"must be one of {', '.join(SCALES)}")
    zero_bin = bool(raw.get("zero_bin", False))
    if zero_bin and not bounds[0] <= 0 <= bounds[1]:
        raise where.error(f"{prefix}.zero_bin", "bounds must include 0")
    exact = raw.get("exact_values", [])
    if not isinstance(exact, list) or not all(_finite_number(x) for x in exact):
        raise where.error(f"{prefix}.exact_values", "must be a list of finite numbers")
    if any(not bounds[0] <= x <= bounds[1] for x in exact):
        raise where.error(f"{prefix}.exact_values", "every value must lie within the bounds")
    if ctype == "integer" and any(float(x) != int(x) for x in exact):
        raise where.error(f"{prefix}.exact_values", "an integer column's values are integers")
    if len(set(exact)) != len(exact) or (zero_bin and 0 in exact):
        raise where.error(f"{prefix}.exact_values", "contains duplicates")
    values = sorted({*exact, *([0] if zero_bin else [])})
    return NumericColumn(type=ctype, bounds=bounds, bins=tuple(e), scale=scale,
                         exact_values=tuple(values), **common)


def _parse_temporal(raw: dict, ctype: Literal["date", "time", "datetime"],
                    common: _CommonFields, prefix: str, where: _Where) -> TemporalColumn:
    """A date, time or datetime column: bounds, optional source format, components."""
    for key in ("categories", "bins", "scale", "zero_bin", "exact_values"):
        if key in raw:
            raise where.error(f"{prefix}.{key}", f"a {ctype} column has bounds and components, "
                              f"not {key}")
    b = raw.get("bounds")
    if not isinstance(b, list) or len(b) != 2:
        raise where.error(f"{prefix}.bounds", f"must be [low, high], two {ctype} values")
    low = _temporal_value(b[0], ctype, high=False, at=f"{prefix}.bounds", where=where)
    high = _temporal_value(b[1], ctype, high=True, at=f"{prefix}.bounds", where=where)
    if not low < high:  # type: ignore[operator]  # both of the one type ctype names
        raise where.error(f"{prefix}.bounds", "low must be before high")
    fmt = raw.get("format")
    if fmt is not None:
        if not isinstance(fmt, str) or "%" not in fmt:
            raise where.error(f"{prefix}.format",
                              "must be a strptime format such as '%d/%m/%Y'")
        try:  # the format must read back what it writes, at both bounds
            for value in (low, high):
                dt.datetime.strptime(value.strftime(fmt), fmt)  # noqa: DTZ007 - naive
        except (ValueError, TypeError):
            raise where.error(f"{prefix}.format", "cannot read back a bound written in it "
                              "(a strptime format such as '%d/%m/%Y')") from None
    parts = raw.get("components")
    synthesized = raw.get("synthesize", True) and common["role"] != "identifier"
    if parts is None:
        if synthesized:
            raise where.error(f"{prefix}.components", f"a synthesized {ctype} column needs "
                              f"the components to model, e.g. {_EXAMPLE_COMPONENTS[ctype]}")
        parts = []
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts) or (
            synthesized and not parts):
        raise where.error(f"{prefix}.components", "must be a list of component names")
    for part in parts:
        if part not in COMPONENTS:
            raise where.error(f"{prefix}.components", f"unknown component {part!r} "
                              f"(expected one of {', '.join(COMPONENTS)})")
        if ctype not in COMPONENTS[part]:
            allowed = ", ".join(c for c, types in COMPONENTS.items() if ctype in types)
            raise where.error(f"{prefix}.components", f"{part!r} is not a component of a "
                              f"{ctype} (expected one of {allowed})")
    if len(set(parts)) != len(parts):
        raise where.error(f"{prefix}.components", "contains duplicates")
    return TemporalColumn(type=ctype, bounds=(low, high), format=fmt,
                          components=tuple(parts), **common)


_EXAMPLE_COMPONENTS = {"date": "[year, month, weekday]", "time": "[hour]",
                       "datetime": "[year, month, weekday, hour]"}


def _temporal_value(value: Any, ctype: str, *, high: bool, at: str, where: _Where) -> Temporal:
    """One bound as a ``date``, ``time`` or naive ``datetime``: ISO text (quoted), or the
    date/datetime YAML reads from an unquoted one. A date alone bounding a datetime column
    means the start of that day (low) or its last second (high)."""
    try:
        if ctype == "time":
            if not isinstance(value, str):
                # YAML reads an unquoted 23:59 as the base-60 integer 1439
                raise ValueError
            return dt.time.fromisoformat(value)
        if isinstance(value, str):
            value = (dt.datetime.fromisoformat(value) if ctype == "datetime" and
                     ("T" in value or " " in value) else dt.date.fromisoformat(value))
        if isinstance(value, dt.datetime):
            if ctype == "date":
                raise ValueError
            if value.tzinfo is not None:
                raise where.error(at, "must be local times without a time-zone offset")
            return value
        if isinstance(value, dt.date):
            if ctype == "date":
                return value
            return dt.datetime.combine(value, dt.time(23, 59, 59) if high else dt.time())
    except ValueError:
        pass
    example = {"date": "['2015-01-01', '2025-12-31']", "time": "['00:00', '23:59']",
               "datetime": "['2015-01-01 00:00', '2025-12-31 23:59']"}[ctype]
    raise where.error(at, f"must be two ISO {ctype} values in quotes, e.g. {example}")
