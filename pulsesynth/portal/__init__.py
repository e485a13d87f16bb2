"""The synthetic open portal (FastAPI + Jinja2), read-only over ``published/``."""

from pulsesynth.portal.app import create_app

__all__ = ["create_app"]
