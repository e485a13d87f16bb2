"""The ``pulsesynth`` parser loads without the heavy libraries, so help and argument
errors answer at once."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_parser_imports_neither_torch_nor_sklearn() -> None:
    code = ("import sys, pulsesynth.cli; pulsesynth.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'opacus', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_classifier_names_still_load_on_use() -> None:
    import pulsesynth.classifier as clf

    assert clf.DPClassifier.__name__ == "DPClassifier"
    assert callable(clf.same_recipe)
