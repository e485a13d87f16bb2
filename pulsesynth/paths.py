"""Where things live on disk, in one place.

The project root holds ``schemas/`` (public declarations), ``warehouse/`` (the sensitive
store: DuckDB file and Parquet tables, git-ignored), ``state/`` (sensitive working state:
trained models, audit work, Prefect's home; git-ignored) and ``published/`` (approved
releases only). ``PULSESYNTH_ROOT`` points elsewhere, e.g. a test's temporary directory.

The root is never derived from where the package lives: an installed package sits in
``site-packages``, far from any project, so the root is ``PULSESYNTH_ROOT`` or the current
directory. Files that ship with the package are found through ``importlib.resources``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pulsesynth.settings import Settings


@dataclass(frozen=True)
class Paths:
    """The directories of one Pulse Synth installation."""

    root: Path

    @classmethod
    def default(cls) -> Paths:
        """``PULSESYNTH_ROOT`` when set, else the current directory (both resolved)."""
        return cls(Settings.from_env().root or Path.cwd().resolve())

    @property
    def schemas(self) -> Path:
        return self.root / "schemas"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def tables(self) -> Path:
        return self.warehouse / "tables"

    @property
    def database(self) -> Path:
        return self.warehouse / "pulse.duckdb"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def published(self) -> Path:
        return self.root / "published"

    def relative(self, path: Path) -> str:
        """A path relative to the root when inside it (portable catalog entries)."""
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def resolve(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.root / path
