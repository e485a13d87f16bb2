"""Privacy-audit benchmark: the standing proof that DP is wired right.

Part ``one_run``: a one-run canary audit (Steinke, Nasr & Jagielski, NeurIPS 2023) of the
DP-VAE and the DP classifier on census_income — 5,000 real training rows as a fixed
background plus m = 1,000 canaries drawn from the declared domains, each included with
probability 1/2, ONE training per setting, white-box scores (VAE: per-record ELBO;
classifier: log-probability of the canary's own random label), ε lower bound at 95%
confidence with a Bonferroni correction over the cuts tried
(:mod:`pulsesynth.audit.one_run`).

Settings: the VAE non-private and memorising (batch 64, 300 epochs), the VAE with DP-SGD
at ε = 1 and ε = 10 (the synthesizer's defaults), the classifier non-private and
memorising ([400, 400], batch 64, 30 epochs) and with DP-SGD at ε = 1 (defaults).

Fails loudly (after writing the results) if a DP lower bound exceeds its ε — the DP wiring
would then be broken — and reports when a non-private bound is below 1.5 (the attack
lost its power, so a DP bound of 0 would prove nothing).

Run by ``make bench`` (or ``python -m benchmarks.privacy_audit``); writes
``benchmarks/results/privacy_audit.json``. The file is one dict of top-level keys, one or
more per *part*: add a part by writing a function returning its keys and registering it in
:data:`PARTS` (and, if it has pass/fail conditions, in :data:`CHECKS`); ``--parts`` runs a
subset and keeps the other parts' keys already in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Before torch is imported anywhere: two shared cores, one thread per benchmark.
os.environ.setdefault("PULSESYNTH_THREADS", "1")

import pandas as pd  # noqa: E402

from benchmarks import single_thread  # noqa: E402
from pulsesynth.audit.one_run import (  # noqa: E402
    run_classifier_canary_audit,
    run_vae_canary_audit,
)
from pulsesynth.paths import Paths  # noqa: E402
from pulsesynth.warehouse import Warehouse  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "privacy_audit.json"
DATASET = "census_income"
ROWS = 5000
M = 1000
KS = [10, 25, 50, 100, 250, 500]  # 1% .. 50% of m guessed IN, as many OUT
CONFIDENCE = 0.95
SEED = 0
#: Below this, the non-private memorising runs no longer show the attack has power.
NON_PRIVATE_FLOOR = 1.5

Log = Callable[[str], None]

#: (mechanism, setting, ε or None for non-private, recipe keyword arguments).
ONE_RUN_SETTINGS: list[tuple[str, str, float | None, dict[str, Any]]] = [
    ("vae", "non-private, memorising (batch 64, 300 epochs)", None,
     {"batch_size": 64, "epochs": 300}),
    ("vae", "DP-SGD, synthesizer defaults", 1.0, {}),
    ("vae", "DP-SGD, synthesizer defaults", 10.0, {}),
    # 30 epochs, not 300: trained longer, the network grows confident on the random-feature
    # canaries it never saw too, and the label score separates members less (measured:
    # lower bound 1.41 at 300 epochs, 1.84 at 30 in a smoke run).
    ("classifier", "non-private, memorising ([400, 400], batch 64, 30 epochs)", None,
     {"hidden": (400, 400), "batch_size": 64, "epochs": 30}),
    ("classifier", "DP-SGD, classifier defaults", 1.0, {}),
]


def background(dataset: str, rows: int, seed: int):
    """Schema and a seeded random slice of the real training rows (UCI's train part for
    census_income), one row per person: the fixed background the canaries join."""
    snap = Warehouse(Paths.default()).pull(dataset)
    frame = snap.frame
    if "uci_split" in frame.columns:
        frame = frame[frame["uci_split"] == "train"]
    # Seeded random rows, not a prefix: tables are ordered.
    return snap.schema, frame.sample(min(rows, len(frame)), random_state=seed)


def one_run_part(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """The one-run canary audit of every setting: ``one_run`` rows plus their settings."""
    schema, base = background(DATASET, args.rows, args.seed)
    ks = [k for k in KS if 2 * k <= args.m] or [args.m // 2]
    rows: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for mechanism, setting, epsilon, recipe in ONE_RUN_SETTINGS:
        if args.quick:  # smoke run: the recipes' epochs cut to a tenth
            recipe = dict(recipe, epochs=max(1, recipe.get("epochs", 50) // 10))
        run = run_vae_canary_audit if mechanism == "vae" else run_classifier_canary_audit
        extra: dict[str, Any] = {}
        start = time.perf_counter()
        row = run(schema, base, args.m, epsilon, epsilon is not None, args.seed, ks=ks,
                  confidence=CONFIDENCE, setting=setting, details=extra, **recipe)
        seconds = round(time.perf_counter() - start, 1)
        rows.append(row)
        details.append({"mechanism": mechanism, "setting": setting, "epsilon": epsilon,
                        "recipe": {k: list(v) if isinstance(v, tuple) else v
                                   for k, v in recipe.items()},
                        "seconds": seconds} | extra)
        log(json.dumps(row) + f"  ({seconds} s)")
    settings = {
        "dataset": DATASET,
        "rows": len(base),
        "m": args.m,
        "ks": ks,
        "confidence": CONFIDENCE,
        "correction": f"Bonferroni over {len(ks)} cuts (each bound at confidence "
                      f"{1 - (1 - CONFIDENCE) / len(ks):.6g}); the best cut is reported",
        "bound": "Steinke, Nasr & Jagielski (NeurIPS 2023) Thm 5.2: p(eps) = "
                 "P[Bin(r, q) >= v] + 2 m delta max_i P[v-i <= Bin(r, q) < v] / i, "
                 "q = e^eps / (1 + e^eps); bound = largest eps with p(eps) < 1 - confidence",
        "delta": "the trained mechanism's delta; non-private runs use the DP default rule",
        "canaries": "declared domains only, each included with probability 1/2, each its "
                    "own unit (unit-less schema copy)",
        "scores": {"vae": "per-record ELBO", "classifier":
                   "log-probability of the canary's own random label"},
        "seed": args.seed,
        "quick": bool(args.quick),
        "reduced": None if not args.quick else "epochs cut to a tenth (--quick)",
        "non_private_floor": NON_PRIVATE_FLOOR,
        "per_setting": details,
        "total_seconds": round(sum(d["seconds"] for d in details), 1),
        "code": _code_version(),
    }
    if args.note:
        settings["note"] = args.note
    problems = one_run_problems(rows)
    settings["checks"] = problems
    for warning in problems["warnings"]:
        log(f"WARNING: {warning}")
    return {"one_run": rows, "one_run_settings": settings}


def one_run_problems(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``failures``: DP bounds above their ε; ``warnings``: non-private bounds below the
    floor (the attack would then be too weak for a DP bound of 0 to mean anything)."""
    failures = [f"{r['mechanism']} at eps={r['epsilon']}: lower bound "
                f"{r['eps_lower_bound']:.3f} exceeds eps"
                for r in rows if r["epsilon"] is not None
                and r["eps_lower_bound"] > r["epsilon"]]
    warnings = [f"{r['mechanism']} non-private: lower bound {r['eps_lower_bound']:.3f} "
                f"below {NON_PRIVATE_FLOOR} (the attack is weak on this recipe)"
                for r in rows if r["epsilon"] is None
                and r["eps_lower_bound"] < NON_PRIVATE_FLOOR]
    return {"failures": failures, "warnings": warnings}


def check_one_run(result: dict[str, Any]) -> None:
    """Fail loudly when a DP lower bound exceeds its ε: DP is then not wired right."""
    failures = one_run_problems(result["one_run"])["failures"]
    if failures:
        raise AssertionError("one-run audit contradicts the DP guarantee: "
                             + "; ".join(failures))


def replay_part(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """Can a release be replayed from public information? Two default private runs of the
    pipeline (CLI path, fresh secret randomness) on the same table, and a replay with the
    old public default seed 0, in a throw-away project root: ``replay_identical`` is true
    when any two of them trained the same weights or sampled the same table."""
    import shutil
    import tempfile

    import torch

    from pulsesynth import cli
    from pulsesynth.artifacts import RunDir

    root = Path(tempfile.mkdtemp(prefix="replay-"))
    try:
        shutil.copytree(Path(__file__).resolve().parent.parent / "schemas", root / "schemas")
        Warehouse(Paths(root)).build(["taxi_trips"])
        os.environ["PULSESYNTH_ROOT"] = str(root)
        runs = {}
        for name, extra in (("default_a", []), ("default_b", []), ("seed_0", ["--seed", "0"])):
            run = root / "runs" / name
            for argv in (["train", "taxi_trips", "--max-rows", "3000", "--epochs", "5",
                          "--out", str(run), *extra], ["sample", str(run)]):
                assert cli.main(argv) == 0
            runs[name] = (torch.load(RunDir(run).model.state_pt, weights_only=True),
                          RunDir(run).candidate.synthetic_parquet.read_bytes())
        same = []
        names = sorted(runs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                wa, wb = runs[a][0], runs[b][0]
                if all(torch.equal(wa[k], wb[k]) for k in wa) or runs[a][1] == runs[b][1]:
                    same.append(f"{a} = {b}")
        log(f"replay: identical pairs {same or 'none'}")
        return {"replay_identical": bool(same),
                "replay_settings": {"dataset": "taxi_trips", "rows": 3000, "epochs": 5,
                                    "runs": names, "identical_pairs": same,
                                    "path": "pulsesynth train + sample (CLI defaults)"}}
    finally:
        os.environ.pop("PULSESYNTH_ROOT", None)
        shutil.rmtree(root, ignore_errors=True)


def split_part(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """How many rows change role (train / holdout / reference, kept under the per-unit cap)
    when one privacy unit leaves the table, over ``UNIT_TRIALS`` removed crashes of
    traffic_accidents — keyed-hash roles (this code) beside the seeded permutation of the
    whole table that main used before (reimplemented here for the comparison only)."""
    import numpy as np

    from pulsesynth.randomness import salt_from_seed
    from pulsesynth.splits import DEFAULT_FRACTIONS, cap_rows_per_unit, split_by_unit, unit_keys

    snap = Warehouse(Paths.default()).pull("traffic_accidents")
    frame, schema = snap.frame.reset_index(drop=True), snap.schema
    salt, k = salt_from_seed(args.seed), schema.privacy.max_rows_per_unit
    units = unit_keys(frame, schema)
    row_key = frame[list(schema.row_key)].astype(str).agg("|".join, axis=1)

    def keyed(df: pd.DataFrame) -> dict[str, str]:
        out = {}
        for name, part in split_by_unit(df, schema, salt=salt).items():
            for key in row_key[cap_rows_per_unit(part, schema, k, salt=salt).index]:
                out[key] = name
        return out

    def permuted(df: pd.DataFrame) -> dict[str, str]:  # main before this change
        codes = pd.factorize(units[df.index], sort=True)[0]
        n = int(codes.max()) + 1
        order = np.random.default_rng(0).permutation(n)
        cuts = np.rint(np.cumsum(list(DEFAULT_FRACTIONS.values())) * n).astype(int)
        part = np.empty(n, dtype=int)
        start = 0
        for i, stop in enumerate(cuts):
            part[order[start:stop]] = i
            start = stop
        names = list(DEFAULT_FRACTIONS)
        return {key: names[part[c]] for key, c in zip(row_key[df.index], codes, strict=True)}

    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(units.unique(), UNIT_TRIALS, replace=False)
    base = {"keyed_hash": keyed(frame), "seeded_permutation": permuted(frame)}
    moved: dict[str, list[int]] = {name: [] for name in base}
    own: list[int] = []
    for unit in chosen:
        rest = frame[units != unit]
        own.append(int((units == unit).sum()))
        for name, rule in (("keyed_hash", keyed), ("seeded_permutation", permuted)):
            after = rule(rest)
            before = base[name]
            moved[name].append(sum(before.get(key) != after.get(key)
                                   for key in set(before) | set(after)))
    log(f"split: max rows moved {max(moved['keyed_hash'])} (keyed hash) vs "
        f"{max(moved['seeded_permutation'])} (seeded permutation)")
    return {"split_moved_rows_per_removed_unit": max(moved["keyed_hash"]),
            "split_settings": {
                "dataset": "traffic_accidents", "unit": list(schema.privacy_unit),
                "trials": UNIT_TRIALS, "removed_unit_rows_max": max(own),
                "moved_counts": "rows whose role (or kept-under-cap state) changed, the "
                                "removed unit's own rows included",
                "keyed_hash_moved_max": max(moved["keyed_hash"]),
                "moved_beyond_own_rows_max": max(m - o for m, o in zip(
                    moved["keyed_hash"], own, strict=True)),
                "seeded_permutation_moved_median": float(np.median(
                    moved["seeded_permutation"])),
                "seeded_permutation_moved_max": max(moved["seeded_permutation"])}}


def check_split(result: dict[str, Any]) -> None:
    """Removing a unit may move its own rows only."""
    settings = result["split_settings"]
    if settings["moved_beyond_own_rows_max"] > 0:
        raise AssertionError(f"removing one unit moved {settings['moved_beyond_own_rows_max']}"
                             " rows of other units")


def check_replay(result: dict[str, Any]) -> None:
    """Two default private runs, or a replay with public defaults, must never coincide."""
    if result["replay_identical"]:
        raise AssertionError("a release was replayed: " + ", ".join(
            result["replay_settings"]["identical_pairs"]))


#: Units removed one at a time in the split part.
UNIT_TRIALS = 40

#: Parts of the results file: name → function returning its top-level keys.
PARTS: dict[str, Callable[[argparse.Namespace, Log], dict[str, Any]]] = {
    "one_run": one_run_part,
    "replay": replay_part,
    "split": split_part,
}
#: Pass/fail conditions run after the file is written (so the evidence stays on disk).
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "one_run": check_one_run,
    "replay": check_replay,
    "split": check_split,
}


def _code_version() -> dict[str, Any]:
    """Commit and whether the library's sources differ from it (None outside git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "pulsesynth"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "pulsesynth_modified": None}
    return {"commit": commit, "pulsesynth_modified": bool(dirty)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="*", choices=sorted(PARTS), default=sorted(PARTS),
                        help="parts to run; other parts' keys in the file are kept")
    parser.add_argument("--rows", type=int, default=ROWS, help="real background rows")
    parser.add_argument("--m", type=int, default=M, help="canaries")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--quick", action="store_true", help="smoke run: a tenth of the epochs")
    parser.add_argument("--note", help="free text recorded with the settings")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    single_thread()
    log: Log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.parts:
        result.update(PARTS[name](args, log))
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # keep partial results
    log(f"wrote {args.out}")
    for name in args.parts:
        if name in CHECKS:
            CHECKS[name](result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
