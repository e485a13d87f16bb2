"""What every membership attack shares: the attacker's knowledge, shadows, one interface.

An attack is fitted on what the attacker holds (:class:`AttackData`: the released rows, the
auditor's reference rows, the release mechanism, and the model itself for white-box
attacks), then scores records: higher means "more likely a member". Its decision threshold
is learnt in :meth:`MembershipAttack.fit` from the attacker's own data, never from the
evaluation rows. :meth:`MembershipAttack.run` scores a balanced set of members and
non-members into an :class:`~pulsesynth.audit.metrics.AttackResult`;
:meth:`MembershipAttack.decisions` gives the call on every row for the DP release report.

Shadows are the expensive part and are shared between attacks: a *shadow model* is the
target's recipe trained on reference rows (white-box attacks), a *shadow release* is the
exact release mechanism run on reference rows (table attacks). Each is an independent job
(:func:`train_shadow_model`, :func:`make_shadow_release`) that an orchestrator may run in
parallel and pass back as :class:`Shadows`.

Attacks are registered by name (like Opacus's accountant registry): :func:`create_attack`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from pulsesynth.audit.metrics import AttackResult, score_attack
from pulsesynth.audit.release_stats import MembershipDecisions
from pulsesynth.schema import DatasetSchema

if TYPE_CHECKING:
    from pulsesynth.synth import DPVAESynthesizer

#: A release mechanism: (member rows, seed) -> released table.
Mechanism = Callable[[pd.DataFrame, int], pd.DataFrame]
#: Seed offsets keep every random choice of one audit independent.
PAIR_SEED, MODEL_SEED, RELEASE_SEED = 0, 1000, 2000


@dataclass(frozen=True)
class ShadowPair:
    """Shadow members and non-members: disjoint draws from the auditor's reference rows."""

    members: pd.DataFrame
    non_members: pd.DataFrame


@dataclass(frozen=True)
class ShadowModel:
    """The target's recipe trained on ``pair.members``."""

    pair: ShadowPair
    model: DPVAESynthesizer


@dataclass(frozen=True)
class ShadowRelease:
    """The release mechanism run on ``pair.members``: a table the attacker could make."""

    pair: ShadowPair
    synthetic: pd.DataFrame


@dataclass
class Shadows:
    """Shadows trained so far (by an orchestrator, or lazily by :func:`ensure_shadows`)."""

    models: list[ShadowModel] = field(default_factory=list)
    releases: list[ShadowRelease] = field(default_factory=list)


@dataclass
class AttackData:
    """Everything the attacker of one release holds; never the target's members.

    ``reference`` is the auditor's data for shadows: in the pipeline a fresh draw from the
    released model (so every rule is post-processing of DP outputs), in benchmarks real
    rows disjoint from the target's. ``real_reference`` are real rows from the same
    population, disjoint from members and non-members: only attacks whose figures stay
    with the steward may use them (their rules are not DP outputs). ``train_rows`` is the
    target's public (DP) training-row count: shadows train on that many rows.

    ``seed`` is public on purpose (the CLI's ``audit --seed``, default 0): it drives only
    the attacker's own choices — which reference rows each shadow trains on, the shadows'
    training, the balanced evaluation samples — and every input it touches is a DP output
    (the pipeline's reference rows are draws from the released model). What reaches a
    published file is the DP release report, whose Laplace noise is seeded from the run's
    secret seed (:func:`pulsesynth.pipeline.release_statistics`).
    """

    schema: DatasetSchema
    synthetic: pd.DataFrame
    reference: pd.DataFrame
    mechanism: Mechanism | None = None
    model: DPVAESynthesizer | None = None
    train_rows: int | None = None
    real_reference: pd.DataFrame | None = None
    n_shadows: int = 1
    seed: int = 0
    shadows: Shadows = field(default_factory=Shadows)

    def shadow_size(self) -> int:
        size = min(int(self.train_rows or len(self.reference) // 2), len(self.reference) // 2)
        if size < 10:
            raise ValueError("reference data too small for shadows (need at least 20 rows)")
        return size


def shadow_pair(data: AttackData, index: int) -> ShadowPair:
    """Shadow ``index``'s members and non-members (the same for every attack of one audit)."""
    size = data.shadow_size()
    rng = np.random.default_rng([data.seed, PAIR_SEED, index])
    order = rng.permutation(len(data.reference))
    return ShadowPair(data.reference.iloc[order[:size]],
                      data.reference.iloc[order[size:2 * size]])


def same_recipe(target: DPVAESynthesizer, seed: int) -> DPVAESynthesizer:
    """An untrained synthesizer with the target's exact training recipe and a new seed.

    Shadow models report no progress: the target's callback belongs to its own run."""
    return target.clone(seed=seed, progress=None)


def vae_release(target: DPVAESynthesizer, rows: int) -> Mechanism:
    """The target's release mechanism: train with its recipe, then sample ``rows`` rows."""

    def release(members: pd.DataFrame, seed: int) -> pd.DataFrame:
        return same_recipe(target, seed).fit(members).sample(rows, seed=seed)

    return release


def train_shadow_model(data: AttackData, index: int) -> ShadowModel:
    """Shadow model ``index``: the target's recipe on shadow members (white-box attacks)."""
    if data.model is None:
        raise ValueError("shadow models need the target model (a white-box attack)")
    pair = shadow_pair(data, index)
    model = same_recipe(data.model, data.seed + MODEL_SEED + index).fit(pair.members)
    return ShadowModel(pair, model)


def make_shadow_release(data: AttackData, index: int) -> ShadowRelease:
    """Shadow release ``index``: the exact release mechanism run on shadow members."""
    if data.mechanism is None:
        raise ValueError("shadow releases need the release mechanism")
    pair = shadow_pair(data, index)
    return ShadowRelease(pair, data.mechanism(pair.members, data.seed + RELEASE_SEED + index))


def ensure_shadows(data: AttackData, *, models: bool = False, releases: bool = False) -> Shadows:
    """Train the shadows an attack needs that no orchestrator has passed in."""
    if models:
        while len(data.shadows.models) < data.n_shadows:
            data.shadows.models.append(train_shadow_model(data, len(data.shadows.models)))
    if releases:
        while len(data.shadows.releases) < data.n_shadows:
            data.shadows.releases.append(make_shadow_release(data, len(data.shadows.releases)))
    return data.shadows


def balanced(members: pd.DataFrame, non_members: pd.DataFrame, limit: int,
             seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Equal-size random samples (at most ``limit`` each) of members and non-members."""
    n = min(len(members), len(non_members), limit)
    rng = np.random.default_rng(seed)
    return (members.iloc[np.sort(rng.choice(len(members), n, replace=False))],
            non_members.iloc[np.sort(rng.choice(len(non_members), n, replace=False))])


class MembershipAttack(ABC):
    """One membership-inference attack: ``fit`` on the attacker's data, ``score`` records.

    Subclasses set ``name``, ``white_box`` (needs the model), ``shadow_kinds``,
    ``uses_real_reference``
    (its rule depends on real rows: its figures stay with the steward and never enter the
    DP release report) and implement :meth:`fit` (which sets ``threshold_``) and
    :meth:`score`.
    """

    name: ClassVar[str]
    white_box: ClassVar[bool] = False
    uses_real_reference: ClassVar[bool] = False
    #: Shared shadows the attack uses: "model" (target-recipe models), "release".
    shadow_kinds: ClassVar[tuple[str, ...]] = ()
    #: What the attack costs, in words, for the report (shadow counts are added).
    cost: ClassVar[str] = ""

    def __init__(self, max_eval: int = 2000, seed: int = 0) -> None:
        self.max_eval = max_eval
        self.seed = seed
        self.threshold_: float | None = None
        self.details_: dict[str, Any] = {}

    @abstractmethod
    def fit(self, data: AttackData) -> MembershipAttack:
        """Learn the attack's rule and ``threshold_`` from ``data`` alone."""

    @abstractmethod
    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """Membership score of each row (higher: more likely a member)."""

    def _require_fitted(self) -> float:
        if self.threshold_ is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        return self.threshold_

    def evaluate(self, members: pd.DataFrame, non_members: pd.DataFrame,
                 targets: str = "random") -> AttackResult:
        """Score the fitted attack on these members and non-members (balanced first)."""
        threshold = self._require_fitted()
        m, n = balanced(members, non_members, self.max_eval, self.seed)
        return score_attack(self.name, self.score(m), self.score(n), threshold,
                            self.details_ | {"targets": targets})

    def run(self, data: AttackData, members: pd.DataFrame,
            non_members: pd.DataFrame) -> AttackResult:
        """Fit on ``data``, then attack random ``members`` against ``non_members``."""
        return self.fit(data).evaluate(members, non_members)

    def decisions(self, members: pd.DataFrame,
                  non_members: pd.DataFrame) -> MembershipDecisions:
        """The call ("member" above the threshold) on every row: what the DP release report
        counts (:mod:`pulsesynth.audit.release_stats`)."""
        threshold = self._require_fitted()
        return MembershipDecisions(self.name, self.score(members) > threshold,
                                   self.score(non_members) > threshold)


ATTACKS: dict[str, type[MembershipAttack]] = {}


def register(cls: type[MembershipAttack]) -> type[MembershipAttack]:
    """Class decorator: make an attack available to :func:`create_attack` by its name."""
    ATTACKS[cls.name] = cls
    return cls


def create_attack(name: str, **kwargs: Any) -> MembershipAttack:
    """A new attack by registered name (importing the attack modules registers them)."""
    from pulsesynth.audit import attacks  # noqa: F401  (registers every attack)

    try:
        return ATTACKS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}") from None
