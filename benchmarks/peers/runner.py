"""Fit one SmartNoise peer (AIM or MST) on integer-coded rows over a public domain.

Runs INSIDE ``.venv-peers`` (see ``requirements.txt`` beside this file), never in the
product's venv: it imports only numpy, pandas, ``snsynth`` and ``mbi`` -- not
``pulsesynth``. ``benchmarks.peers_bench`` (main venv) writes the input, calls this script
in a subprocess and decodes its output with the product's own encoder::

    runner.py --input DIR --output DIR --system {aim,mst} --epsilon 1.0 --delta 1e-6 \
        --seed S [--rows N] [--max-seconds N] [--no-mbi-patch]

Input DIR: ``train_levels.csv`` (one integer level per modelled column, header = column
names) and ``domain.json`` (``{"columns": {name: width, ...}}``, the public domain sizes
read from the schema). Output DIR: ``synthetic_levels.csv`` (``--rows`` rows, by default
as many as the training set, same header) and ``fit.json`` (fit time, system, epsilon,
delta, settings, patch flag, package versions).

How the systems are called: smartnoise-synth's ``fit`` would build a ``TableTransformer``
from the data (categories read off the private rows, possibly spending budget on bounds).
Here the data is already coded on the public domain, so the runner builds the
``mbi.Domain`` from ``domain.json`` and calls the mechanisms themselves --
``MSTSynthesizer.MST(data, epsilon, delta)`` and ``AIMSynthesizer.AIM(data, workload)``
with ``rho = cdp_rho(epsilon, delta)`` -- exactly what their ``fit`` does after the
transformer, so the full (epsilon, delta) goes to the mechanism and no level is ever
dropped or added by looking at the data. Sampling is the model's own
``synthetic_data`` (plus MST's ``undo_compress_fn``), again exactly as their ``sample``
does before the transformer's ``inverse_transform``.

Randomness: ``--seed`` seeds numpy's global generator, which snsynth uses for its
selection steps (exponential mechanism) and mbi for sampling; mbi's estimation is
deterministic. The measurement noise comes from OpenDP's samplers, which draw from the
operating system's CSPRNG by design and cannot be seeded: two fits with the same seed
differ in their noise, as any deployed DP mechanism should.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# One thread everywhere (the benchmark machine has 2 shared cores); set before numpy/jax.
for _key, _value in {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu"}.items():
    os.environ.setdefault(_key, _value)
#: XLA flags for every fit. mbi re-traces and re-compiles its estimation step for every
#: new model (every AIM round), so on small models compile time dominates, on large ones
#: the compiled kernels' speed: measured on census_income / diamonds (AIM, one seed,
#: loaded 2-core machine), XLA's default level 2 took ~320 s / ~230 s, level 0 ~90-140 s
#: / ~580 s, level 1 ~160 s / ~180 s. Level 1 it is (it changes how kernels are
#: compiled, not what they compute).
XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "--xla_backend_optimization_level=1")
for _flag in XLA_FLAGS:
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SYSTEMS = ("aim", "mst")

#: AIM's one fixed setting for every table. smartnoise-synth's defaults (rounds = 16 x
#: columns, 1000 mirror-descent iterations per round, each round re-fitted from scratch)
#: did not finish in 10 minutes on census_income single-threaded (49 rounds done, ~30 s
#: each). Kept: snsynth's workload, model-size cap and rounds (which set AIM's initial
#: noise scale; the budget split and accounting are snsynth's own). Changed: fewer
#: mirror-descent iterations per round, each round warm-started from the previous model
#: as upstream AIM (private-pgm mechanisms/aim.py) does, and the full 1000 iterations
#: for the final model, the one sampled. Measured on the two largest tables
#: (census_income 32.5k x 14, diamonds 37.7k x 10): ~160-180 s a fit, 24-30 rounds.
AIM_SETTINGS: dict[str, Any] = {
    "degree": 2,               # workload: all 2-way marginals (snsynth default)
    "max_cells": 10000,        # ... of at most this many cells (snsynth default)
    "num_marginals": None,     # ... all of them (snsynth default)
    "max_model_size": 80,      # MB (snsynth default)
    "rounds": None,            # snsynth default: 16 x columns (sets the initial noise)
    "round_iters": 100,        # mirror-descent iterations per round (snsynth: 1000)
    "final_iters": 1000,       # ... for the final model that is sampled (snsynth: 1000)
    "warm_start": True,        # each estimate starts from the last model (upstream AIM)
}

#: MST runs at smartnoise-synth's defaults (nothing to set beyond epsilon and delta).
MST_SETTINGS: dict[str, Any] = {
    "mirror_descent_iters_select": 1000,
    "mirror_descent_iters_final": 5000,
}

_PATCHED_FLAG = "_pulsesynth_patch"


# --- the mbi 1.1.0 rounding bug -----------------------------------------------------------


def patch_mbi_rounding() -> bool:
    """Backport mbi 2.0's fix of ``MarkovRandomField.synthetic_data(method="round")``.

    The bug (mbi 1.1.0, the version smartnoise-synth 1.0.8 pins): ``synthetic_data``
    generates columns one at a time along the junction tree; each new (child) column is
    drawn, inside every group of rows that share the same parent values, by *randomized
    rounding*: the group's m rows get the stratified uniforms ``(k + U_k) / m``,
    k = 0..m-1, which are then inverted through the child's conditional CDF. 1.1.0 hands
    rank k to the k-th row of the group *in row order* (a stable argsort of the group
    ids). Row order is not random inside a group: it is the order in which earlier
    columns were assigned, so the smallest child levels always go to the rows that got
    the smallest levels of the previous columns, and the next column again, and so on.
    The row index becomes a hidden variable that ties every column to every other one:
    each pairwise (parent, child) marginal is still right, but every dependency two or
    more hops away along the tree is spurious (a colleague measured MST on Adult falling
    from 0.80 to 0.60 TSTR AUC).

    The fix (mbi 2.0, ryan112358/private-pgm ``src/mbi/markov_random_field.py``:
    "Shuffle within each parent group to break spurious correlations with previously
    generated columns that shared the same parent set"): order the rows of each parent
    group at random before handing out the ranks, so the stratified uniforms land on
    random rows of the group. Counts per group are unchanged; only which rows get which
    child level changes. The mbi 1.0 line (pandas ``groupby().apply`` that shuffled each
    group's rounded values) had the same, correct behaviour.

    This replaces ``MarkovRandomField.synthetic_data`` by :func:`_synthetic_data_fixed`
    (a re-implementation of 1.1.0's algorithm with that one change; ``method="sample"``,
    which draws i.i.d. and so never had the bug, is passed to the original). Uses numpy's
    global generator, as mbi does. Idempotent; returns True once the patch is in place.
    """
    from mbi import markov_random_field

    cls = markov_random_field.MarkovRandomField
    if getattr(cls.synthetic_data, _PATCHED_FLAG, False):
        return True
    original = cls.synthetic_data

    def synthetic_data(self, rows: int | None = None, method: str = "round"):
        if method != "round":
            return original(self, rows=rows, method=method)
        return _synthetic_data_fixed(self, rows)

    synthetic_data.__doc__ = original.__doc__
    setattr(synthetic_data, _PATCHED_FLAG, True)
    cls.synthetic_data = synthetic_data
    return True


def _round_column(counts: np.ndarray, total: int) -> np.ndarray:
    """A shuffled column of ``total`` levels whose counts are ``counts`` scaled to
    ``total`` and randomly rounded (floors, plus the remainder handed out without
    replacement in proportion to the fractional parts): mbi 1.1.0's rule for a column
    without parents, unchanged."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    scaled = counts * (total / counts.sum())
    integer = np.floor(scaled).astype(np.int64)
    frac = scaled - integer
    extra = total - int(integer.sum())
    if extra > 0:
        integer[np.random.choice(counts.size, extra, replace=False, p=frac / frac.sum())] += 1
    values = np.repeat(np.arange(counts.size), integer)
    np.random.shuffle(values)
    return values


def _synthetic_data_fixed(model: Any, rows: int | None = None) -> Any:
    """mbi 1.1.0's randomized-rounding sampler with the within-group shuffle of mbi 2.0.

    Same junction tree, same column order (reversed elimination order), same parents
    (the already generated columns that share a model clique with the child), same
    conditionals (the model's marginal over parents + child), same stratified uniforms
    inside each parent group; the only change is that the ranks inside a group are handed
    to the group's rows in random order instead of row order.
    """
    from mbi import Dataset, junction_tree, marginal_oracles

    total = max(1, int(rows or model.total))
    domain = model.domain
    cliques = [set(cl) for cl in model.cliques]
    jtree, elimination_order = junction_tree.make_junction_tree(domain, cliques)
    marginals = marginal_oracles.message_passing_stable(
        model.potentials.expand(list(jtree.nodes)))

    data: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for col in elimination_order[::-1]:
        size = domain[col]
        neighbours = set().union(*[cl for cl in cliques if col in cl])
        parents = tuple(p for p in neighbours if p in used)
        used.add(col)
        if not parents:
            marg = np.asarray(marginals.project((col,)).datavector(flatten=False))
            data[col] = _round_column(marg, total).astype(np.min_scalar_type(size))
            continue
        joint = np.asarray(marginals.project(parents + (col,)).datavector(flatten=False),
                           dtype=np.float64)
        joint = joint.reshape(-1, size)  # one row per parent configuration
        mass = joint.sum(axis=1, keepdims=True)
        cdf = np.cumsum(np.divide(joint, mass, out=np.zeros_like(joint), where=mass != 0),
                        axis=1)
        group = np.ravel_multi_index(tuple(data[p].astype(np.int64) for p in parents),
                                     tuple(domain[p] for p in parents))
        # THE FIX: rows sorted by group, in random order inside each group (1.1.0 sorted
        # stably, i.e. kept row order inside a group).
        order = np.lexsort((np.random.random(total), group))
        sorted_group = group[order]
        counts = np.bincount(group, minlength=joint.shape[0])
        starts = np.cumsum(counts) - counts
        ranks = np.arange(total) - starts[sorted_group]
        u = (ranks + np.random.random(total)) / counts[sorted_group]
        choices = np.empty(total, dtype=np.min_scalar_type(size))
        bounds = np.flatnonzero(np.diff(sorted_group)) + 1
        for chunk in np.split(np.arange(total), bounds):
            if len(chunk) == 0:
                continue
            g = sorted_group[chunk[0]]
            picked = np.searchsorted(cdf[g], u[chunk], side="right")
            choices[order[chunk]] = np.minimum(picked, size - 1)
        data[col] = choices
    return Dataset(data, domain)


# --- exact marginals without a JAX compile per query -------------------------------------


def patch_mbi_projection() -> bool:
    """Compute ``MarkovRandomField.project`` with numpy instead of JAX (speed only).

    AIM scores every candidate marginal of its workload against the current model each
    round (``_worst_approximated`` -> ``model.project(clique)``) and MST does the same
    once for every pair; for a clique the model does not hold, mbi 1.1.0 runs
    ``marginal_oracles.variable_elimination`` as eager JAX operations, and XLA compiles
    a kernel for nearly every new shape: profiled on census_income, ~60% of an AIM fit
    was XLA compilation inside these projections. This computes the same quantity --
    the exact marginal of the model's log-potentials by variable elimination (greedy
    min-size order), scaled to the model's total; or, for a clique inside one of the
    model's marginals, the sum over that marginal -- in float64 numpy, and returns it as
    the same ``Factor``. The mechanisms' selection, noise, estimation and sampling are
    untouched. Idempotent; returns True once in place.
    """
    from mbi import markov_random_field

    cls = markov_random_field.MarkovRandomField
    if getattr(cls.project, _PATCHED_FLAG, False):
        return True

    def project(self, attrs):
        from mbi import Factor

        attrs = (attrs,) if isinstance(attrs, str) else tuple(attrs)
        if self.marginals.supports(attrs):
            parent = self.marginals[self.marginals.parent(attrs)]
            values = _sum_to(parent.domain.attrs, np.asarray(parent.values, np.float64),
                             attrs)
        else:
            values = _eliminate(self.potentials, attrs, float(self.total))
        return Factor(self.domain.project(attrs), _as_jax(values))

    setattr(project, _PATCHED_FLAG, True)
    cls.project = project
    return True


def _as_jax(values: np.ndarray) -> Any:
    import jax.numpy as jnp

    return jnp.asarray(values, dtype=jnp.float32)


def _sum_to(have: tuple[str, ...], values: np.ndarray, want: tuple[str, ...]) -> np.ndarray:
    """Sum ``values`` (axes named ``have``) down to the axes ``want``, in that order."""
    drop = tuple(i for i, a in enumerate(have) if a not in want)
    kept = [a for a in have if a in want]
    out = values.sum(axis=drop) if drop else values
    return np.transpose(out, [kept.index(a) for a in want])


def _aligned(attrs: tuple[str, ...], values: np.ndarray, target: tuple[str, ...],
             sizes: dict[str, int]) -> np.ndarray:
    """``values`` (axes ``attrs``) reshaped to broadcast over the axes ``target``."""
    order = sorted(range(len(attrs)), key=lambda i: target.index(attrs[i]))
    moved = np.transpose(values, order)
    return moved.reshape([sizes[a] if a in attrs else 1 for a in target])


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.squeeze(peak, axis) + np.log(np.sum(np.exp(values - peak), axis=axis))


def _eliminate(potentials: Any, query: tuple[str, ...], total: float) -> np.ndarray:
    """Exact marginal over ``query`` of the model whose log-potentials are
    ``potentials`` (an mbi CliqueVector), scaled to sum to ``total``."""
    sizes = dict(zip(potentials.domain.attrs, potentials.domain.shape, strict=True))
    factors = [(tuple(f.domain.attrs), np.asarray(f.values, np.float64))
               for f in potentials.arrays.values()]
    hidden = {a for attrs, _ in factors for a in attrs} - set(query)
    def cost(var: str, factors: list[tuple[tuple[str, ...], np.ndarray]]) -> int:
        scope = set().union(*[set(a) for a, _ in factors if var in a])
        return int(np.prod([sizes[v] for v in scope]))

    while hidden:
        var = min(sorted(hidden), key=functools.partial(cost, factors=factors))
        hidden.discard(var)
        touching = [(a, v) for a, v in factors if var in a]
        factors = [(a, v) for a, v in factors if var not in a]
        scope = tuple(sorted(set().union(*[set(a) for a, _ in touching])))
        joint = sum(_aligned(a, v, scope, sizes) for a, v in touching)
        joint = np.broadcast_to(joint, [sizes[x] for x in scope])
        factors.append((tuple(x for x in scope if x != var),
                        _logsumexp(joint, scope.index(var))))
    log = np.zeros([sizes[a] for a in query])
    for attrs, values in factors:
        log = log + _aligned(attrs, values, query, sizes)
    log = log - log.max()
    prob = np.exp(log)
    return prob * (total / prob.sum())


# --- fitting ---------------------------------------------------------------------------


class _TimeUp(Exception):
    """Raised from inside AIM's loop when ``--max-seconds`` has passed."""


class _AIMEstimation:
    """Stands in for ``mbi.estimation`` inside ``snsynth.aim.aim`` for one fit.

    Forwards every ``mirror_descent`` call with ``iters`` capped to the setting, optionally
    warm-started from the previous model (as upstream AIM does; snsynth re-fits from
    scratch each round), counts the calls and keeps the last model so that a fit stopped
    by ``--max-seconds`` still returns the model of the measurements taken so far (DP
    holds: those measurements spent less than the budget).
    """

    def __init__(self, iters: int, final_iters: int, warm_start: bool,
                 deadline: float | None) -> None:
        from mbi import estimation

        self._estimation = estimation
        self.iters = iters
        self.final_iters = final_iters
        self.warm_start = warm_start
        self.deadline = deadline
        self.calls = 0
        self.last_model: Any = None
        self.last_kwargs: dict[str, Any] = {}
        self.measurements: list[Any] = []

    def mirror_descent(self, domain: Any, measurements: list[Any], **kwargs: Any) -> Any:
        # snsynth's AIM estimates once more after its loop on the same measurements:
        # that final model is the one sampled.
        final = self.last_model is not None and len(measurements) == len(self.measurements)
        if not final and self.deadline is not None and self.last_model is not None \
                and time.monotonic() > self.deadline:
            raise _TimeUp
        kwargs["iters"] = self.final_iters if final else self.iters
        if self.warm_start and self.last_model is not None and "potentials" not in kwargs:
            cliques = list({m.clique for m in measurements})
            kwargs["potentials"] = self.last_model.potentials.expand(cliques)
        model = self._estimation.mirror_descent(domain, measurements, **kwargs)
        self.last_kwargs = {k: v for k, v in kwargs.items() if k == "marginal_oracle"}
        self.calls += 1
        self.last_model = model
        self.measurements = list(measurements)
        return model


def _fit_aim(data: Any, epsilon: float, delta: float, deadline: float | None
             ) -> tuple[Any, dict[str, Any]]:
    from snsynth.aim import AIMSynthesizer
    from snsynth.aim import aim as aim_module
    from snsynth.utils import cdp_rho

    s = AIM_SETTINGS
    synth = AIMSynthesizer(epsilon=epsilon, delta=delta, max_model_size=s["max_model_size"],
                           degree=s["degree"], num_marginals=s["num_marginals"],
                           max_cells=s["max_cells"], rounds=s["rounds"])
    # What AIMSynthesizer.fit does once its transformer has coded the data:
    synth.rho = 0.0 if delta == 0.0 else cdp_rho(epsilon, delta)
    workload = synth.get_workload(data, degree=s["degree"], max_cells=s["max_cells"],
                                  num_marginals=s["num_marginals"])
    shim = _AIMEstimation(s["round_iters"], s["final_iters"], s["warm_start"], deadline)
    saved = aim_module.estimation
    aim_module.estimation = shim
    stopped_early = False
    try:
        synth.AIM(data, workload)
        model = synth.synthesizer
    except _TimeUp:
        # Measurements so far spent less than the budget; their final estimate is DP.
        stopped_early = True
        model = shim._estimation.mirror_descent(
            data.domain, shim.measurements, iters=s["final_iters"],
            potentials=shim.last_model.potentials, **shim.last_kwargs)
    finally:
        aim_module.estimation = saved
    info = {
        "rho": float(synth.rho),
        "rounds_setting": synth.rounds or 16 * len(data.domain),
        "rounds_run": len(shim.measurements) - len(data.domain),
        "workload_marginals": len(workload),
        "measurements": len(shim.measurements),
        "measured_cliques": [list(m.clique) for m in shim.measurements if len(m.clique) > 1],
        "estimation_calls": shim.calls,
        "stopped_early": stopped_early,
    }
    return model, info


def _fit_mst(data: Any, epsilon: float, delta: float) -> tuple[Any, dict[str, Any]]:
    from snsynth.mst import MSTSynthesizer
    from snsynth.utils import cdp_rho

    synth = MSTSynthesizer(epsilon=epsilon, delta=delta)
    synth.MST(data, epsilon, delta)  # what MSTSynthesizer.fit does after its transformer
    model = synth.synthesizer
    info = {"rho": float(cdp_rho(epsilon, delta)),
            "measured_cliques": [list(cl) for cl in model.cliques if len(cl) > 1]}
    return (model, synth.undo_compress_fn), info


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in ("smartnoise-synth", "smartnoise-sql", "mbi", "opendp", "jax", "jaxlib",
                 "numpy", "pandas", "scipy", "networkx"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def read_input(directory: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The training levels and the public domain, checked against each other."""
    spec = json.loads((directory / "domain.json").read_text())
    widths = {str(k): int(v) for k, v in spec["columns"].items()}
    levels = pd.read_csv(directory / "train_levels.csv", dtype=np.int64)
    if list(levels.columns) != list(widths):
        raise ValueError("train_levels.csv header does not match domain.json's columns")
    for name, width in widths.items():
        col = levels[name].to_numpy()
        if len(col) and (col.min() < 0 or col.max() >= width):
            raise ValueError(f"column {name!r} has levels outside 0..{width - 1}")
    return levels, widths


def run(input_dir: Path, output_dir: Path, system: str, epsilon: float, delta: float,
        seed: int, max_seconds: float | None = None, mbi_patch: bool = True,
        rows: int | None = None) -> dict[str, Any]:
    """Fit ``system`` on the input, sample ``rows`` rows (default: as many as the training
    set), write both output files; returns what ``fit.json`` holds."""
    from mbi import Dataset, Domain

    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}")
    levels, widths = read_input(input_dir)
    names = list(widths)
    # mbi attribute names are internal ("c0", "c1", ...): the real names may hold any
    # character; the output header restores them.
    attrs = [f"c{i}" for i in range(len(names))]
    domain = Domain(attrs, [widths[n] for n in names])
    data = Dataset({a: levels[n].to_numpy() for a, n in zip(attrs, names, strict=True)},
                   domain)
    sample_rows = len(levels) if rows is None else int(rows)
    np.random.seed(seed)
    patch_mbi_projection()
    if mbi_patch:
        patch_mbi_rounding()

    start = time.monotonic()
    deadline = None if max_seconds is None else start + max_seconds
    if system == "aim":
        model, info = _fit_aim(data, epsilon, delta, deadline)
        fit_seconds = time.monotonic() - start
        synthetic = model.synthetic_data(rows=sample_rows).df
        settings = dict(AIM_SETTINGS)
    else:
        (model, undo_compress), info = _fit_mst(data, epsilon, delta)
        fit_seconds = time.monotonic() - start
        synthetic = undo_compress(model.synthetic_data(rows=sample_rows)).df
        settings = dict(MST_SETTINGS)
    sample_seconds = time.monotonic() - start - fit_seconds

    out = pd.DataFrame({n: np.asarray(synthetic[a], dtype=np.int64)
                        for a, n in zip(attrs, names, strict=True)})
    output_dir.mkdir(parents=True, exist_ok=True)
    out.to_csv(output_dir / "synthetic_levels.csv", index=False)
    record = {
        "system": system,
        "epsilon": epsilon,
        "delta": delta,
        "seed": seed,
        "rows": int(len(levels)),
        "sampled_rows": sample_rows,
        "columns": len(names),
        "fit_seconds": round(fit_seconds, 3),
        "sample_seconds": round(sample_seconds, 3),
        "max_seconds": max_seconds,
        "settings": settings,
        "mbi_rounding_patch": bool(mbi_patch),
        "mbi_projection": "numpy (exact; patch_mbi_projection)",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "noise": "OpenDP Gaussian samplers (OS CSPRNG, not seedable)",
        "versions": _versions(),
        **info,
    }
    (output_dir / "fit.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=None,
                        help="rows to sample (default: as many as the training set)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="AIM only: stop selecting new marginals after this many "
                             "seconds and use the model so far (recorded as stopped_early)")
    parser.add_argument("--no-mbi-patch", dest="mbi_patch", action="store_false",
                        help="sample with mbi 1.1.0's buggy rounding (for comparison)")
    args = parser.parse_args(argv)
    record = run(args.input, args.output, args.system, args.epsilon, args.delta, args.seed,
                 args.max_seconds, args.mbi_patch, args.rows)
    print(f"{args.system} seed {args.seed}: fit {record['fit_seconds']:.1f} s, "
          f"{record['rows']} rows x {record['columns']} columns -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
