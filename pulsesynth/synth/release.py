"""Sampling from a *published* model release (white paper mechanism 2).

A published ``model`` release directory holds ``weights.pt``, ``model.json``,
``schema.yaml``, ``modelcard.json`` and ``modelcard.md``. These helpers read the three
files a sampler needs, check each against the SHA-256 the model card lists, rebuild the
DP-VAE with :meth:`DPVAESynthesizer.from_release` and draw seeded rows conformed to the
declared schema's storage types. Sampling is post-processing of a DP output: it spends no
privacy budget, whatever ``n``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pulsesynth.artifacts import MODELCARD_JSON, SCHEMA_YAML, WEIGHTS_RELEASE_FILES, ReleaseDir
from pulsesynth.errors import PulseSynthError
from pulsesynth.schema import DatasetSchema, parse_schema


class ReleaseFileError(PulseSynthError):
    """A release directory is incomplete, or a file differs from what its card lists."""


def read_release_files(release_dir: str | Path) -> dict[str, bytes]:
    """The sampler's files of a published model release, each checked against the SHA-256
    that ``modelcard.json`` lists (a changed or swapped file is refused)."""
    release_dir = Path(release_dir)
    card_path = ReleaseDir(release_dir).modelcard_json
    if not card_path.is_file():
        raise ReleaseFileError(f"{release_dir}: not a published model release "
                               f"(no {MODELCARD_JSON})")
    try:
        card = json.loads(card_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseFileError(f"{card_path}: unreadable ({exc.__class__.__name__})") from exc
    if card.get("kind") != "model":
        raise ReleaseFileError(f"{release_dir}: a {card.get('kind')!r} release, not a model: "
                               "only model releases can be sampled")
    listed = {f.get("name"): f.get("sha256") for f in card.get("files", [])
              if isinstance(f, dict)}
    out: dict[str, bytes] = {}
    for name in WEIGHTS_RELEASE_FILES:
        path = release_dir / name
        if not path.is_file() or path.is_symlink():
            raise ReleaseFileError(f"{release_dir}: release lacks {name}")
        data = path.read_bytes()
        if listed.get(name) != hashlib.sha256(data).hexdigest():
            raise ReleaseFileError(f"{path}: SHA-256 differs from the one {MODELCARD_JSON} "
                                   "lists; the file was changed after publication")
        out[name] = data
    return out


def release_schema(files: Mapping[str, bytes]) -> DatasetSchema:
    """The declared schema shipped with the release."""
    raw: Any = yaml.safe_load(files[SCHEMA_YAML].decode("utf-8"))
    return parse_schema(raw)


def load_release(files: Mapping[str, bytes]):
    """Rebuild the released DP-VAE from verified file bytes (refuses a schema mismatch)."""
    from pulsesynth.synth.synthesizer import DPVAESynthesizer

    return DPVAESynthesizer.from_release(files, release_schema(files))


def sample_rows(synth: Any, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` seeded synthetic rows in the declared storage types (same seed, same rows)."""
    from pulsesynth.frames import conform

    return conform(synth.sample(int(n), seed=int(seed)), synth.schema)
