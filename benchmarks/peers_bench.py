"""SmartNoise AIM and MST at ε = 1 on every table of the development suite, side by side
with the product: the same split, the same public bins and the same TSTR classifier.

Run by ``make bench-peers`` (or ``.venv/bin/python -m benchmarks.peers_bench [--tables a,b]
[--systems aim,mst,real,real_binned,majority] [--seeds 0,1,2,3,4,5,6] [--peers-python
.venv-peers/bin/python] [--fresh] [--epsilon E | --at-table-budget --output FILE]``);
``make bench-peers-table-budget`` runs AIM at only what the product's table costs of
ε = 1 (training + row count, :attr:`pulsesynth.budget.BudgetSplit.table`) into
``benchmarks/results/peers_table_budget.json``. For every suite table:

1. ``train, test, schema = split_table(name)`` -- the suite's fixed public split;
2. the training rows are capped per privacy unit exactly as the product caps its own
   (:func:`pulsesynth.splits.cap_rows_per_unit` at the rows per unit the product trains
   on, :attr:`DPVAESynthesizer.trained_rows_per_unit`, salt :data:`CAP_SALT`), so that
   ε = 1 means the same guarantee -- per person, not per row -- for every system and the
   peers fit the same kind of rows (``fit_rows``); they sample as many rows as the product
   releases, the training rows capped at the schema's ``max_rows_per_unit``
   (``sampled_rows``); then the rows become levels on the schema's public domain
   (``TableEncoder(schema).levels``: declared categories, public bins, missing level); the
   few rows with an unobserved cell (-1: out of domain in a non-nullable column) are
   dropped and counted (``dropped_rows``);
3. the peers (``aim``, ``mst``) are fitted on those levels over the public domain sizes by
   ``benchmarks/peers/runner.py`` in the separate venv ``.venv-peers`` (smartnoise-synth
   pins an old torch through opacus, so it never enters the product's venv), one
   subprocess per fit; their synthetic levels are decoded exactly as the product decodes
   its own (``TableEncoder.decode_levels``, values uniform inside their public bin, then
   the schema's codebook relations);
4. every table is scored by :func:`pulsesynth.utility.tstr_scores` (hist_gb, seed 0,
   tested on the real test rows) and :func:`pulsesynth.utility.marginal_tv` (1- and
   2-way, against the real test rows).

References: ``real`` (TRTR: the classifier trained on the real training rows),
``real_binned`` (trained on the real training rows pushed through the public bins, i.e.
decoded from their own levels: the ceiling any system that works on these bins can
reach), ``majority`` (always the training majority class; AUC 0.5). They are deterministic
and computed once (seed 0).

Writes ``benchmarks/results/peers.json`` = ``{"settings": {...}, "rows": [{"table",
"system", "seed", "accuracy", "auc", "tv1", "tv2", "fit_seconds", "epsilon", ...}]}``
after every finished fit (atomically); rows already there are skipped, so an interrupted
run resumes (``--fresh`` starts over). ``benchmarks.utility_suite`` merges these rows.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Single-threaded, here and in the runner subprocesses (2 shared cores).
_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PULSESYNTH_THREADS": "1"}
for _key, _value in _THREADS.items():
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pulsesynth.budget import BudgetSplit  # noqa: E402
from pulsesynth.dp import GroupPrivacy  # noqa: E402
from pulsesynth.encoding import TableEncoder  # noqa: E402
from pulsesynth.schema import DatasetSchema  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "peers.json"
RUNNER = Path(__file__).resolve().parent / "peers" / "runner.py"
DEFAULT_PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"

EPSILON = 1.0
#: The peers' δ for every table (zCDP -> (ε, δ) conversion inside snsynth).
DELTA = 1e-6
PEERS = ("aim", "mst")
REFERENCES = ("real", "real_binned", "majority")
SYSTEMS = PEERS + REFERENCES
CLASSIFIER = "hist_gb"
CLASSIFIER_SEED = 0
#: AIM's wall-clock guard (runner ``--max-seconds``): past it AIM stops selecting
#: marginals and uses the model of what it measured (spending less than ε; recorded as
#: ``stopped_early``). Set well above the ~4 min the fixed setting takes on the largest
#: table, so it only catches a pathological fit.
AIM_MAX_SECONDS = 900
#: Subprocess timeouts (fit + sampling + start-up), seconds.
TIMEOUT = {"aim": AIM_MAX_SECONDS + 900, "mst": 1800}

#: Public salt of the benchmark's per-unit cap (the product draws its own secret one).
CAP_SALT = b"pulsesynth-benchmark-peers-cap"

ROW_KEYS = ("table", "system", "seed", "accuracy", "auc", "tv1", "tv2", "fit_seconds",
            "epsilon")


# --- levels out, levels in -----------------------------------------------------------------


def export_levels(frame: pd.DataFrame, schema: DatasetSchema
                  ) -> tuple[pd.DataFrame, dict[str, int], int]:
    """``(levels, widths, dropped)``: one integer level per modelled column (header = the
    column names, schema order), the public domain size of each column, and how many rows
    were dropped because a cell is unobserved (-1)."""
    enc = TableEncoder(schema)
    levels = enc.levels(frame)
    keep = (levels >= 0).all(axis=1)
    names = [b.name for b in enc.block_specs]
    widths = {b.name: int(b.width) for b in enc.block_specs}
    return pd.DataFrame(levels[keep], columns=names), widths, int((~keep).sum())


def capped_rows(train: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The training rows a DP system fits on for a per-unit guarantee: as many rows of
    each privacy unit as the product trains on (at most the schema's cap)."""
    from pulsesynth.splits import cap_rows_per_unit

    return cap_rows_per_unit(train, schema, fit_rows_per_unit(schema), salt=CAP_SALT)


def fit_rows_per_unit(schema: DatasetSchema) -> int:
    """Rows of each privacy unit the peers fit on: as many as the product trains on."""
    from pulsesynth.synth import DPVAESynthesizer

    return DPVAESynthesizer(schema).trained_rows_per_unit


def release_rows(train: pd.DataFrame, schema: DatasetSchema) -> int:
    """How many rows a system samples: the training rows capped at the schema's
    ``max_rows_per_unit``, the count the product's release is sized by."""
    from pulsesynth.splits import cap_rows_per_unit

    k = schema.privacy.max_rows_per_unit
    return len(cap_rows_per_unit(train, schema, k, salt=CAP_SALT))


def write_input(directory: Path, levels: pd.DataFrame, widths: dict[str, int]) -> None:
    """The runner's input: ``train_levels.csv`` and ``domain.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    levels.to_csv(directory / "train_levels.csv", index=False)
    (directory / "domain.json").write_text(json.dumps({"columns": widths}, indent=1) + "\n")


def decode_levels(levels: np.ndarray | pd.DataFrame, schema: DatasetSchema,
                  seed: int) -> pd.DataFrame:
    """Levels -> a table, exactly as the product decodes: values drawn inside their
    public bin with ``default_rng(seed)``, then the schema's codebook relations."""
    enc = TableEncoder(schema)
    if isinstance(levels, pd.DataFrame):
        names = [b.name for b in enc.block_specs]
        if list(levels.columns) != names:
            raise ValueError("level columns do not match the schema's modelled columns")
        levels = levels.to_numpy()
    frame = enc.decode_levels(np.asarray(levels, dtype=np.int64), np.random.default_rng(seed))
    if schema.relations:
        from pulsesynth.relations import apply_relations

        frame = apply_relations(frame, schema.relations,
                                [c.name for c in schema.synthesized_columns])
    return frame


# --- scores -----------------------------------------------------------------------------------


def score(schema: DatasetSchema, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """TSTR (TRTR for real rows) accuracy / AUC and 1-/2-way marginal TV vs the test rows."""
    from pulsesynth.utility import marginal_tv, tstr_scores

    scores = tstr_scores(schema, train, test, classifier=CLASSIFIER, seed=CLASSIFIER_SEED)
    return {"accuracy": scores["accuracy"], "auc": scores["auc"],
            "tv1": marginal_tv(schema, train, test, order=1),
            "tv2": marginal_tv(schema, train, test, order=2)}


def majority_scores(schema: DatasetSchema, train: pd.DataFrame,
                    test: pd.DataFrame) -> dict[str, Any]:
    """Always predict the training majority class (rows without a declared target value
    left out, as in TSTR); AUC 0.5 by definition; no table, so no TV."""
    from pulsesynth.utility import category_codes

    target = schema.target_column
    if target is None:
        raise ValueError(f"{schema.id}: the suite's tables all declare a target")
    k = len(target.categories)
    y_train = category_codes(train[target.name], target)
    y_test = category_codes(test[target.name], target)
    y_train, y_test = y_train[y_train < k], y_test[y_test < k]
    majority = int(np.argmax(np.bincount(y_train, minlength=k)))
    return {"accuracy": float(np.mean(y_test == majority)) if len(y_test) else None,
            "auc": 0.5, "tv1": None, "tv2": None}


# --- results file -----------------------------------------------------------------------------


class ResultsFile:
    """``{"settings", "rows"}`` on disk, rewritten atomically after every row.

    Rows are keyed by ``(table, system, seed)``; :meth:`done` tells what an earlier,
    interrupted run already measured, so it is not measured again.
    """

    def __init__(self, path: Path, fresh: bool = False) -> None:
        self.path = Path(path)
        data: dict[str, Any] = {}
        if self.path.exists() and not fresh:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        self.settings: dict[str, Any] = data.get("settings", {})
        self.rows: list[dict[str, Any]] = list(data.get("rows", []))

    @staticmethod
    def key(row: dict[str, Any]) -> tuple[str, str, int]:
        return (row["table"], row["system"], int(row["seed"]))

    def done(self, table: str, system: str, seed: int,
             rows_per_unit: int | None = None) -> bool:
        """Measured already. A peer row from before the per-unit cap (without
        ``fit_rows``), or fitted on another number of rows per unit than
        ``rows_per_unit`` (the product's now), is stale and measured again."""
        def current(r: dict[str, Any]) -> bool:
            if system not in PEERS:
                return True
            return "fit_rows" in r and (rows_per_unit is None
                                        or r.get("rows_per_unit", 1) == rows_per_unit)
        return any(self.key(r) == (table, system, int(seed)) and current(r)
                   for r in self.rows)

    def seeds(self, run_seeds: Iterable[int] = ()) -> list[int]:
        """The peers' seeds the file holds, with ``run_seeds`` (a run adding seeds 7-9
        to rows of 0-6 records 0-9, not only its own)."""
        held = {int(r["seed"]) for r in self.rows if r["system"] in PEERS}
        return sorted(held | {int(s) for s in run_seeds})

    def add(self, row: dict[str, Any]) -> None:
        """Add (or replace) one row and write the file."""
        self.rows = [r for r in self.rows if self.key(r) != self.key(row)] + [row]
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"settings": self.settings, "rows": self.rows}
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def seeds_for(system: str, seeds: Iterable[int]) -> list[int]:
    """Peers run every seed; the deterministic references once (seed 0)."""
    return list(seeds) if system in PEERS else [0]


def pending(results: ResultsFile, tables: Iterable[str], systems: Iterable[str],
            seeds: Iterable[int]) -> Iterator[tuple[str, str, int]]:
    """The ``(table, system, seed)`` jobs not yet in ``results``, in run order."""
    from benchmarks.suite.tables import table_schema

    seeds = list(seeds)
    for table in tables:
        per_unit = fit_rows_per_unit(table_schema(table))
        for system in systems:
            for seed in seeds_for(system, seeds):
                if not results.done(table, system, seed, per_unit):
                    yield table, system, seed


# --- the peers --------------------------------------------------------------------------------


def run_peer(python: Path, input_dir: Path, output_dir: Path, system: str, seed: int,
             mbi_patch: bool = True, epsilon: float = EPSILON, delta: float = DELTA,
             rows: int | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One fit + sample (``rows`` rows; default as many as it fits on) by the runner in
    the peers venv: ``(synthetic levels, fit.json)``."""
    cmd = [str(python), str(RUNNER), "--input", str(input_dir), "--output", str(output_dir),
           "--system", system, "--epsilon", repr(epsilon), "--delta", repr(delta),
           "--seed", str(seed)]
    if rows is not None:
        cmd += ["--rows", str(rows)]
    if system == "aim":
        cmd += ["--max-seconds", str(AIM_MAX_SECONDS)]
    if not mbi_patch:
        cmd.append("--no-mbi-patch")
    env = dict(os.environ, **_THREADS, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false")
    output_dir.mkdir(parents=True, exist_ok=True)
    log = output_dir / "runner.log"
    with log.open("w") as fh:
        try:
            subprocess.run(cmd, check=True, timeout=TIMEOUT[system], stdout=fh,
                           stderr=subprocess.STDOUT, env=env)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            fh.flush()
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print("\n".join("    | " + line for line in tail), file=sys.stderr, flush=True)
            raise
    levels = pd.read_csv(output_dir / "synthetic_levels.csv", dtype=np.int64)
    fit = json.loads((output_dir / "fit.json").read_text())
    return levels, fit


def _row(table: str, system: str, seed: int, scores: dict[str, Any],
         fit_seconds: float | None, epsilon: float | None, **extra: Any) -> dict[str, Any]:
    row = {"table": table, "system": system, "seed": seed, **scores,
           "fit_seconds": fit_seconds, "epsilon": epsilon}
    row.update(extra)
    return row


def measure(table: str, system: str, seed: int, split: tuple[pd.DataFrame, pd.DataFrame,
            DatasetSchema], workdir: Path, python: Path, mbi_patch: bool = True,
            epsilon: float = EPSILON) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One row of the results (and the peer's fit.json, for the settings); a peer runs
    at ``epsilon`` per privacy unit."""
    train, test, schema = split
    sample_rows = release_rows(train, schema)
    if system in PEERS:
        train = capped_rows(train, schema)
    levels, widths, dropped = export_levels(train, schema)
    common = {"train_rows": len(split[0]), "fit_rows": len(levels), "dropped_rows": dropped}
    if system == "real":
        return _row(table, system, seed, score(schema, train, test), None, None,
                    **common), None
    if system == "real_binned":
        binned = decode_levels(levels, schema, seed)
        return _row(table, system, seed, score(schema, binned, test), None, None,
                    **common), None
    if system == "majority":
        return _row(table, system, seed, majority_scores(schema, train, test), None, None,
                    **common), None
    input_dir = workdir / "input"  # the same capped rows for every peer fit of a table
    if not (input_dir / "domain.json").exists():
        write_input(input_dir, levels, widths)
    # A unit keeping k > 1 rows: the peer runs at the row-level target, as the product
    # does, so that ε = 1 is the same per-unit promise for every system.
    group = GroupPrivacy(fit_rows_per_unit(schema), epsilon, DELTA)
    synthetic, fit = run_peer(python, input_dir, workdir / f"{system}-{seed}", system, seed,
                              mbi_patch, group.row_epsilon, group.row_delta,
                              rows=sample_rows)
    frame = decode_levels(synthetic, schema, seed)
    # δ and AIM's rounds depend on the table (group privacy, the domain's size): they go
    # in the row, not in the file's system-wide settings.
    extra = {"mbi_rounding_patch": fit["mbi_rounding_patch"],
             "sample_seconds": fit["sample_seconds"],
             "rows_per_unit": group.rows_per_unit, "row_epsilon": fit["epsilon"],
             "row_delta": fit["delta"]}
    if system == "aim":
        extra.update(stopped_early=fit["stopped_early"], measurements=fit["measurements"],
                     rounds_setting=fit["rounds_setting"])
    return _row(table, system, seed, score(schema, frame, test), fit["fit_seconds"],
                group.unit_epsilon(fit["epsilon"]), **common, **extra), fit


def base_settings(seeds: list[int], python: Path) -> dict[str, Any]:
    from benchmarks.suite.tables import SPLIT_FRACTIONS

    return {
        "epsilon": EPSILON,
        "delta": DELTA,
        "seeds": seeds,
        "classifier": f"{CLASSIFIER} (seed {CLASSIFIER_SEED}), pulsesynth.utility.tstr_scores, "
                      "tested on the real test rows",
        "tv": "pulsesynth.utility.marginal_tv: mean total variation over all 1-/2-way "
              "marginals on the public levels, against the real test rows",
        "split": "benchmarks.suite.tables.split_table: census_income UCI's train/test files; "
                 f"others {SPLIT_FRACTIONS} by a keyed hash of the privacy unit (row key "
                 "where none), public salt; the same for every system and seed",
        "unit_cap": "peers fit on the training rows capped per privacy unit at the rows "
                    "per unit the product trains on (pulsesynth.splits.cap_rows_per_unit, "
                    "DPVAESynthesizer.trained_rows_per_unit: one, at most the schema's "
                    "max_rows_per_unit; public salt CAP_SALT), so that epsilon holds per "
                    "unit for every system and every system fits the same kind of rows "
                    "(fit_rows); they sample as many rows as the product releases, the "
                    "training rows capped at the schema's max_rows_per_unit (fit.json's "
                    "sampled_rows); where a unit keeps k > 1 rows every system runs at "
                    "the row-level target epsilon / k, delta / (k e^((k-1) epsilon / k)) "
                    "(pulsesynth.dp.GroupPrivacy, group privacy; rows_per_unit, "
                    "row_epsilon); references use every training row",
        "levels": "pulsesynth.encoding.TableEncoder(schema).levels: declared categories, "
                  "public bins, missing level; training rows with an unobserved cell (-1) "
                  "dropped before the peers fit (dropped_rows)",
        "decode": "TableEncoder.decode_levels with numpy default_rng(seed), then the "
                  "schema's codebook relations (as the product)",
        "references": {
            "real": "TRTR: trained on the real training rows (seed 0 only: deterministic)",
            "real_binned": "trained on the real training rows decoded from their public "
                           "levels: the public-bins ceiling (seed 0)",
            "majority": "always the training majority class; auc 0.5; no TV (seed 0)",
        },
        "peers_runner": "benchmarks/peers/runner.py in .venv-peers "
                        "(benchmarks/peers/requirements.txt), one subprocess per fit; "
                        "smartnoise-synth's AIM / MST mechanisms called on the public "
                        "domain (no transformer, full epsilon to the mechanism); mbi 1.1.0's "
                        "rounding bug patched (runner.patch_mbi_rounding, backport of mbi "
                        "2.0's within-group shuffle); out-of-model marginals computed "
                        "exactly in numpy (runner.patch_mbi_projection: speed only); XLA "
                        "backend optimisation level 1 (compile time; same math)",
        "peers_python": str(python),
        "aim_max_seconds": AIM_MAX_SECONDS,
    }


# --- report -----------------------------------------------------------------------------------


def _mean(values: Iterable[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.mean(vals) if vals else None


def summary(rows: list[dict[str, Any]], systems: Iterable[str] = SYSTEMS) -> str:
    """Markdown table: per table and system, the mean AUC / accuracy / tv1 over seeds."""
    systems = list(systems)
    tables = list(dict.fromkeys(r["table"] for r in rows))
    head = "| table | " + " | ".join(f"{s} AUC / acc / tv1" for s in systems) + " |"
    lines = [head, "|---|" + "---|" * len(systems)]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for t in tables:
        cells = []
        for s in systems:
            sel = [r for r in rows if r["table"] == t and r["system"] == s]
            if not sel:
                cells.append("")
                continue
            cells.append(" / ".join(fmt(_mean(r[k] for r in sel))
                                    for k in ("auc", "accuracy", "tv1")))
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from benchmarks.suite.tables import SEEDS, SUITE, split_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(SUITE))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--peers-python", type=Path, default=DEFAULT_PEERS_PYTHON)
    parser.add_argument("--output", type=Path, default=OUT)
    parser.add_argument("--fresh", action="store_true", help="drop the rows already measured")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epsilon", type=float, default=EPSILON,
                        help=f"the peers' ε per privacy unit (default {EPSILON}; another ε "
                             "needs its own --output)")
    budget.add_argument("--at-table-budget", action="store_true",
                        help="run the peers at what the product's table costs of ε = "
                             f"{EPSILON} (training + row count, pulsesynth.budget); needs "
                             "its own --output")
    parser.add_argument("--no-mbi-patch", dest="mbi_patch", action="store_false",
                        help="sample the peers with mbi 1.1.0's buggy rounding (comparison "
                             "only; use a separate --output)")
    args = parser.parse_args(argv)
    tables = [t for t in args.tables.split(",") if t]
    systems = [s for s in args.systems.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    bad = [t for t in tables if t not in SUITE] + [s for s in systems if s not in SYSTEMS]
    if bad:
        parser.error(f"unknown table(s) / system(s): {', '.join(bad)}")
    epsilon = BudgetSplit.of(EPSILON).table if args.at_table_budget else args.epsilon
    if epsilon != EPSILON and args.output.resolve() == OUT.resolve():
        parser.error(f"{OUT.name} holds the ε = {EPSILON} comparison: write a run at "
                     f"ε = {epsilon:g} to its own --output")
    if any(s in PEERS for s in systems) and not args.peers_python.exists():
        parser.error(f"{args.peers_python} not found: create the peers venv first "
                     "(make bench-peers does)")

    # A terminated run exits like an interrupted one: the runner subprocess is killed and
    # the temporary folder removed; the rows written so far stay (the next run resumes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    results = ResultsFile(args.output, fresh=args.fresh)
    results.settings.update(base_settings(results.seeds(seeds), args.peers_python),
                            epsilon=epsilon)
    results.settings.setdefault("systems", {})
    results.write()
    jobs = list(pending(results, tables, systems, seeds))
    print(f"peers bench: {len(jobs)} fits to run ({len(results.rows)} rows already in "
          f"{args.output})", flush=True)
    failures: list[str] = []
    start = time.monotonic()
    splits: dict[str, tuple[pd.DataFrame, pd.DataFrame, DatasetSchema]] = {}
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        for i, (table, system, seed) in enumerate(jobs, 1):
            if table not in splits:
                splits.clear()  # one table in memory at a time
                splits[table] = split_table(table)
            t0 = time.monotonic()
            try:
                row, fit = measure(table, system, seed, splits[table], Path(tmp) / table,
                                   args.peers_python, args.mbi_patch, epsilon)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                failures.append(f"{table}/{system}/{seed}: {exc}")
                print(f"[{i}/{len(jobs)}] {table:18s} {system:11s} seed {seed}: FAILED "
                      f"({exc})", flush=True)
                continue
            if fit is not None:
                results.settings["systems"][system] = {
                    key: fit.get(key) for key in ("settings", "mbi_rounding_patch",
                                                  "mbi_projection", "xla_flags", "versions",
                                                  "noise")
                    if key in fit}
            results.add(row)
            auc = "-" if row["auc"] is None else f"{row['auc']:.3f}"
            fit_s = "" if row["fit_seconds"] is None else f", fit {row['fit_seconds']:.0f} s"
            print(f"[{i}/{len(jobs)}] {table:18s} {system:11s} seed {seed}: AUC {auc} "
                  f"acc {row['accuracy']:.3f}{fit_s} ({time.monotonic() - t0:.0f} s)",
                  flush=True)
    print(f"done in {(time.monotonic() - start) / 60:.1f} min -> {args.output}")
    print(summary([r for r in results.rows if r["table"] in tables], systems))
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
