"""The model card (:mod:`pulsesynth.governance.modelcard`) of each kind that has one, exactly.

For a ``classifier`` and a ``model`` candidate written with fixed files (nothing is
trained, no warehouse is built: unit tier) the published ``modelcard.json`` and
``modelcard.md`` carry the kind's own wording, the privacy figures of ``privacy.json``
that are public or DP (:mod:`pulsesynth.governance.publishable`) and nothing else of it,
the gate's summary — and no exact audit figure: the attack accuracies and AUCs in
``audit.json`` are statistics of the private rows and stay with the steward.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from model_fixtures import make_classifier_candidate, make_untrained_model_candidate

from pulsesynth.artifacts import MODELCARD_JSON, MODELCARD_MD
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publishable import field_class, unlisted_fields
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.paths import Paths
from pulsesynth.release_kinds import KINDS, get_kind

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

#: How a test writes a candidate of each kind that publishes a model card.
CANDIDATES: dict[str, Callable[[Paths], Path]] = {
    "classifier": make_classifier_candidate,
    "model": make_untrained_model_candidate,
}

EPS_SENTENCE = ("ε = 1 is above ln 2 ≈ 0.693: any one person's record changes the "
                "probability of any outcome by at most a factor e^ε ≈ 2.72")
POST_PROCESSING = ("every use of the released weights — predictions, or any number of "
                   "sampled rows — is post-processing of a DP output and spends no further "
                   "privacy budget")
MECHANISM = "DP-SGD (Opacus): per-sample clipping, Gaussian noise, Poisson sampling"


def _privacy(noise_multiplier: float, steps: int) -> dict[str, Any]:
    """The card's privacy section for the fixtures' privacy.json (ε 1, δ 1e-5, prv)."""
    return {"epsilon": 1.0, "delta": 1e-05, "ln2": 0.693147, "epsilon_vs_ln2": EPS_SENTENCE,
            "accountant": "prv", "mechanism": MECHANISM, "marginals": None,
            "noise_multiplier": noise_multiplier, "sample_rate": 0.01, "steps": steps,
            "expected_batch_size": None, "max_grad_norm": 1.0, "private": True,
            "adjacency": None, "privacy_unit": None, "max_rows_per_unit": None,
            "unit_rule": None, "randomness": "secret", "budget": None, "rows_dp": None,
            "post_processing": POST_PROCESSING}


SUBJECT = "strongest of distance_mia, model_mia, synthetic_mia (DP)"
#: The gate's checks as the card summarises them: (label, name, subject, threshold,
#: value, passed) — the shipped policy on the fixtures' DP release report.
CHECKS = [("open", "max_epsilon", None, 1.0, 1.0, True),
          ("open", "max_attack_advantage", SUBJECT, 0.05, 0.01, True),
          ("open", "max_attack_advantage_ci_high", SUBJECT, 0.1, 0.04, True),
          ("confidential", "max_epsilon", None, 3.0, 1.0, True),
          ("confidential", "max_attack_advantage", SUBJECT, 0.1, 0.01, True)]
MODEL_REASON = ("all open thresholds pass, but a released model is capped at confidential "
                "(policy kinds.model.max_label: a generative model is sensitive — it can be "
                "attacked and sampled without limit); all confidential thresholds pass")

EXPECTED: dict[str, dict[str, Any]] = {
    "classifier": {
        "id": "taxi_trips_classifier",
        "kind_text": "DP-trained classifier",
        "title": "Taxi trips — DP-trained classifier",
        "label": "open",
        "label_text": "Open — DP classifier",
        "access": "Public: anyone may download this classifier from the open portal.",
        "privacy": _privacy(1.2, 400),
        "gate": {"label": "open", "reason": "all open thresholds pass", "max_label": "open",
                 "capped_from": None},
        "commands": ["pulsesynth predict --release taxi_trips_classifier-v1/ "
                     "--input rows.csv"],
        "endpoint": None,
        "model": {"target": "tip", "classes": ["no", "yes"],
                  "features": ["distance", "company", "hour"]},
        "md_model": "- target: tip (classes: ['no', 'yes'])",
        "md_mechanism": "noise multiplier 1.2, sample rate 0.01, steps 400, clipping norm 1",
    },
    "model": {
        "id": "taxi_trips_model",
        "kind_text": "DP generative model (DP-VAE)",
        "title": "Taxi trips — DP generative model (DP-VAE)",
        "label": "confidential",
        "label_text": "Shared: Confidential — DP generative model",
        "access": "Shared (Confidential): government entities holding a portal access token, "
                  "for their professional responsibilities only. A generative model is never "
                  "released as Open.",
        "privacy": _privacy(1.1, 300),
        "gate": {"label": "confidential", "reason": MODEL_REASON,
                 "max_label": "confidential", "capped_from": "open"},
        "commands": ["pulsesynth sample-release --release taxi_trips_model-v1/ -n 1000 "
                     "--seed 0 --out rows.csv"],
        "endpoint": "/datasets/taxi_trips_model/v1/sample?n=N&seed=S&format=csv",
        "model": {"features": []},
        "md_model": "- kind: DP generative model (DP-VAE)",
        "md_mechanism": "noise multiplier 1.1, sample rate 0.01, steps 300, clipping norm 1",
    },
}


def test_the_kinds_with_a_model_card_are_the_ones_tested() -> None:
    assert {k for k in KINDS if get_kind(k).card_json == MODELCARD_JSON} == set(CANDIDATES)


@pytest.fixture(params=sorted(CANDIDATES))
def published(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Register, approve and publish one candidate of the kind; its card and files."""
    kind = request.param
    paths = Paths(tmp_path)
    cand = CANDIDATES[kind](paths)
    rel = register_candidate(paths, "taxi_trips", cand, f"m-{kind}", kind=kind, now=NOW)
    approve(paths, rel.candidate_id, "alice", note="card reviewed", now=NOW)
    [pub] = publish_approved(paths, now=NOW)
    out = paths.published / pub.catalogue_id / (pub.version or "")
    return {"kind": kind, "candidate": cand, "candidate_id": rel.candidate_id,
            "card": json.loads((out / MODELCARD_JSON).read_text("utf-8")),
            "card_text": (out / MODELCARD_JSON).read_text("utf-8"),
            "md": (out / MODELCARD_MD).read_text("utf-8")}


def test_card_has_the_kinds_wording(published: dict[str, Any]) -> None:
    card, md, want = published["card"], published["md"], EXPECTED[published["kind"]]
    assert (card["id"], card["kind"], card["version"], card["label"]) == (
        want["id"], published["kind"], "v1", want["label"])
    assert card["kind_text"] == want["kind_text"]
    assert card["title"] == want["title"]
    assert card["label_text"] == want["label_text"]
    assert card["terms"]["access"] == want["access"]
    assert set(card["terms"]) == {"access", "use", "reuse", "prohibited"}
    assert card["usage"]["commands"] == want["commands"]
    assert card["usage"].get("endpoint") == want["endpoint"]
    assert {k: card["model"].get(k) for k in want["model"]} == want["model"]
    assert ("target" in card["model"]) == get_kind(published["kind"]).predicts_target
    assert card["approval"] == {"steward": "alice", "role": "data steward",
                                "approved_at": "2026-01-02T03:04:05+00:00",
                                "note": "card reviewed"}
    assert md.startswith(f"# {want['title']} — v1\n\n**{want['label_text']}** · kind: "
                         f"`{published['kind']}` · dataset: `taxi_trips`\n")
    assert f"- **access**: {want['access']}\n" in md
    assert f"{want['md_model']}\n" in md
    for command in want["commands"]:
        assert f"- `{command}`\n" in md


def test_card_publishes_the_public_privacy_figures_only(published: dict[str, Any]) -> None:
    card, md, want = published["card"], published["md"], EXPECTED[published["kind"]]
    assert card["privacy"] == want["privacy"]
    assert {k: field_class(f"privacy.{k}") for k in card["privacy"]} == {
        k: "dp" if k == "rows_dp" else "public" for k in want["privacy"]}
    assert unlisted_fields(card) == []
    # privacy.json's own bookkeeping (the ledger charge, hashes) is not a privacy figure.
    privacy_json = json.loads((published["candidate"] / "privacy.json").read_text())
    assert privacy_json["charge_id"] is not None
    assert set(privacy_json) - set(card["privacy"]) == {"charge_id", "schema_hash",
                                                        "model_hash", "code_version"}
    assert "charge_id" not in published["card_text"]
    assert ("- ε = 1, δ = 1e-05 (accountant: prv)\n"
            f"- {EPS_SENTENCE}\n"
            f"- mechanism: {MECHANISM}; {want['md_mechanism']}\n"
            f"- {POST_PROCESSING}\n") in md


def test_card_summarises_the_gate(published: dict[str, Any]) -> None:
    card, md, want = published["card"], published["md"], EXPECTED[published["kind"]]
    gate = card["gate"]
    assert {k: gate[k] for k in ("label", "reason", "max_label", "capped_from")} == want["gate"]
    assert set(gate) == {"label", "reason", "max_label", "capped_from", "checks"}
    assert [(c["label"], c["name"], c["subject"], c["threshold"], c["value"], c["passed"])
            for c in gate["checks"]] == CHECKS
    # The summary is the candidate's gate.json (projected), not a re-evaluation.
    gate_json = json.loads((published["candidate"] / "gate.json").read_text())
    assert (gate_json["label"], gate_json["reason"]) == (gate["label"], gate["reason"])
    assert len(gate_json["checks"]) == len(gate["checks"])
    assert (f"- gate: {want['gate']['label']} — {want['gate']['reason']}\n"
            f"- most open label for this kind: {want['gate']['max_label']}\n") in md


def _numbers(value: Any) -> list[float]:
    """Every number in a JSON document (booleans aside)."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []


#: Figures of an attack result that only the exact audit has (the DP report publishes the
#: advantage, noised; the fixtures' DP values are chosen apart from these).
AUDIT_ONLY = ("accuracy", "ci_low", "ci_high", "auc")


def test_no_exact_audit_figure_is_in_the_card(published: dict[str, Any]) -> None:
    card, md = published["card"], published["md"]
    audit = json.loads((published["candidate"] / "audit.json").read_text())
    secrets = {float(result[k]) for result in audit["membership_attacks"].values()
               for k in AUDIT_ONLY if k in result}
    assert 0.505 in secrets  # the attack accuracy both fixtures write
    card_numbers = set(_numbers(card))
    assert 0.01 in card_numbers  # non-vacuous: the DP advantage is there, as a number
    assert not secrets & card_numbers, sorted(secrets & card_numbers)
    md_numbers = {float(x) for x in re.findall(r"(?<![\w.])-?\d+\.\d+(?:e-?\d+)?", md)}
    assert 0.01 in md_numbers
    assert not secrets & md_numbers, sorted(secrets & md_numbers)
    for key in ("audit", "utility", "membership_attacks"):
        assert key not in card
    assert "membership_attacks" not in published["card_text"]


def test_a_k_row_unit_card_states_the_row_level_target_as_public_fields() -> None:
    """Where a unit keeps k > 1 rows, the card carries the row-level (ε, δ) every
    mechanism ran at; each of those fields is declared public (mechanism parameters)."""
    from pulsesynth.governance.datacard import privacy_section

    rows = {"rows_per_unit": 5, "row_epsilon": 0.1992, "row_target_epsilon": 0.2,
            "row_delta": 8.99e-8}
    section = privacy_section({"epsilon": 0.996, "delta": 1e-6, "group_privacy": rows})
    assert section["group_privacy"] == rows
    assert unlisted_fields({"privacy": section}) == []
    assert {field_class(f"privacy.group_privacy.{k}") for k in rows} == {"public"}
    assert "group_privacy" not in privacy_section({"epsilon": 1.0, "delta": 1e-6})


def test_the_card_names_the_dp_chosen_pairs_in_plain_words_as_dp_fields() -> None:
    """Which columns the DP marginals paired with the target was chosen from noisy scores:
    the card says so in words and declares those fields DP, the noise public."""
    from pulsesynth.governance.datacard import privacy_section

    chosen = {"columns": [["age", "y"], ["income", "y"], ["sex"], ["region"]], "count": 4,
              "selection": {"share": 0.1, "clear": True, "paired": ["age", "income"]},
              "noise_multiplier": 6.1, "share_alone": 0.8,
              "composition": "in the same accountant as the DP-SGD steps"}
    section = privacy_section({"epsilon": 1.0, "delta": 1e-6, "marginals": chosen})
    assert section["marginals_text"] == (
        "The table was also made to agree with 4 noisy counts tables, measured under the "
        "same ε: the columns that noisy scores showed to be linked to the target (age, "
        "income) against it, every other column on its own.")
    assert unlisted_fields({"privacy": section}) == []
    assert field_class("privacy.marginals.columns.0.0") == "dp"
    assert field_class("privacy.marginals.selection.paired.1") == "dp"
    assert field_class("privacy.marginals.selection.share") == "public"
    assert field_class("privacy.marginals.noise_multiplier") == "public"
    every = dict(chosen, columns=[["age", "y"], ["sex", "y"]], count=2)
    assert privacy_section({"marginals": every})["marginals_text"].endswith(
        "each column against the target.")
    alone = dict(chosen, columns=[["age"], ["sex"]], count=2, selection=None)
    assert privacy_section({"marginals": alone})["marginals_text"].endswith(
        "each column on its own.")
    assert "marginals_text" not in privacy_section({"epsilon": 1.0})


def test_the_card_says_in_words_when_numbers_were_placed_by_sub_bin_counts() -> None:
    from pulsesynth.governance.datacard import privacy_section

    facts = {"columns": [["carat", "cut"], ["depth", "cut"]], "count": 2, "selection": None,
             "sub_bins": 4, "noise_multiplier": 6.1, "share_alone": 0.8,
             "composition": "in the same accountant as the DP-SGD steps"}
    section = privacy_section({"epsilon": 1.0, "delta": 1e-6, "marginals": facts})
    assert section["marginals_text"].endswith(
        "each column against the target. Numbers were counted in up to 4 equal parts of "
        "each public bin, and placed inside their bins by those noisy counts.")
    assert unlisted_fields({"privacy": section}) == []
    assert field_class("privacy.marginals.sub_bins") == "dp"
    whole = dict(facts, sub_bins=1)
    assert privacy_section({"marginals": whole})["marginals_text"].endswith(
        "each column against the target.")
