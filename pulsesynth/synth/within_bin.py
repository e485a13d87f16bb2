"""Where inside its public bin a released numeric value lies: DP shares of sub-bins.

The declared bins are the synthesizer's resolution, and a value drawn uniformly inside
its bin loses what the rows say within it: a classifier trained on the released table
sees steps at the bin edges. On tables large beside the marginals' noise (a public
rule, :meth:`SubBins.for_plan`), every numeric column's (column, target) marginal is
also counted on *sub-bins*: each bin split into at most :data:`SUB_BINS` equal parts of its
scale (an integer bin: at most one part per integer it decodes to). The Gaussian
mechanism counts the bins with most of the marginals' privacy and their parts with the
rest (:data:`SUB_BIN_SHARE`; two Gaussian mechanisms whose ``1/σ²`` add up to the
plan's, so the privacy cost is unchanged). The bin-level tables the sampler rakes to
combine both counts, and each sub-bin's share of its (bin, class) cell places a
released value inside its bin (:class:`WithinBin`); both are post-processing.

Shares are estimated from noisy counts. A column's values are placed by them only where
its counts show class ratios that change inside its bins by more than sampling and
noise explain (:func:`_evidence`, :data:`SHAPE_EVIDENCE`): elsewhere a classifier
trained on the release would learn the sub-bins' chance steps (on the suite's
taxi_trips even the real rows placed by their exact (bin, class) shares scored lower
than placed uniformly). Where a (bin, class) cell holds few rows beside its parts'
noise, its shares lean on the bin's share over all classes, and that on uniform
(:func:`_shrunk`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pulsesynth.encoding import TableEncoder, integer_range
from pulsesynth.schema import NumericColumn
from pulsesynth.synth.marginals import (
    SELECTION_NOISE_FLOOR,
    MarginalPlan,
    NoisyMarginals,
    _consistent,
    _normalise,
    _project,
    noise_to_cells,
    noisy_counts,
)

#: Parts a bin splits into, at most.
SUB_BINS = 4
#: A column's values are placed by its sub-bin shares only where its noisy counts show a
#: shape inside the bins that differs between classes by more than this many standard
#: deviations of chance (sampling and noise); elsewhere they stay uniform in their bins,
#: whose sub-bin counts a classifier would otherwise learn as spurious steps.
SHAPE_EVIDENCE = 3.0
#: Share of the marginals' privacy (of 1/σ², which Gaussian mechanisms add) that counts
#: the sub-bins; the rest counts the bins as before, and a bin's count is the inverse-
#: variance mean of both. A table with no signal inside its bins then loses little: its
#: bins' noise variance grows by 23%, not fourfold as when the parts alone are counted.
SUB_BIN_SHARE = 0.25
#: Sub-bins are measured only where the finer plan's noise std per cell stays below this
#: fraction of its mean cell count (public: σ, the widths, the DP row count): the same
#: tenth under which the marginals are not chosen but measured whole.
SUB_BIN_NOISE_FLOOR = 0.1


@dataclass(frozen=True)
class SubBins:
    """How each encoder column's levels split: ``parts[j][k]`` sub-bins of column ``j``'s
    level ``k`` (1: not split). A function of the schema alone."""

    parts: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, encoder: TableEncoder, most: int = SUB_BINS,
           keep: Sequence[str] = ()) -> SubBins:
        """Every numeric bin of ``encoder`` split into ``most`` parts (an integer bin into
        at most its count of integers); the columns ``keep`` (the target) stay whole."""
        parts = []
        for col, block in zip(encoder.columns, encoder.block_specs, strict=True):
            split = [1] * block.width
            if isinstance(col, NumericColumn) and col.name not in keep:
                for k, level in enumerate(block.levels):
                    if not isinstance(level, tuple):
                        continue
                    if col.type == "integer":
                        first, last, inner = integer_range(level, col.exact_values,
                                                           float(col.bounds[1]))
                        split[k] = max(1, min(most, last + 1 - first - len(inner)))
                    else:
                        split[k] = most
            parts.append(tuple(split))
        return cls(tuple(parts))

    @classmethod
    def for_plan(cls, encoder: TableEncoder, plan: MarginalPlan, noise_multiplier: float,
                 rows: int) -> SubBins | None:
        """The sub-bins to measure ``plan`` on, or None (bins only): only a (column,
        target) plan measured whole (below the choosing floor) whose finer version's noise
        per cell stays below :data:`SUB_BIN_NOISE_FLOOR` (public facts only)."""
        t = plan.target_index
        if t is None or noise_to_cells(plan, noise_multiplier, rows) >= SELECTION_NOISE_FLOOR:
            return None
        sub = cls.of(encoder, keep=(plan.columns[t],))
        if sub.widths == plan.widths:
            return None
        finer = MarginalPlan(plan.columns, sub.widths, plan.groups, plan.weights)
        if noise_to_cells(finer, noise_multiplier, rows) >= SUB_BIN_NOISE_FLOOR:
            return None
        return sub

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(int(sum(p)) for p in self.parts)

    def offsets(self, j: int) -> np.ndarray:
        """First sub-bin index of each of column ``j``'s levels."""
        return np.concatenate([[0], np.cumsum(self.parts[j])[:-1]]).astype(np.int64)

    def fine_levels(self, levels: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Each cell's sub-bin index (-1 stays unobserved): its level's first sub-bin plus
        the part its position falls in."""
        out = np.full(levels.shape, -1, dtype=np.int64)
        for j, parts in enumerate(self.parts):
            lv = levels[:, j]
            ok = lv >= 0
            n = np.asarray(parts, dtype=np.int64)[lv[ok]]
            pos = np.nan_to_num(positions[ok, j], nan=0.0)
            part = np.minimum(np.floor(pos * n).astype(np.int64), n - 1)
            out[ok, j] = self.offsets(j)[lv[ok]] + part
        return out

    def coarsen(self, fine: np.ndarray, group: tuple[int, ...], plan: MarginalPlan) -> np.ndarray:
        """A group's table on sub-bins summed back to its bins (flat, as ``plan`` has it)."""
        table = fine.reshape([self.widths[j] for j in group])
        for axis, j in enumerate(group):
            table = np.add.reduceat(table, self.offsets(j), axis=axis)
        return table.reshape(-1)


@dataclass(frozen=True)
class WithinBin:
    """DP shares of each split bin's sub-bins, per encoder column: ``shares[j][k]`` is an
    array ``(classes, parts)`` (given the target's class where the column was measured
    with it, ``given[j]``; else one row), None where level ``k`` is not split."""

    given: tuple[int | None, ...]
    shares: tuple[tuple[np.ndarray | None, ...], ...]

    def positions(self, levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A position in [0, 1) inside its bin for every split cell of ``levels``: its
        sub-bin drawn by share, then uniformly inside it; NaN where a level is not split."""
        out = np.full(levels.shape, np.nan)
        for j, per_level in enumerate(self.shares):
            t = self.given[j]
            for k, share in enumerate(per_level):
                if share is None:
                    continue
                rows = np.nonzero(levels[:, j] == k)[0]
                if not len(rows):
                    continue
                cls = levels[rows, t] if t is not None else np.zeros(len(rows), np.int64)
                cum = np.cumsum(share, axis=1)[cls]
                u = rng.random(len(rows)) * cum[:, -1]
                part = np.minimum((cum <= u[:, None]).sum(axis=1), share.shape[1] - 1)
                out[rows, j] = (part + rng.random(len(rows))) / share.shape[1]
        return out

    @property
    def most_parts(self) -> int:
        """The most sub-bins any column's values are placed by (1: none); which columns
        are placed is decided from the noisy counts (DP)."""
        return max((s.shape[1] for per_level in self.shares for s in per_level
                    if s is not None), default=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (DP outputs: stored beside and released with a model)."""
        return {"given": list(self.given), "most_parts": self.most_parts,
                "shares": [[None if s is None else s.round(8).tolist() for s in per_level]
                           for per_level in self.shares]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WithinBin:
        return cls(tuple(None if t is None else int(t) for t in d["given"]),
                   tuple(tuple(None if s is None else np.asarray(s, dtype=np.float64)
                               for s in per_level) for per_level in d["shares"]))


def split_noise(noise_multiplier: float) -> tuple[float, float]:
    """The noise multipliers of the bins' and the sub-bins' counts: two Gaussian
    mechanisms whose ``1/σ²`` add up to ``1/noise_multiplier²``, one exact composition."""
    return (noise_multiplier / float(np.sqrt(1.0 - SUB_BIN_SHARE)),
            noise_multiplier / float(np.sqrt(SUB_BIN_SHARE)))


def measure(levels: np.ndarray, positions: np.ndarray, plan: MarginalPlan, sub: SubBins,
            noise_multiplier: float, rng: np.random.Generator
            ) -> tuple[NoisyMarginals, WithinBin | None]:
    """The Gaussian mechanism on ``plan``'s marginals, counted on the bins with
    ``1 - SUB_BIN_SHARE`` of its ``1/σ²`` and on sub-bins with the rest (noise std
    ``σ / sqrt(share × w)`` a cell, as :func:`~pulsesynth.synth.marginals.measure` gives
    a bin cell with ``share = 1``): one Gaussian mechanism of noise multiplier σ. Then
    (post-processing) the bins' consistent tables from both counts, and the sub-bins'
    shares of the columns whose counts show a shape inside the bins (None where none
    does)."""
    finer = MarginalPlan(plan.columns, sub.widths, plan.groups, plan.weights)
    bin_sigma, sub_sigma = split_noise(noise_multiplier)
    bins = noisy_counts(levels, plan, bin_sigma, rng)
    fine = noisy_counts(sub.fine_levels(levels, positions), finer, sub_sigma, rng)
    coarse = []
    for group, b, f in zip(plan.groups, bins, fine, strict=True):
        # A bin's two estimates by inverse variance: its count, and its parts' sum.
        parts = sub.coarsen(np.ones(finer.cells(group)), group, plan)
        w_bin, w_sum = 1.0 / bin_sigma ** 2, 1.0 / (parts * sub_sigma ** 2)
        coarse.append((w_bin * b + w_sum * sub.coarsen(f, group, plan)) / (w_bin + w_sum))
    # Each bin's noise variance in units of the plan's σ², summed over a column's levels.
    cells = [float(np.sum(1.0 / ((1.0 - SUB_BIN_SHARE) + SUB_BIN_SHARE / np.asarray(p))))
             for p in sub.parts]
    probabilities = _consistent(plan, coarse, noisy_cells=cells)
    total = max(float(np.mean([v.sum() for v in coarse])), 1.0)
    given: list[int | None] = [None] * len(plan.columns)
    shares: list[tuple[np.ndarray | None, ...]] = [
        (None,) * plan.widths[j] for j in range(len(plan.columns))]
    for group, share, v, p in zip(plan.groups, plan.shares, fine, probabilities, strict=True):
        j = group[0]
        if len(group) != 2 or max(sub.parts[j]) == 1:
            continue
        width_t = plan.widths[group[1]]
        counts = p.reshape(-1, width_t) * total  # the bins' consistent (bin, class) counts
        fine_t = v.reshape(-1, width_t)
        std = sub_sigma / np.sqrt(share)
        levels_at = [(k, o, n) for k, (o, n) in enumerate(
            zip(sub.offsets(j), sub.parts[j], strict=True)) if n > 1]
        if _evidence([fine_t[o:o + n] for _, o, n in levels_at],
                     [counts[k] for k, _, _ in levels_at], std) <= SHAPE_EVIDENCE:
            continue  # nothing inside the bins beyond noise: values stay uniform there
        given[j] = group[1]
        split = {k: _level_shares(fine_t[o:o + n], counts[k], std) for k, o, n in levels_at}
        shares[j] = tuple(split.get(k) for k in range(plan.widths[j]))
    within = WithinBin(tuple(given), tuple(shares))
    return (NoisyMarginals(plan, float(noise_multiplier), tuple(probabilities)),
            within if within.most_parts > 1 else None)


def _evidence(tables: Sequence[np.ndarray], counts: Sequence[np.ndarray],
              std: float) -> float:
    """How far a column's class ratios change inside its bins, in standard deviations of
    chance: post-processing of the noisy sub-bin counts ``(parts, classes)`` a bin.

    Under "each sub-bin holds the classes in its bin's ratio ``w``" (the bin's consistent
    counts ``counts``), the residual ``r = t - (Σt) w`` of a sub-bin's row ``t`` has mean
    0 and ``E|r|² = std²(C - 2 + C|w|²) + n(1 - |w|²)``: the noise (``C`` classes) and
    the multinomial draw of the sub-bin's ``n`` rows. The statistic is ``Σ|r|²`` against
    that mean, its spread taken as χ²-like with ``C - 1`` degrees a sub-bin."""
    stat = mean = var = 0.0
    for table, count in zip(tables, counts, strict=True):
        classes = table.shape[1]
        if count.sum() <= 0 or classes < 2:
            continue
        w = count / count.sum()
        r = table - table.sum(axis=1, keepdims=True) * w
        expected = (std ** 2 * (classes - 2 + classes * float(w @ w))
                    + np.clip(table.sum(axis=1), 0.0, None) * (1.0 - float(w @ w)))
        stat += float((r ** 2).sum())
        mean += float(expected.sum())
        var += float(2.0 * (expected ** 2).sum() / (classes - 1))
    return (stat - mean) / np.sqrt(var) if var > 0 else 0.0


def _level_shares(noisy: np.ndarray, counts: np.ndarray, std: float) -> np.ndarray:
    """One bin's sub-bin shares per class, ``(classes, parts)``, from its noisy sub-bin
    counts ``(parts, classes)`` and the bin's consistent count per class."""
    parts = noisy.shape[0]
    pooled = _shrunk(noisy.sum(axis=1), float(counts.sum()), np.full(parts, 1.0 / parts),
                     parts * std * np.sqrt(noisy.shape[1]))
    return np.vstack([_shrunk(noisy[:, c], float(counts[c]), pooled, parts * std)
                      for c in range(noisy.shape[1])])


def _shrunk(noisy: np.ndarray, count: float, prior: np.ndarray, weight: float) -> np.ndarray:
    """Noisy sub-bin counts projected onto their bin's count, then pulled towards
    ``prior`` with the weight of ``weight`` rows (the parts' noise): a cell with few rows
    beside its noise keeps the prior's shape."""
    fitted = _project(noisy, count) if count > 0 else np.zeros_like(noisy)
    return _normalise(fitted + weight * prior)
