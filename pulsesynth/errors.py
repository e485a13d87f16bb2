"""Exceptions with messages a data steward can act on.

Messages name files, datasets, columns and expectations — never cell values from
a private table.
"""


class PulseSynthError(Exception):
    """Base class: every error the CLI reports as a clean one-line message."""


class SchemaError(PulseSynthError):
    """A declared schema file is missing, malformed or inconsistent."""


class SourceError(PulseSynthError):
    """An input file cannot be read as a table (bad path, format, encoding, columns)."""


class ValidationFailed(PulseSynthError):
    """A table does not meet its declared schema; carries the value-free report."""

    def __init__(self, dataset: str, report: "object") -> None:
        self.dataset = dataset
        self.report = report
        failed = getattr(report, "failed", [])
        lines = [f"{dataset}: {len(failed)} expectation(s) failed:"]
        lines += [f"  - {f.describe()}" for f in failed]
        super().__init__("\n".join(lines))


class CatalogError(PulseSynthError):
    """A dataset is unknown to the catalog or its catalog entry is invalid."""
