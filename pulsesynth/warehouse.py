"""The DuckDB/Parquet warehouse: build, catalog, pull snapshots, ingest.

Parquet files under ``warehouse/tables/`` are the storage; ``warehouse/pulse.duckdb`` is
the query engine and holds the catalog (and, later, the governance tables). Every write
is validate-first and atomic. A table version is a new file, ``<id>.<snapshot>.parquet``,
that no one reads until the catalog row naming it (and the DuckDB view over it) commits in
one transaction; only then is the previous version removed. A writer killed at any point
leaves the catalog pointing at a complete file, old or new, and at most unreferenced files,
which the next writer removes (one writer at a time: ``warehouse/write.lock``).

Ingest streams: DuckDB reads the CSV or Parquet file and writes the staged Parquet file
itself, and validation runs over that file in chunks (:func:`validate_relation`), so memory
follows the chunk size, not the file. An Excel workbook is streamed by openpyxl (read-only)
into a text Parquet file first, then takes the CSV path. The schema's ``ingest:`` mapping
(:mod:`pulsesynth.source_mapping`) is applied while staging. Messages name declared
columns and counts only.
"""

from __future__ import annotations

import codecs
import csv
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pulsesynth.command import cli_command
from pulsesynth.errors import CatalogError, PulseSynthError, SourceError, ValidationFailed
from pulsesynth.frames import conform, storage_type
from pulsesynth.ids import check_dataset_id
from pulsesynth.paths import Paths
from pulsesynth.schema import (
    CategoricalColumn,
    DatasetSchema,
    NumericColumn,
    TemporalColumn,
    load_schema,
)
from pulsesynth.source_mapping import CsvDialect, SourceMapping, is_number
from pulsesynth.sources import BUILTIN_SOURCES
from pulsesynth.threads import thread_limit
from pulsesynth.validation import ValidationReport, validate, validate_relation


class WarehouseWriteError(PulseSynthError):
    """The warehouse could not be written (disk full, no permission); nothing changed."""


def _no_fault(stage: str) -> None:
    """The default fault hook: production runs every stage."""


#: Called with each stage name of a table write, in order: ``staged`` (the new Parquet file
#: is written under a temporary name), ``validated``, ``placed`` (renamed to its version
#: name, not yet catalogued), ``catalog`` (catalog row and view written, not committed),
#: ``committed``, ``done`` (the previous version removed). Tests replace it to kill the
#: process or raise an ``OSError`` at a stage; nothing else should.
FAULT_HOOK: Callable[[str], None] = _no_fault

#: pandas' default missing-value markers, so a CSV means the same through DuckDB as it did
#: through ``pandas.read_csv``.
CSV_NULLS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]

#: DuckDB's memory ceiling while staging and checking a file: the row-key uniqueness
#: aggregate spills to ``warehouse/.spill-*`` beyond it instead of growing with the table.
INGEST_MEMORY_LIMIT = "256MB"

_VERSION_FILE = re.compile(r"^(?P<id>.+)\.[0-9a-f]{16}\.parquet$")
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_ACCESS = {errno.EACCES, errno.EPERM, errno.EROFS}

CATALOG_DDL = """
CREATE TABLE IF NOT EXISTS catalog (
    id VARCHAR PRIMARY KEY,
    title VARCHAR NOT NULL,
    description VARCHAR,
    source_name VARCHAR,
    source_url VARCHAR,
    licence VARCHAR,
    classification VARCHAR NOT NULL,
    target VARCHAR,
    row_key VARCHAR NOT NULL,
    privacy_unit VARCHAR NOT NULL,
    schema_path VARCHAR NOT NULL,
    schema_hash VARCHAR NOT NULL,
    epsilon DOUBLE NOT NULL,
    delta DOUBLE,
    lifetime_epsilon DOUBLE NOT NULL,
    refresh_days INTEGER NOT NULL,
    max_rows_per_unit INTEGER NOT NULL,
    steward VARCHAR NOT NULL,
    rows BIGINT NOT NULL,
    snapshot_id VARCHAR NOT NULL,
    table_path VARCHAR NOT NULL,
    origin VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    ingest_mapping VARCHAR
)
"""

#: Columns added to the catalog after its first release: a warehouse written before gets
#: them on its next write (read-only readers see them as null until then).
CATALOG_ADDED = {"ingest_mapping": "VARCHAR"}

CATALOG_FIELDS = (
    "id", "title", "description", "source_name", "source_url", "licence", "classification",
    "target", "row_key", "privacy_unit", "schema_path", "schema_hash", "epsilon", "delta",
    "lifetime_epsilon", "refresh_days", "max_rows_per_unit", "steward", "rows", "snapshot_id",
    "table_path", "origin", "updated_at", "ingest_mapping",
)


@dataclass(frozen=True)
class Snapshot:
    """A pulled table and the content hash that identifies this version of it."""

    dataset: str
    snapshot_id: str
    frame: pd.DataFrame
    schema: DatasetSchema


@dataclass(frozen=True)
class BuildResult:
    dataset: str
    rows: int
    snapshot_id: str
    changed: bool


class Warehouse:
    """Access to one warehouse directory (default: the project's ``warehouse/``)."""

    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths or Paths.default()
        self._swept: list[Path] = []

    # --- connections ---------------------------------------------------------------------

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the warehouse database (the catalog is created on a write one)."""
        if read_only and not self.paths.database.exists():
            raise CatalogError(
                f"no warehouse at {self.paths.database}: run `{cli_command()} warehouse build`"
            )
        self.paths.tables.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.paths.database), read_only=read_only)
        try:
            if not read_only:
                con.execute(CATALOG_DDL)
                present = _catalog_columns(con)
                for name, kind in CATALOG_ADDED.items():
                    if name not in present:
                        con.execute(f"ALTER TABLE catalog ADD COLUMN {name} {kind}")
            yield con
        finally:
            con.close()

    @property
    def exists(self) -> bool:
        return self.paths.database.exists()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the warehouse's writer lock, after tidying what a killed writer left.

        One writer at a time across processes (``flock`` on ``warehouse/write.lock``, which
        the kernel releases when a holder dies), so while it is held every temporary or
        unreferenced table file is a leftover, never another writer's work in progress.
        """
        self.paths.tables.mkdir(parents=True, exist_ok=True)
        with open(self.paths.warehouse / "write.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._sweep()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def tidy(self) -> list[Path]:
        """Remove files no catalog row points to (left by a killed writer); returns them."""
        with self.writing():
            pass
        return self._swept

    # --- build ---------------------------------------------------------------------------

    def build(self, datasets: list[str] | None = None,
              progress: Callable[[str], None] = lambda _: None) -> list[BuildResult]:
        """Fill the warehouse from the packaged real tables; idempotent."""
        ids = datasets or sorted(BUILTIN_SOURCES)
        unknown = [d for d in ids if d not in BUILTIN_SOURCES]
        if unknown:
            raise CatalogError(f"no built-in source for {', '.join(unknown)}")
        results = []
        with self.writing():
            with self.connect() as con:
                origins = dict(con.execute("SELECT id, origin FROM catalog").fetchall())
            for dataset_id in ids:
                if origins.get(dataset_id) == "ingested":
                    progress(f"{dataset_id}: ingested by a user, left as it is")
                    continue
                schema = load_schema(self.paths.schemas / f"{dataset_id}.yaml")
                progress(f"{dataset_id}: reading the packaged source")
                frame = conform(BUILTIN_SOURCES[dataset_id](), schema)
                report = validate(frame, schema)
                if not report.success:
                    raise ValidationFailed(dataset_id, report)
                tmp = self._staging_path(schema.id)
                try:
                    with _storage_errors(schema.id):
                        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                                       tmp, compression="zstd")
                        results.append(self._commit(tmp, schema, len(frame), "builtin"))
                finally:
                    tmp.unlink(missing_ok=True)
                state = "written" if results[-1].changed else "unchanged"
                progress(f"{dataset_id}: {len(frame)} rows, {state}")
        return results

    # --- ingest --------------------------------------------------------------------------

    def ingest(self, file: str | Path, dataset_id: str, schema_path: str | Path,
               classification: str | None = None) -> BuildResult:
        """Add a CSV, Parquet or Excel file as a catalogued table, through the schema's
        ``ingest:`` mapping: validate first, then write.

        The file is streamed (DuckDB reads it and writes the staged Parquet file; GX checks
        it chunk by chunk), so memory does not grow with the file. On any failure the
        warehouse is as it was.
        """
        check_dataset_id(dataset_id)
        schema = load_schema(schema_path)
        if schema.id != dataset_id:
            raise CatalogError(
                f"schema {schema_path} declares dataset {schema.id!r}, not {dataset_id!r}"
            )
        if classification is not None:
            schema = schema.with_classification(classification)
        source = inspect_table_file(file, schema)
        with self.writing():
            tmp = self._staging_path(schema.id)
            try:
                with _ingest_engine(self.paths) as con:
                    with _storage_errors(schema.id):
                        stage_table(con, source, schema, tmp)
                        _sync(tmp)
                        _fault("staged")
                    report = validate_relation(con, f"read_parquet({_literal(tmp)})", schema)
                if not report.success:
                    raise ValidationFailed(dataset_id, report)
                check_temporal_types(tmp, schema)
                _fault("validated")
                with _storage_errors(schema.id):
                    return self._commit(tmp, schema, report.rows, "ingested")
            finally:
                tmp.unlink(missing_ok=True)

    # --- read ----------------------------------------------------------------------------

    def catalog(self) -> list[dict[str, Any]]:
        """Every catalog entry, as plain JSON-able dicts."""
        with self.connect(read_only=True) as con:
            present = _catalog_columns(con)
            fields = [f if f in present else f"NULL AS {f}" for f in CATALOG_FIELDS]
            rows = con.execute(f"SELECT {', '.join(fields)} FROM catalog ORDER BY id").fetchall()
        return [_entry(dict(zip(CATALOG_FIELDS, row, strict=True))) for row in rows]

    def entry(self, dataset_id: str) -> dict[str, Any]:
        """The catalog entry of one dataset."""
        for entry in self.catalog():
            if entry["id"] == dataset_id:
                return entry
        raise CatalogError(f"unknown dataset {dataset_id!r}: see `{cli_command()} catalog list`")

    def schema(self, dataset_id: str) -> DatasetSchema:
        """The declared schema of a catalogued dataset (with its catalogued classification)."""
        entry = self.entry(dataset_id)
        schema = load_schema(self.paths.resolve(entry["schema_path"]))
        if schema.classification != entry["classification"]:
            schema = schema.with_classification(entry["classification"])
        return schema

    def declared_schema(self, dataset_id: str) -> DatasetSchema:
        """The catalogued schema, else ``schemas/<id>.yaml`` for a dataset not ingested
        yet (a steward checking a new export before its first ingest)."""
        check_dataset_id(dataset_id)
        try:
            return self.schema(dataset_id)
        except CatalogError:
            path = self.paths.schemas / f"{dataset_id}.yaml"
            if not path.is_file():
                raise CatalogError(f"unknown dataset {dataset_id!r}: not catalogued and no "
                                   f"{self.paths.relative(path)}") from None
            return load_schema(path)

    def pull(self, dataset_id: str) -> Snapshot:
        """Read a table through DuckDB with the content hash of the stored Parquet file."""
        for _ in range(3):  # an ingest that commits meanwhile removes the version we found
            entry = self.entry(dataset_id)
            schema = self.schema(dataset_id)
            path = self.paths.resolve(entry["table_path"])
            try:
                before = file_sha256(path)
                with self.connect(read_only=True) as con:
                    table = con.sql("SELECT * FROM read_parquet($path)",
                                    params={"path": str(path)}).to_arrow_table()
                if file_sha256(path) != before:
                    raise SourceError(f"{dataset_id}: table changed while being read; pull again")
            except (FileNotFoundError, duckdb.IOException):
                if path.exists():
                    raise
                continue
            frame = conform(table.to_pandas(), schema)
            return Snapshot(dataset=dataset_id, snapshot_id=before, frame=frame, schema=schema)
        raise SourceError(f"{dataset_id}: table replaced while being read; pull again")

    # --- internals -----------------------------------------------------------------------

    def _staging_path(self, dataset_id: str) -> Path:
        return self.paths.tables / f".{dataset_id}.{uuid.uuid4().hex}.parquet.tmp"

    def _commit(self, tmp: Path, schema: DatasetSchema, rows: int,
                origin: str) -> BuildResult:
        """Make a staged file the dataset's current version (under :meth:`writing`)."""
        snapshot_id = file_sha256(tmp)
        final = self.paths.tables / f"{schema.id}.{snapshot_id[:16]}.parquet"
        entry = _catalog_row(schema, self.paths, rows, snapshot_id, final, origin)
        with self.connect() as con:
            current = con.execute(
                f"SELECT {', '.join(CATALOG_FIELDS)} FROM catalog WHERE id = ?", [schema.id]
            ).fetchone()
        unchanged = (
            current is not None and final.exists() and file_sha256(final) == snapshot_id
            and all(current[i] == entry[f] for i, f in enumerate(CATALOG_FIELDS)
                    if f != "updated_at")
        )
        if unchanged:
            tmp.unlink()
            return BuildResult(schema.id, rows, snapshot_id, changed=False)
        previous = (self.paths.resolve(current[CATALOG_FIELDS.index("table_path")])
                    if current is not None else None)
        committed = False
        try:
            # A new name: the served file is never touched before the catalog moves on.
            os.replace(tmp, final)
            _sync(final.parent)
            _fault("placed")
            with self.connect() as con:
                con.execute("BEGIN TRANSACTION")
                con.execute("DELETE FROM catalog WHERE id = ?", [schema.id])
                con.execute(
                    f"INSERT INTO catalog ({', '.join(CATALOG_FIELDS)}) VALUES "
                    f"({', '.join('?' for _ in CATALOG_FIELDS)})",
                    [entry[f] for f in CATALOG_FIELDS],
                )
                con.execute(
                    f'CREATE OR REPLACE VIEW "{schema.id}" AS '
                    f"SELECT * FROM read_parquet({_literal(final.resolve())})"
                )
                _fault("catalog")
                con.execute("COMMIT")
                committed = True
        except BaseException:
            if not committed and final != previous:
                final.unlink(missing_ok=True)
            raise
        _fault("committed")
        if previous is not None and previous.resolve() != final.resolve():
            previous.unlink(missing_ok=True)
        _fault("done")
        return BuildResult(schema.id, rows, snapshot_id, changed=True)

    def _sweep(self) -> None:
        """Remove table files no catalog row points to (call with the writer lock held)."""
        self._swept = []
        if not self.paths.database.exists():
            ids: set[str] = set()
            served: set[Path] = set()
        else:
            # Read-only: a refused write must leave even the database file's bytes as they were.
            with self.connect(read_only=True) as con:
                rows = con.execute("SELECT id, table_path FROM catalog").fetchall()
            ids = {r[0] for r in rows}
            served = {self.paths.resolve(r[1]).resolve() for r in rows}
        for path in sorted(self.paths.tables.iterdir()):
            if not path.is_file() or path.resolve() in served:
                continue
            name = path.name
            version = _VERSION_FILE.match(name)
            stale = (
                name.endswith((".parquet.tmp", ".parquet.bak"))  # staged, or the old backup
                or (version is not None and not name.startswith("."))
                or (name.endswith(".parquet") and name[: -len(".parquet")] in ids)  # pre-
            )  # version naming: <id>.parquet whose catalog row has moved to a version file
            if stale:
                path.unlink(missing_ok=True)
                self._swept.append(path)
        for spill in self.paths.warehouse.glob(".spill-*"):
            shutil.rmtree(spill, ignore_errors=True)
            self._swept.append(spill)


def _fault(stage: str) -> None:
    FAULT_HOOK(stage)


def _sync(path: Path) -> None:
    """fsync a file or directory, so a rename never outlives the bytes it names."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _storage_errors(dataset: str) -> Iterator[None]:
    """Turn a full disk or a refused write into one line (the caller has undone its work)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_FULL | _NO_ACCESS:
            raise WarehouseWriteError(
                f"{dataset}: cannot write the warehouse: {os.strerror(exc.errno)}; "
                "nothing was changed") from None
        raise
    except duckdb.IOException as exc:
        text = str(exc)
        for marker, errno_ in (("No space left", errno.ENOSPC), ("File too large", errno.EFBIG),
                               ("quota", errno.EDQUOT), ("Permission denied", errno.EACCES)):
            if marker in text:
                raise WarehouseWriteError(
                    f"{dataset}: cannot write the warehouse: {os.strerror(errno_)}; "
                    "nothing was changed") from None
        raise


def validate_file(file: str | Path, schema: DatasetSchema,
                  paths: Paths | None = None) -> ValidationReport:
    """Validate a CSV, Parquet or Excel file against ``schema`` the way ingest does (its
    ``ingest:`` mapping applied), storing nothing.

    Streams like :meth:`Warehouse.ingest` (bounded memory whatever the file's size); the
    typed copy DuckDB checks lives in a ``warehouse/.spill-*`` directory, removed after. It
    holds the writer lock, so no writer's tidying removes that directory meanwhile.
    """
    with staged_file(file, schema, paths) as (con, relation):
        return validate_relation(con, relation, schema)


@contextmanager
def staged_file(file: str | Path, schema: DatasetSchema, paths: Paths | None = None,
                ) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """The file staged as ingest would stage it (see :func:`validate_file`), as a DuckDB
    connection and the relation over the staged copy; everything is removed on exit."""
    paths = paths or Paths.default()
    source = inspect_table_file(file, schema)
    workdir: list[Path] = []
    with Warehouse(paths).writing(), _ingest_engine(paths, workdir) as con:
        staged = workdir[0] / "table.parquet"
        with _storage_errors(schema.id):
            stage_table(con, source, schema, staged)
        yield con, f"read_parquet({_literal(staged)})"


# --- reading input files ------------------------------------------------------------------

#: Formats ingest reads: DuckDB reads CSV and Parquet itself; an Excel workbook is read
#: with openpyxl (read-only, streamed) into a text Parquet file first, then the same path.
FORMATS = ("csv", "parquet", "xlsx")


@dataclass(frozen=True)
class TableFile:
    """An input file that passed the cheap checks: its format and its column names (the
    source headers; for a CSV without a header row, the declared source names)."""

    path: Path
    format: str  # one of FORMATS
    columns: tuple[str, ...]


def inspect_table_file(file: str | Path, schema: DatasetSchema | None = None) -> TableFile:
    """Check a CSV, Parquet or Excel file without loading it: readable, text in the
    declared encoding without NUL characters (CSV), a header row, no duplicate column
    names, and headers the schema's ``ingest:`` mapping (:mod:`pulsesynth.source_mapping`)
    turns into distinct columns. Errors never quote a cell value, and name a column only
    when ``schema`` declares it (as a column or a mapped source header)."""
    path = Path(file)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not path.is_file():
        raise SourceError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise SourceError(f"{path}: cannot be read ({reason})") from exc
    mapping = schema.ingest if schema is not None else SourceMapping()
    suffix = path.suffix.lower()
    if head == b"PAR1" or suffix == ".parquet":
        try:
            arrow_schema = pq.ParquetFile(path).schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"{path}: not a readable Parquet file") from exc
        # A pandas index saved as a column (``__index_level_0__``) is not table data.
        index = {c for c in (arrow_schema.pandas_metadata or {}).get("index_columns", [])
                 if isinstance(c, str)}
        names = [str(n) for n in arrow_schema.names if n not in index]
        _check_header(names, path, schema, headerless_check=False)
        return _mapped(TableFile(path, "parquet", tuple(names)), schema)
    if suffix == ".xlsx":
        with _workbook(path, mapping.sheet) as rows:
            first = next(rows, None)
        if first is None:
            raise SourceError(f"{path}: empty sheet, no header row")
        names = _trim_header([_cell_text(c) or "" for c in first])
        if not names:
            raise SourceError(f"{path}: no header row (the first row is empty)")
        _check_header(names, path, schema)
        return _mapped(TableFile(path, "xlsx", tuple(names)), schema)
    if suffix not in (".csv", ".txt"):
        raise SourceError(f"{path}: unsupported file type {suffix or '(none)'}; "
                          "use CSV, Parquet or Excel (.xlsx)")
    dialect = mapping.csv
    _check_text(path, dialect.encoding)
    if not dialect.header:
        # Declared names, in file order: the file's first line is data.
        names = list(dialect.names) or [c for c in (schema.column_names if schema else [])
                                        if c != mapping.generated_key]
        _check_header(names, path, schema, headerless_check=False)
        return _mapped(TableFile(path, "csv", tuple(names)), schema)
    encoding = "utf-8-sig" if dialect.encoding == "utf-8" else dialect.encoding
    try:
        with open(path, newline="", encoding=encoding) as fh:
            header = next(csv.reader(fh, delimiter=dialect.delimiter))
    except StopIteration as exc:
        raise SourceError(f"{path}: empty file, no header row") from exc
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable CSV file (malformed header row)") from exc
    if not header:
        raise SourceError(f"{path}: no header row (the first line is empty)")
    _check_header(header, path, schema)
    return _mapped(TableFile(path, "csv", tuple(header)), schema)


def _mapped(source: TableFile, schema: DatasetSchema | None) -> TableFile:
    """Refuse a file the declared mapping cannot turn into distinct columns: two headers
    landing on one declared column, or a column where the generated row key goes."""
    if schema is None:
        return source
    mapping = schema.ingest
    targets = [t for t in (mapping.target_of(h) for h in source.columns) if t is not None]
    declared = set(schema.column_names)
    twice = sorted({t for t in targets if t in declared and targets.count(t) > 1})
    if twice:
        raise SourceError(f"{source.path}: two source columns map to declared column(s) "
                          f"{', '.join(twice)}; drop or rename one in the schema's ingest:")
    if mapping.generated_key and mapping.generated_key in targets:
        raise SourceError(
            f"{source.path}: the file has a {mapping.generated_key} column, but the schema "
            "generates it (row_key: generated); drop or rename it in the schema's ingest:")
    return source


def _check_text(path: Path, encoding: str = "utf-8") -> None:
    """Text in the declared encoding and free of NUL characters, checked block by block
    (the file is never held whole)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    name = "UTF-8" if encoding == "utf-8" else encoding
    advice = ("re-export the file as UTF-8" if encoding == "utf-8"
              else "declare its encoding in the schema's ingest.csv.encoding")
    offset = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            if encoding != "utf-16" and b"\x00" in block:
                raise SourceError(f"{path}: contains NUL bytes; not a CSV text file")
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise SourceError(
                    f"{path}: not valid {name} text (first bad byte at offset "
                    f"{offset - pending + exc.start}); {advice}") from None
            if "\x00" in text:
                raise SourceError(f"{path}: contains NUL characters; not a CSV text file")
            offset += len(block)
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise SourceError(
                f"{path}: not valid {name} text (first bad byte at offset "
                f"{offset - pending}); {advice}") from None


def _check_header(names: list[str], path: Path, schema: DatasetSchema | None,
                  headerless_check: bool = True) -> None:
    """A header that names columns, each once; messages name declared columns (and the
    source headers the schema's mapping declares) only."""
    declared = (set(schema.column_names) | schema.ingest.declared_sources
                if schema is not None else set())
    if schema is not None and headerless_check and _looks_headerless(names, schema):
        raise SourceError(
            f"{path}: no header row: the first line holds none of the "
            f"{len(schema.column_names)} declared column names and looks like data; save "
            "the file with its header row")
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    dupes = [n for n, c in counts.items() if c > 1]
    if dupes:
        named = sorted(n for n in dupes if n in declared)
        hidden = len(dupes) - len(named)
        parts = ([f"duplicate column name(s): {', '.join(named)}"] if named else []) + (
            [f"{hidden} duplicate undeclared column name(s)"] if hidden else [])
        raise SourceError(f"{path}: {'; '.join(parts)}")


def _looks_headerless(names: list[str], schema: DatasetSchema) -> bool:
    """Whether the first line is data: no declared column name (nor mapped source header)
    in it, and either as many cells as declared columns or a cell that reads as a value (a
    number, a declared category level or an empty cell) rather than a name."""
    declared = set(schema.column_names) | schema.ingest.declared_sources
    if any(name in declared for name in names):
        return False
    levels = {str(level) for col in schema.columns if isinstance(col, CategoricalColumn)
              for level in col.categories}
    expected = len([c for c in schema.column_names if c != schema.ingest.generated_key])
    return len(names) == expected or any(
        name.strip() == "" or name in levels or is_number(name) for name in names)


# --- Excel: openpyxl, read-only, into a text Parquet file ---------------------------------

#: Rows per Arrow batch when an Excel sheet is copied to Parquet.
XLSX_BATCH_ROWS = 10_000


@contextmanager
def _workbook(path: Path, sheet: str | None) -> Iterator[Iterator[tuple[Any, ...]]]:
    """The rows (cell values) of a workbook's declared sheet, else its first one, read
    with openpyxl in read-only mode (streamed; cached formula results, not formulas)."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError):
        # openpyxl's messages may quote the file's parts: one line of our own instead.
        raise SourceError(f"{path}: not a readable Excel (.xlsx) file") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise SourceError(f"{path}: no sheet {sheet!r} (declared in ingest.excel.sheet)")
        if not book.worksheets:
            raise SourceError(f"{path}: the workbook has no sheet")
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        yield ws.iter_rows(values_only=True)
    finally:
        book.close()


def _trim_header(names: list[str]) -> list[str]:
    """Drop empty header cells at the end (a formatted but unused column)."""
    while names and names[-1] == "":
        names.pop()
    return names


_NULL_TEXT = frozenset(CSV_NULLS)


def _cell_text(value: Any) -> str | None:
    """A cell as the text a CSV export would hold; the CSV missing markers mean missing
    here too, so a table means the same whichever format it came in."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    text = repr(value) if isinstance(value, float) else str(value)
    return None if text in _NULL_TEXT else text


def _xlsx_to_parquet(source: TableFile, sheet: str | None, out: Path) -> None:
    """Copy the sheet's rows below the header to ``out`` as text columns ``_c0 ...`` (the
    CSV path's semantics: DuckDB then converts numbers exactly as for a CSV). Fully empty
    rows are skipped; a row with a value beyond the header is refused by its number."""
    width = len(source.columns)
    fields = pa.schema([(f"_c{i}", pa.string()) for i in range(width)])
    with _workbook(source.path, sheet) as rows, pq.ParquetWriter(out, fields) as writer:
        next(rows, None)  # the header, checked by inspect_table_file
        batch: list[list[str | None]] = []
        for number, row in enumerate(rows, start=2):
            cells = [_cell_text(v) for v in row]
            if any(c is not None for c in cells[width:]):
                raise SourceError(f"{source.path}: row {number} has more cells than the "
                                  f"header ({width})")
            cells = (cells + [None] * width)[:width]
            if all(c is None for c in cells):
                continue
            batch.append(cells)
            if len(batch) >= XLSX_BATCH_ROWS:
                writer.write_table(_text_table(batch, fields))
                batch = []
        writer.write_table(_text_table(batch, fields))


def _text_table(rows: list[list[str | None]], fields: pa.Schema) -> pa.Table:
    columns = [pa.array([r[i] for r in rows], type=pa.string()) for i in range(len(fields))]
    return pa.Table.from_arrays(columns, schema=fields)


# --- staging: DuckDB reads the file and writes typed Parquet ------------------------------

@contextmanager
def _ingest_engine(paths: Paths,
                   workdir: list[Path] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with capped threads and memory, spilling inside the warehouse
    (spilled rows are private: they stay in the sensitive store and are removed after; a
    killed process's are removed by the next writer). ``workdir`` receives that directory."""
    spill = paths.warehouse / f".spill-{uuid.uuid4().hex}"
    spill.mkdir(parents=True)
    if workdir is not None:
        workdir.append(spill)
    con = duckdb.connect(config={
        "threads": thread_limit(), "memory_limit": INGEST_MEMORY_LIMIT,
        "temp_directory": str(spill),
    })
    try:
        con.execute("SET enable_progress_bar = false")  # no bars on a CLI's terminal
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def stage_table(con: duckdb.DuckDBPyConnection, source: TableFile, schema: DatasetSchema,
                out: Path) -> int:
    """Write ``source`` as Parquet at ``out`` with DuckDB, each declared column in its
    storage type where that is lossless (as :func:`~pulsesynth.frames.conform` would), and
    return the row count. Undeclared columns are kept under placeholder names, so no name
    from the file travels further; validation then counts them.

    The schema's ``ingest:`` mapping applies on the way: source headers renamed or
    dropped, declared labels recoded (text sources), a decimal comma read as a point, and
    a generated row key numbered in the file's order. Intermediate files (an Excel sheet
    as text, the mapped rows before numbering) sit beside ``out`` as ``.*.parquet.tmp``,
    which the next writer sweeps if this one is killed.
    """
    mapping = schema.ingest
    declared = set(schema.column_names)
    raw = [f"_c{i}" for i in range(len(source.columns))]  # no file header reaches SQL text
    kept: list[tuple[str, str]] = []  # (raw name, staged name)
    for i, header in enumerate(source.columns):
        target = mapping.target_of(header)
        if target is not None:
            kept.append((raw[i], target if target in declared else f"_undeclared_{i}"))
    scratch: list[Path] = []
    try:
        if source.format == "parquet":
            originals = ", ".join(f"{_quote(h)} AS {r}"
                                  for h, r in zip(source.columns, raw, strict=True))
            reader = f"(SELECT {originals} FROM read_parquet({_literal(source.path)}))"
        elif source.format == "xlsx":
            sheet = out.parent / f".{out.name}.xlsx.parquet.tmp"
            scratch.append(sheet)
            _xlsx_to_parquet(source, mapping.sheet, sheet)
            reader = f"read_parquet({_literal(sheet)})"
        else:
            reader = _csv_reader(source, raw, mapping.csv)
        raw_types = ({r: _TEXT for r in raw} if source.format != "parquet" else
                     {str(row[0]): str(row[1]) for row in
                      _run(con, source, f"DESCRIBE SELECT * FROM {reader}").fetchall()})
        mapped = ", ".join(f"{_source_expression(schema, r, name, raw_types[r], source)} "
                           f"AS {_quote(name)}" for r, name in kept)
        relation = f"(SELECT {mapped} FROM {reader})"
        names = [name for _, name in kept]
        if mapping.generated_key is not None:
            # Number the rows in the file's order: DuckDB keeps insertion order into this
            # file, and file_row_number is each row's position in it (never a file value).
            ordered = out.parent / f".{out.name}.rows.parquet.tmp"
            scratch.append(ordered)
            _run(con, source, f"COPY {relation} TO {_literal(ordered)} (FORMAT parquet)")
            key = _quote(mapping.generated_key)
            relation = (f"(SELECT CAST(file_row_number + 1 AS BIGINT) AS {key}, "
                        f"{', '.join(_quote(n) for n in names)} FROM "
                        f"read_parquet({_literal(ordered)}, file_row_number=true))")
            names = [mapping.generated_key, *names]
        if source.format == "parquet":
            described = _run(con, source, f"DESCRIBE SELECT * FROM {relation}").fetchall()
            types = {str(row[0]): str(row[1]) for row in described}
        else:
            types = {n: _TEXT for n in names} | (
                {mapping.generated_key: "BIGINT"} if mapping.generated_key else {})
        select = {n: _quote(n) for n in names}
        exprs = _storage_expressions(con, source, relation, schema, select, types)
        _run(con, source, (
            f"COPY (SELECT {', '.join(exprs[n] for n in names)} FROM {relation}) "
            f"TO {_literal(out)} (FORMAT parquet, COMPRESSION zstd)"))
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)
    return int(pq.ParquetFile(out).metadata.num_rows)


def _csv_reader(source: TableFile, raw: list[str], dialect: CsvDialect) -> str:
    """DuckDB's ``read_csv`` over the file in its declared dialect, every column text."""
    columns = ", ".join(f"{_literal(n)}: {_literal(_TEXT)}" for n in raw)
    return (
        f"read_csv({_literal(source.path)}, header={str(dialect.header).lower()}, "
        f"auto_detect=false, columns={{{columns}}}, delim={_literal(dialect.delimiter)}, "
        "quote='\"', escape='\"', strict_mode=true, null_padding=true, "
        f"encoding={_literal(dialect.encoding)}, "
        f"nullstr=[{', '.join(_literal(v) for v in CSV_NULLS)}])"
    )


def _source_expression(schema: DatasetSchema, raw: str, name: str, raw_type: str,
                       source: TableFile) -> str:
    """A source column's value on its way to a declared one: its declared recoding (text
    labels only: a typed Parquet column is left as it is), then a decimal comma read as a
    point for numeric columns of a CSV declared with ``decimal: ","``."""
    expr = raw
    if name.startswith("_undeclared_"):
        return expr
    recode = schema.ingest.recode_of(name)
    if recode and raw_type == _TEXT:
        cases = " ".join(f"WHEN {expr} = {_literal(label)} THEN "
                         f"{'NULL' if new is None else _literal(_sql_text(new))}"
                         for label, new in recode.items())
        expr = f"(CASE {cases} ELSE {expr} END)"
    col = schema.column(name)
    if (source.format == "csv" and schema.ingest.csv.decimal == ","
            and isinstance(col, NumericColumn)):
        expr = f"replace({expr}, ',', '.')"
    return expr


def _sql_text(value: Any) -> str:
    """A declared value as the text a CSV would hold (the storage cast follows)."""
    return repr(value) if isinstance(value, float) else str(value)


_TEXT = "VARCHAR"
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "HUGEINT", "UHUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE", "REAL"}


def _storage_expressions(con: duckdb.DuckDBPyConnection, source: TableFile, relation: str,
                         schema: DatasetSchema, select: dict[str, str],
                         types: dict[str, str]) -> dict[str, str]:
    """SELECT expressions giving each declared column its storage type when every value
    converts exactly; otherwise the column keeps its type and fails the type check, the
    way pandas' inference and ``conform`` treat it (one aggregate pass decides)."""
    exprs = dict(select)
    checks: list[str] = []
    plans: list[tuple[str, str, str]] = []  # (name, storage kind, DuckDB value expression)
    temporal: list[tuple[str, str, str]] = []  # (name, count of misfits, typed expression)
    for name in select:
        if name.startswith("_undeclared_"):
            continue
        declared = schema.column(name)
        if isinstance(declared, TemporalColumn):
            plan = _temporal_plan(declared, _quote(name), types[name])
            if plan is not None:
                temporal.append((name, *plan))
            continue
        kind = storage_type(declared)
        col, typ = _quote(name), types[name]
        numeric = typ in _INTEGERS or typ in _FLOATS or typ.startswith("DECIMAL")
        if kind == "str" or (typ != _TEXT and not numeric):
            continue  # text stays text; booleans, dates ... keep their type (and fail)
        if typ == _TEXT and source.format == "parquet":
            continue  # Parquet strings in a numeric column are a type error, as before
        value = f"TRY_CAST({col} AS DOUBLE)" if typ == _TEXT else f"CAST({col} AS DOUBLE)"
        i = len(plans)
        checks.append(f"count(*) FILTER (WHERE {col} IS NOT NULL AND {value} IS NULL)"
                      f" AS bad{i}")
        checks.append(f"count(*) FILTER (WHERE {value} IS NOT NULL AND NOT (isfinite({value})"
                      f" AND {value} = round({value}) AND abs({value}) < 9.2e18)) AS frac{i}")
        plans.append((name, kind, value))
    if temporal:
        (misfits,) = _run(con, source, "SELECT " + ", ".join(
            f"{bad} AS t{i}" for i, (_, bad, _) in enumerate(temporal))
            + f" FROM {relation}").fetchall()
        for (name, _, typed), bad in zip(temporal, misfits, strict=True):
            if not bad:  # else it keeps its source type: validation counts the misfits
                exprs[name] = f"{typed} AS {_quote(name)}"
    if not plans:
        return exprs
    (counts,) = _run(con, source, f"SELECT {', '.join(checks)} FROM {relation}").fetchall()
    for i, (name, kind, value) in enumerate(plans):
        bad, frac = counts[2 * i], counts[2 * i + 1]
        col = _quote(name)
        if bad:
            continue  # text among numbers: stays text, fails the type check
        if kind == "int64" and not frac:
            if types[name] in _INTEGERS:
                exprs[name] = f"CAST({col} AS BIGINT) AS {col}"
            elif types[name] == _TEXT:  # exact digits first: a double rounds beyond 2**53
                exprs[name] = (f"coalesce(TRY_CAST({col} AS BIGINT), CAST({value} AS BIGINT))"
                               f" AS {col}")
            else:
                exprs[name] = f"CAST({value} AS BIGINT) AS {col}"
        else:
            exprs[name] = f"{value} AS {col}"
    return exprs


_SQL_TEMPORAL = {"date": "DATE", "time": "TIME", "datetime": "TIMESTAMP"}


def _temporal_plan(column: TemporalColumn, col: str, typ: str) -> tuple[str, str] | None:
    """(SQL counting the cells that do not convert, the typed expression) for a temporal
    column stored as ``typ`` in the source; ``None`` when no conversion applies (the
    column keeps its type and validation counts what is wrong with it).

    Text is read with the declared format by DuckDB's ``try_strptime`` (surrounding
    blanks ignored); a date-only timestamp fills a date column, a date a datetime one."""
    target = _SQL_TEMPORAL[column.type]
    if typ == _TEXT:
        if column.format is None:
            return None
        parsed = f"try_strptime(trim({col}), {_literal(column.format)})"
        return (f"count(*) FILTER (WHERE {col} IS NOT NULL AND {parsed} IS NULL)",
                f"CAST({parsed} AS {target})")
    if typ == target:
        return None
    if column.type == "date" and typ.startswith("TIMESTAMP") and "TIME ZONE" not in typ:
        return (f"count(*) FILTER (WHERE CAST({col} AS TIME) <> TIME '00:00:00')",
                f"CAST({col} AS DATE)")
    if column.type == "datetime" and (typ == "DATE" or (
            typ.startswith("TIMESTAMP") and "TIME ZONE" not in typ)):
        return "0", f"CAST({col} AS TIMESTAMP)"
    return None


def check_temporal_types(path: Path, schema: DatasetSchema) -> None:
    """Refuse a staged table whose temporal column is not stored typed (DuckDB's strptime
    read a value that Python's, used by validation, did not, or the reverse)."""
    arrow = pq.read_schema(path)
    for col in schema.temporal_columns:
        if col.name in arrow.names:
            kind = arrow.field(col.name).type
            if not (pa.types.is_date(kind) if col.type == "date" else
                    pa.types.is_time(kind) if col.type == "time" else
                    pa.types.is_timestamp(kind) and kind.tz is None):
                raise SourceError(f"{path}: {schema.id}: column {col.name} cannot be stored "
                                  f"as a {col.type}: its values do not all read in the "
                                  "declared format")


def _run(con: duckdb.DuckDBPyConnection, source: TableFile,
         sql: str) -> duckdb.DuckDBPyConnection:
    """Run a statement over the input file; a parse error names the line, never its text."""
    try:
        return con.execute(sql)
    except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:
        raise SourceError(f"{source.path}: not a readable {source.format.upper()} file "
                          f"({_parse_problem(str(exc))})") from None


def _parse_problem(message: str) -> str:
    """DuckDB's CSV error without the 'Original Line' it quotes (a private row)."""
    line = re.search(r"CSV Error on Line: (\d+)", message)
    where = f" at line {line.group(1)}" if line else ""
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if fields:
        return f"malformed row{where}: {fields.group(2)} fields, {fields.group(1)} expected"
    if "unterminated quote" in message:
        return f"unterminated quote{where}"
    return f"malformed rows{where}"


def _literal(value: object) -> str:
    """A SQL string literal (DuckDB's COPY and table functions take no bound parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes: a table version's snapshot id."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _catalog_row(schema: DatasetSchema, paths: Paths, rows: int, snapshot_id: str,
                 table: Path, origin: str) -> dict[str, Any]:
    if schema.path is None:  # the catalog points at the schema file it was built from
        raise CatalogError(f"{schema.id}: a catalogued schema must be read from a file")
    return {
        "id": schema.id,
        "title": schema.title,
        "description": schema.description,
        "source_name": schema.source.get("name", ""),
        "source_url": schema.source.get("url", ""),
        "licence": schema.source.get("licence", ""),
        "classification": schema.classification,
        "target": schema.target,
        "row_key": json.dumps(list(schema.row_key)),
        "privacy_unit": json.dumps(list(schema.privacy_unit)),
        "schema_path": paths.relative(schema.path),
        "schema_hash": schema.hash,
        "epsilon": schema.privacy.epsilon,
        "delta": schema.privacy.delta,
        "lifetime_epsilon": schema.privacy.lifetime_epsilon,
        "refresh_days": schema.privacy.refresh_days,
        "max_rows_per_unit": schema.privacy.max_rows_per_unit,
        "steward": schema.steward,
        "rows": rows,
        "snapshot_id": snapshot_id,
        "table_path": paths.relative(table),
        "origin": origin,
        "updated_at": datetime.now(UTC).replace(tzinfo=None),
        # The declared source mapping (public: it is in the schema), as ingest applied it.
        "ingest_mapping": json.dumps(schema.ingest.to_json(), sort_keys=True),
    }


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["row_key"] = json.loads(row["row_key"])
    row["privacy_unit"] = json.loads(row["privacy_unit"])
    row["updated_at"] = row["updated_at"].isoformat(timespec="seconds") + "Z"
    row["ingest_mapping"] = json.loads(row["ingest_mapping"] or "{}")
    return row


def _catalog_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The catalog table's column names (an older warehouse lacks :data:`CATALOG_ADDED`)."""
    rows = con.execute("SELECT column_name FROM information_schema.columns "
                       "WHERE table_name = 'catalog'").fetchall()
    return {str(r[0]) for r in rows}
