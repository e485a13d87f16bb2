"""Membership and disclosure attacks; importing the package registers every membership
attack with :func:`pulsesynth.audit.attacks.base.create_attack`."""

from pulsesynth.audit.attacks import calibrated, membership  # noqa: F401
