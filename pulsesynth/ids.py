"""Dataset ids: the one rule for every place an id enters (schema files, CLI arguments,
:meth:`Warehouse.ingest`, :func:`pipeline.start_run`, grants).

Kept apart from :mod:`pulsesynth.schema` so the CLI's argument parser can check an id
without importing pandas (help and argument errors answer at once).
"""

from __future__ import annotations

import re
from typing import Any

from pulsesynth.errors import PulseSynthError

#: A dataset id names files, directories, views and ledger rows: ASCII only (a Cyrillic
#: "а" beside a Latin "a" would make two datasets look like one), and short enough for
#: every file name built from it (``<id>.parquet``, ``<id>_model/``) on any filesystem.
DATASET_ID_MAX = 64
DATASET_ID_RULE = (f"1 to {DATASET_ID_MAX} ASCII characters: a lower-case letter, then "
                   "lower-case letters, digits or _")
_DATASET_ID = re.compile(r"[a-z][a-z0-9_]*")


class DatasetIdError(PulseSynthError, ValueError):
    """A dataset id is not an ASCII lower-case identifier of bounded length."""


def check_dataset_id(value: Any) -> str:
    """``value`` if it is a valid dataset id (:data:`DATASET_ID_RULE`), else
    :class:`DatasetIdError` in one line. The one check for every place an id enters:
    schema files, CLI arguments, :meth:`Warehouse.ingest`, :func:`pipeline.start_run`."""
    if not isinstance(value, str):
        raise DatasetIdError(f"dataset id must be a string, got {type(value).__name__}")
    if not value or len(value) > DATASET_ID_MAX:
        raise DatasetIdError(f"dataset id must be {DATASET_ID_RULE} (got {len(value)} "
                             "characters)")
    odd = next((ch for ch in value if not ch.isascii()), None)
    if odd is not None:
        # Name the code point, never print it: a look-alike prints like the Latin letter.
        raise DatasetIdError(f"dataset id must be {DATASET_ID_RULE} (got non-ASCII "
                             f"U+{ord(odd):04X} at position {value.index(odd) + 1})")
    if _DATASET_ID.fullmatch(value) is None:
        raise DatasetIdError(f"dataset id must be {DATASET_ID_RULE} (got {value!r})")
    return value
