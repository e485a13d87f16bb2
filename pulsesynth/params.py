"""Run and model parameters: the checks every ε, δ, seed and count passes where it enters,
and scikit-learn's parameter contract for the DP models.

**Checks.** :func:`check_epsilon`, :func:`check_delta`, :func:`check_seed`,
:func:`check_count` and :func:`check_positive` are the one definition of each parameter's
domain: the CLI's argument types (:mod:`pulsesynth.cli`), the pipeline's arguments
(:mod:`pulsesynth.pipeline`) and every model constructor (through :class:`RecipeParams`)
call them, so ``nan``, ``inf``, a negative ε, ``0`` rows or epochs, a δ outside (0, 1) or a
negative seed fail with the same one-line :class:`ParameterError` whatever the entry. The
public ε ceilings (:data:`pulsesynth.budget.MAX_RUN_EPSILON`) apply to governed runs on
catalogued data; a model built directly (tests, benchmarks) only needs a finite ε > 0.

**Contract.** ``get_params`` / ``set_params`` / ``clone``, so a training recipe is copied,
never re-listed argument by argument. A model's parameters are exactly its constructor's
arguments. The training hyper-parameters among them are kept in one
:class:`~pulsesynth.synth.train.TrainConfig` (``self.config``) and read back from there; the
rest are attributes of the same name.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, Self

from pulsesynth.budget import MAX_RUN_EPSILON
from pulsesynth.errors import PulseSynthError

#: Seeds are non-negative and fit in 63 bits, like the secret ones (numpy and torch take them).
MAX_SEED = 2**63 - 1
#: More epochs than this is a typo (the default is 50; DP noise grows with the steps).
MAX_EPOCHS = 10_000
#: The most shadow models an audit may train (each is a full training run).
MAX_SHADOWS = 100
#: The most synthetic rows one CLI or API draw may ask for (100× the largest benchmark table).
MAX_SAMPLE_ROWS = 100_000_000


class ParameterError(PulseSynthError, ValueError):
    """A parameter is outside its domain: one line naming the parameter and its domain."""


def _shown(value: Any) -> str:
    """The offending value as the caller typed it, cut short (never a value from a file)."""
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number, got {_shown(value)}")
    return float(value)


def check_epsilon(value: Any, name: str = "epsilon",
                  ceiling: float | None = MAX_RUN_EPSILON) -> float:
    """A privacy ε: a finite number above 0 and, unless ``ceiling`` is None, at most it."""
    eps = _real(value, name)
    if not (math.isfinite(eps) and eps > 0):
        raise ParameterError(f"{name} must be a finite number above 0, got {_shown(value)}")
    if ceiling is not None and eps > ceiling:
        raise ParameterError(f"{name} {eps:g} is above the public ceiling {ceiling:g} "
                             "(pulsesynth/budget.py)")
    return eps


def check_delta(value: Any, name: str = "delta") -> float:
    """A privacy δ: strictly between 0 and 1 (δ = 0 is pure ε-DP, which DP-SGD is not)."""
    delta = _real(value, name)
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ParameterError(f"{name} must be strictly between 0 and 1, got {_shown(value)}")
    return delta


def check_positive(value: Any, name: str) -> float:
    """A finite number above 0 (learning rate, clipping norm)."""
    number = _real(value, name)
    if not (math.isfinite(number) and number > 0):
        raise ParameterError(f"{name} must be a finite number above 0, got {_shown(value)}")
    return number


def check_count(value: Any, name: str, *, minimum: int = 1,
                maximum: int | None = None) -> int:
    """A whole number in ``[minimum, maximum]`` (rows, epochs, shadows)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be a whole number, got {_shown(value)}")
    count = int(value)
    if count < minimum or (maximum is not None and count > maximum):
        bound = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
        raise ParameterError(f"{name} must be {bound}, got {_shown(value)}")
    return count


def check_seed(value: Any, name: str = "seed") -> int:
    """A caller's seed: a whole number from 0 to 2⁶³ − 1."""
    return check_count(value, name, minimum=0, maximum=MAX_SEED)


def _epochs(value: Any, name: str) -> int:
    return check_count(value, name, maximum=MAX_EPOCHS)


def _any_epsilon(value: Any, name: str) -> float:
    return check_epsilon(value, name, ceiling=None)


#: The recipe arguments the models share, and their checks (``None`` is "the default").
RECIPE_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "epsilon": _any_epsilon, "delta": check_delta, "seed": check_seed, "epochs": _epochs,
    "batch_size": check_count, "latent_dim": check_count, "lr": check_positive,
    "max_grad_norm": check_positive, "rows_per_unit": check_count,
    "warm_start_epochs": lambda v, n: check_count(v, n, minimum=0, maximum=MAX_EPOCHS),
}


def check_recipe(params: Mapping[str, Any]) -> None:
    """Check the arguments in ``params`` that :data:`RECIPE_CHECKS` knows; ``None`` passes
    (the model's default, itself checked where it is declared)."""
    for name, check in RECIPE_CHECKS.items():
        if params.get(name) is not None:
            check(params[name], name)


class RecipeParams:
    """Mixin: constructor arguments in, the same arguments out (``sklearn.base.clone``
    rebuilds a model from ``get_params()`` the same way)."""

    config: Any  # a TrainConfig dataclass

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass constructor starts with :func:`check_recipe` on its arguments, so
        a model built directly, by ``set_params`` or by ``clone`` refuses a NaN ε, a δ of 1
        or 0 epochs before anything is trained (the constructors themselves stay as they
        are: one check here covers every model)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_checks_recipe", False):
            return

        signature = inspect.signature(init)

        @functools.wraps(init)
        def checked_init(self: Any, *args: Any, **kw: Any) -> None:
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            check_recipe({k: v for k, v in bound.arguments.items() if k != "self"})
            init(self, *args, **kw)

        checked_init._checks_recipe = True  # type: ignore[attr-defined]
        cls.__init__ = checked_init  # type: ignore[method-assign]

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
