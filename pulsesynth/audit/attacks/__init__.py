"""Membership and disclosure attacks; importing the package registers every membership
attack with :func:`pulsesynth.audit.attacks.base.create_attack`."""

from pulsesynth.audit.attacks import calibrated, domias, membership, query  # noqa: F401
