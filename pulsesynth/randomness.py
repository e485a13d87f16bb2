"""Randomness of private runs: fresh and secret by default, seeded only on request.

DP-SGD's noise, its Poisson batches, the initial weights and the sampling of released
rows are part of the mechanism: the (ε, δ) guarantee assumes an adversary cannot predict
them. A seed anyone could know (a default, a Prefect parameter, a published file) lets an
adversary replay training on two neighbouring tables and tell them apart exactly. So
every private step draws its seed here from OS entropy unless a caller passes one, and the
artifact records which it was (:data:`SECRET` or :data:`CALLER`): an artifact trained with
a caller-given seed is for tests, benchmarks and comparisons only and can never be
registered for release (``pulsesynth.governance.candidate``).

Opacus' ``secure_mode`` needs the ``torchcsprng`` package, whose last release (0.2.1,
2021) does not build against the pinned torch, so the noise is drawn from torch's
Mersenne-Twister generator seeded with 63 bits of OS entropy. That hides the noise from
anyone without the seed, but floating-point Gaussian samples are not exactly Gaussian
(Mironov, CCS 2012, showed this for the Laplace mechanism); the README states the caveat.
"""

from __future__ import annotations

import secrets

#: The seed came from OS entropy (``secrets``): releasable.
SECRET = "secret"
#: The caller chose the seed (tests, benchmarks): never releasable.
CALLER = "caller"


def fresh_seed() -> int:
    """63 bits of OS entropy, as a non-negative int that numpy and torch accept."""
    return secrets.randbits(63)


def resolve_seed(seed: int | None) -> tuple[int, str]:
    """``(seed, source)``: the caller's seed, or a fresh secret one when ``seed`` is None."""
    if seed is None:
        return fresh_seed(), SECRET
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    return int(seed), CALLER


def fresh_salt() -> bytes:
    """A secret 32-byte key (per-dataset role salts, one-off caps)."""
    return secrets.token_bytes(32)


def salt_from_seed(seed: int) -> bytes:
    """A *public* salt derived from a seed: for tests and benchmarks only."""
    import hashlib

    return hashlib.sha256(f"pulsesynth-public-salt:{int(seed)}".encode()).digest()
