"""Release mechanism 1: a classifier of the dataset's target trained with DP-SGD.

The names load lazily (PEP 562), so ``pulsesynth.classifier.cli`` — imported whenever the
``pulsesynth`` command builds its parser — does not pull in torch and scikit-learn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DPClassifier", "same_recipe"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pulsesynth.classifier import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
