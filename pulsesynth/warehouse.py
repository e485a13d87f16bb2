"""The DuckDB/Parquet warehouse: build, catalog, pull snapshots, ingest.

Parquet files under ``warehouse/tables/`` are the storage; ``warehouse/pulse.duckdb`` is
the query engine and holds the catalog (and, later, the governance tables). Every write
is validate-first and atomic: a table file is replaced with ``os.replace`` and its catalog
row written in one transaction, so a failure leaves the warehouse as it was.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pulsesynth.errors import CatalogError, SourceError, ValidationFailed
from pulsesynth.frames import conform
from pulsesynth.paths import Paths
from pulsesynth.schema import DatasetSchema, check_dataset_id, load_schema
from pulsesynth.sources import BUILTIN_SOURCES
from pulsesynth.validation import validate

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
    updated_at TIMESTAMP NOT NULL
)
"""

CATALOG_FIELDS = (
    "id", "title", "description", "source_name", "source_url", "licence", "classification",
    "target", "row_key", "privacy_unit", "schema_path", "schema_hash", "epsilon", "delta",
    "lifetime_epsilon", "refresh_days", "max_rows_per_unit", "steward", "rows", "snapshot_id",
    "table_path", "origin", "updated_at",
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

    # --- connections ---------------------------------------------------------------------

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.paths.database.exists():
            raise CatalogError(
                f"no warehouse at {self.paths.database}: run `pulsesynth warehouse build`"
            )
        self.paths.tables.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.paths.database), read_only=read_only)
        try:
            if not read_only:
                con.execute(CATALOG_DDL)
            yield con
        finally:
            con.close()

    @property
    def exists(self) -> bool:
        return self.paths.database.exists()

    # --- build ---------------------------------------------------------------------------

    def build(self, datasets: list[str] | None = None,
              progress: Callable[[str], None] = lambda _: None) -> list[BuildResult]:
        """Fill the warehouse from the packaged real tables; idempotent."""
        ids = datasets or sorted(BUILTIN_SOURCES)
        unknown = [d for d in ids if d not in BUILTIN_SOURCES]
        if unknown:
            raise CatalogError(f"no built-in source for {', '.join(unknown)}")
        results = []
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
            results.append(self._store(frame, schema, origin="builtin"))
            state = "written" if results[-1].changed else "unchanged"
            progress(f"{dataset_id}: {len(frame)} rows, {state}")
        return results

    # --- ingest --------------------------------------------------------------------------

    def ingest(self, file: str | Path, dataset_id: str, schema_path: str | Path,
               classification: str | None = None) -> BuildResult:
        """Add a CSV or Parquet file as a catalogued table: validate first, then write."""
        check_dataset_id(dataset_id)
        schema = load_schema(schema_path)
        if schema.id != dataset_id:
            raise CatalogError(
                f"schema {schema_path} declares dataset {schema.id!r}, not {dataset_id!r}"
            )
        if classification is not None:
            schema = schema.with_classification(classification)
        frame = conform(read_table_file(file), schema)
        report = validate(frame, schema)
        if not report.success:
            raise ValidationFailed(dataset_id, report)
        return self._store(frame, schema, origin="ingested")

    # --- read ----------------------------------------------------------------------------

    def catalog(self) -> list[dict[str, Any]]:
        """Every catalog entry, as plain JSON-able dicts."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT {', '.join(CATALOG_FIELDS)} FROM catalog ORDER BY id"
            ).fetchall()
        return [_entry(dict(zip(CATALOG_FIELDS, row, strict=True))) for row in rows]

    def entry(self, dataset_id: str) -> dict[str, Any]:
        for entry in self.catalog():
            if entry["id"] == dataset_id:
                return entry
        raise CatalogError(f"unknown dataset {dataset_id!r}: see `pulsesynth catalog list`")

    def schema(self, dataset_id: str) -> DatasetSchema:
        """The declared schema of a catalogued dataset (with its catalogued classification)."""
        entry = self.entry(dataset_id)
        schema = load_schema(self.paths.resolve(entry["schema_path"]))
        if schema.classification != entry["classification"]:
            schema = schema.with_classification(entry["classification"])
        return schema

    def pull(self, dataset_id: str) -> Snapshot:
        """Read a table through DuckDB with the content hash of the stored Parquet file."""
        entry = self.entry(dataset_id)
        schema = self.schema(dataset_id)
        path = self.paths.resolve(entry["table_path"])
        before = file_sha256(path)
        with self.connect(read_only=True) as con:
            table = con.sql("SELECT * FROM read_parquet($path)",
                            params={"path": str(path)}).to_arrow_table()
        if file_sha256(path) != before:
            raise SourceError(f"{dataset_id}: table changed while being read; pull again")
        frame = conform(table.to_pandas(), schema)
        return Snapshot(dataset=dataset_id, snapshot_id=before, frame=frame, schema=schema)

    # --- internals -----------------------------------------------------------------------

    def _store(self, frame: pd.DataFrame, schema: DatasetSchema, origin: str) -> BuildResult:
        final = self.paths.tables / f"{schema.id}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        final.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp,
                       compression="zstd")
        snapshot_id = file_sha256(tmp)
        entry = _catalog_row(schema, self.paths, len(frame), snapshot_id, final, origin)
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
            return BuildResult(schema.id, len(frame), snapshot_id, changed=False)

        backup = final.with_suffix(".parquet.bak")
        if final.exists():
            shutil.copy2(final, backup)
        os.replace(tmp, final)
        try:
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
                    f"SELECT * FROM read_parquet('{final.resolve()}')"
                )
                con.execute("COMMIT")
        except BaseException:
            if backup.exists():
                os.replace(backup, final)
            else:
                final.unlink(missing_ok=True)
            raise
        backup.unlink(missing_ok=True)
        return BuildResult(schema.id, len(frame), snapshot_id, changed=True)


def read_table_file(file: str | Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, header row) or Parquet file; errors never quote cell values."""
    path = Path(file)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    try:
        head = path.read_bytes()[:4] if path.is_file() else None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise SourceError(f"{path}: cannot be read ({reason})") from exc
    if head is None:
        raise SourceError(f"{path}: not a regular file")
    suffix = path.suffix.lower()
    if head == b"PAR1" or suffix == ".parquet":
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"{path}: not a readable Parquet file") from exc
        names = table.column_names
        _check_unique_names(names, path)
        return table.to_pandas()
    if suffix not in (".csv", ".txt"):
        raise SourceError(f"{path}: unsupported file type {suffix or '(none)'}; use CSV or Parquet")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: not valid UTF-8 text (first bad byte at offset {exc.start}); "
            "re-export the file as UTF-8"
        ) from exc
    if "\x00" in text:
        raise SourceError(f"{path}: contains NUL bytes; not a CSV text file")
    try:
        header = next(csv.reader(io.StringIO(text)))
    except StopIteration as exc:
        raise SourceError(f"{path}: empty file, no header row") from exc
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable CSV file ({exc})") from exc
    _check_unique_names(header, path)
    try:
        return pd.read_csv(io.StringIO(text), keep_default_na=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable CSV file (malformed rows)") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_unique_names(names: list[str], path: Path) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceError(f"{path}: duplicate column name(s): {', '.join(map(str, dupes))}")


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
    }


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["row_key"] = json.loads(row["row_key"])
    row["privacy_unit"] = json.loads(row["privacy_unit"])
    row["updated_at"] = row["updated_at"].isoformat(timespec="seconds") + "Z"
    return row
