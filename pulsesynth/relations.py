"""Codebook relations: facts a public codebook states about columns, kept by construction.

A declared schema may list ``relations`` (UCI Adult's codebook, for instance, fixes
``education_num`` by ``education``, and a husband is male):

- ``{derive: education_num, from: education, map: {Preschool: 1, ...}}`` — the derived
  column is a function of its source. The synthesizer does not model it; every sampled
  row gets it from its source through the map, so no row can contradict the codebook.
- ``{if: {relationship: Husband}, then: {sex: Male}}`` — an implication. Sampled rows
  that meet the condition take the implied values (post-processing of DP output by a
  public rule: no privacy cost, and no real row is consulted).

Rules come from the codebook, never from the data; the real table is not checked against
them (real exports contain the odd contradiction, which is the steward's business).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Derive:
    """``column`` = ``mapping[source]`` for every row."""

    column: str
    source: str
    mapping: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True)
class Implies:
    """Where every ``when`` column equals its value, set every ``then`` column."""

    when: tuple[tuple[str, Any], ...]
    then: tuple[tuple[str, Any], ...]


Relation = Derive | Implies


def derived_columns(relations: tuple[Relation, ...]) -> set[str]:
    """Columns fixed by a :class:`Derive` (the synthesizer does not model them)."""
    return {r.column for r in relations if isinstance(r, Derive)}


def apply_relations(frame: pd.DataFrame, relations: tuple[Relation, ...],
                    order: list[str] | None = None) -> pd.DataFrame:
    """Fill derived columns and enforce implications on sampled rows; ``order`` puts the
    columns back in schema order."""
    out = frame.copy()
    for rel in relations:
        if isinstance(rel, Derive):
            out[rel.column] = out[rel.source].map(dict(rel.mapping))
    for rel in relations:
        if isinstance(rel, Implies):
            hit = pd.Series(True, index=out.index)
            for name, value in rel.when:
                hit &= out[name] == value
            for name, value in rel.then:
                out.loc[hit, name] = value
    if order is not None:
        out = out[[c for c in order if c in out.columns]]
    return out


def violations(frame: pd.DataFrame, relations: tuple[Relation, ...]) -> int:
    """Rows of ``frame`` that contradict a relation (0 for every sampled table)."""
    bad = pd.Series(False, index=frame.index)
    for rel in relations:
        if isinstance(rel, Derive):
            bad |= frame[rel.column] != frame[rel.source].map(dict(rel.mapping))
        else:
            hit = pd.Series(True, index=frame.index)
            for name, value in rel.when:
                hit &= frame[name] == value
            for name, value in rel.then:
                bad |= hit & (frame[name] != value)
    return int(bad.sum())
