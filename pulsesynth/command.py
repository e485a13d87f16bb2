"""How a hint spells the ``pulsesynth`` command so that it works when copied.

``make setup`` installs the command as ``.venv/bin/pulsesynth``, which is not on ``PATH``
unless the virtual environment is activated: a hint that says ``pulsesynth budget set …``
fails as printed. :func:`cli_command` names the command next to the running Python,
relative to the working directory when inside it (``.venv/bin/pulsesynth`` for a steward
in the checkout), so every printed next step runs as shown. Standard library only: the
CLI's error paths import it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cli_command(executable: str | None = None) -> str:
    """The ``pulsesynth`` beside ``executable`` (default: this Python), as a user types it:
    relative to the working directory when inside it (with a ``/``, so the shell does not
    search ``PATH``), else absolute."""
    path = Path(executable or sys.executable).parent / "pulsesynth"
    try:
        rel = os.path.relpath(path)
    except ValueError:                    # another drive (Windows): keep it absolute
        return str(path)
    if rel.startswith(".."):
        return str(path)
    return rel if os.sep in rel else f".{os.sep}{rel}"
