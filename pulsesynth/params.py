"""scikit-learn's parameter contract for the DP models: ``get_params`` / ``set_params`` /
``clone``, so a training recipe is copied, never re-listed argument by argument.

A model's parameters are exactly its constructor's arguments. The training
hyper-parameters among them are kept in one :class:`~pulsesynth.synth.train.TrainConfig`
(``self.config``) and read back from there; the rest are attributes of the same name.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Self


class RecipeParams:
    """Mixin: constructor arguments in, the same arguments out (``sklearn.base.clone``
    rebuilds a model from ``get_params()`` the same way)."""

    config: Any  # a TrainConfig dataclass

    @classmethod
    def _param_names(cls) -> list[str]:
        """The constructor's argument names, in signature order (as scikit-learn's)."""
        params = inspect.signature(cls.__init__).parameters
        return [name for name in params if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments that rebuild this recipe (``deep`` is accepted for
        scikit-learn compatibility: no parameter is itself an estimator)."""
        fields = {f.name for f in dataclasses.fields(self.config)}
        return {name: getattr(self.config if name in fields else self, name)
                for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change parameters by name; returns self. Re-runs the constructor with the
        merged arguments, so validation and derived state (encoder, config) follow the
        new recipe; a fitted model is dropped, since it no longer matches the recipe."""
        current = self.get_params()
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {unknown}")
        type(self).__init__(self, **(current | params))
        return self

    def clone(self, **overrides: Any) -> Self:
        """An unfitted model with this exact recipe, ``overrides`` applied (e.g. a new
        ``seed``)."""
        return type(self)(**(self.get_params() | overrides))

    @classmethod
    def recipe_from_config(cls, config: Any) -> dict[str, Any]:
        """The constructor arguments held in a saved :class:`TrainConfig`, limited to
        those this model takes (the classifier has no ``kl_weight`` or ``latent_dim``)."""
        names = set(cls._param_names())
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name in names}
