"""Prefect flows over ``pulsesynth``: the nightly synthesis and publication.

``prefect.toml`` (project root) puts ``PREFECT_HOME`` at ``state/prefect`` relative to the
working directory; Prefect creates that directory without parents, so it is made here,
before Prefect is imported, when running from a directory holding ``prefect.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path

if (Path.cwd() / "prefect.toml").is_file() and not os.environ.get("PREFECT_HOME"):
    (Path.cwd() / "state" / "prefect").mkdir(parents=True, exist_ok=True, mode=0o700)

# Spinning OpenMP threads on small, busy machines: one thread per process unless told
# otherwise (takes effect for libraries loaded after this; tasks also cap at run time).
# A malformed PULSESYNTH_THREADS is reported (one line) by the first compute step, not here
# at import, where it would surface as a traceback.
try:
    from pulsesynth.settings import Settings

    os.environ.setdefault("OMP_NUM_THREADS", str(Settings.from_env().threads))
except ValueError:
    pass
