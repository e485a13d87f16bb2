"""The gate: most open passing label, blocked with reasons, each threshold on both sides."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsesynth.gate import PolicyError, evaluate_gate, load_policy

POLICY = load_policy()


def passing_open() -> tuple[dict, dict]:
    privacy = {"private": True, "epsilon": 1.0}
    audit = {
        "membership_attacks": {
            "model_mia": {"advantage": 0.01, "advantage_ci_high": 0.05},
            "synthetic_mia": {"advantage": 0.0, "advantage_ci_high": 0.04},
        },
        "distances": {"dcr_share": 0.5, "exact_matches_unique": 0},
    }
    return privacy, audit


def test_policy_file_has_the_documented_thresholds() -> None:
    assert POLICY["open"] == {"max_epsilon": 1.0, "max_attack_advantage": 0.05,
                              "max_attack_advantage_ci_high": 0.10, "max_dcr_share": 0.55,
                              "max_unique_exact_matches": 0.0}
    assert POLICY["confidential"]["max_epsilon"] == 3.0
    assert POLICY["confidential"]["max_attack_advantage"] == 0.10
    assert POLICY["confidential"]["max_dcr_share"] == 0.60


def test_clean_dp_candidate_is_open() -> None:
    result = evaluate_gate(POLICY, *passing_open())
    assert result.label == "open" and result.releasable
    assert all(c.passed for c in result.checks if c.label == "open")


def test_non_dp_artifact_is_always_blocked() -> None:
    privacy, audit = passing_open()
    result = evaluate_gate(POLICY, privacy | {"private": False}, audit)
    assert result.label == "blocked" and "non-private" in result.reason


def test_no_attack_means_blocked() -> None:
    privacy, audit = passing_open()
    assert evaluate_gate(POLICY, privacy, audit | {"membership_attacks": {}}).label == "blocked"


# (threshold, setter, value just inside open, just outside open but inside confidential,
#  outside confidential)
BOUNDARIES = [
    ("max_epsilon", lambda p, a, v: p.update(epsilon=v), 1.0, 1.01, 3.01),
    ("max_attack_advantage",
     lambda p, a, v: a["membership_attacks"]["model_mia"].update(advantage=v), 0.05, 0.051,
     0.101),
    ("max_attack_advantage_ci_high",
     lambda p, a, v: a["membership_attacks"]["synthetic_mia"].update(advantage_ci_high=v),
     0.10, 0.101, None),
    ("max_dcr_share", lambda p, a, v: a["distances"].update(dcr_share=v), 0.55, 0.551, 0.601),
    ("max_unique_exact_matches",
     lambda p, a, v: a["distances"].update(exact_matches_unique=v), 0, None, 1),
]


@pytest.mark.parametrize(("name", "setter", "inside", "outside_open", "outside_conf"),
                         BOUNDARIES)
def test_each_threshold_on_each_side_of_its_boundary(name, setter, inside, outside_open,
                                                     outside_conf) -> None:
    privacy, audit = passing_open()
    setter(privacy, audit, inside)
    assert evaluate_gate(POLICY, privacy, audit).label == "open"
    if outside_open is not None:
        privacy, audit = passing_open()
        setter(privacy, audit, outside_open)
        result = evaluate_gate(POLICY, privacy, audit)
        assert result.label == "confidential"
        failed = [c for c in result.checks if not c.passed]
        assert [(c.label, c.name) for c in failed] == [("open", name)]
    if outside_conf is not None:
        privacy, audit = passing_open()
        setter(privacy, audit, outside_conf)
        result = evaluate_gate(POLICY, privacy, audit)
        assert result.label == "blocked"
        assert name in result.reason and "FAILS by" in result.reason


def test_malformed_policy_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("labels:\n  open:\n    max_epsilon: 1\n    max_fun: 3\n")
    with pytest.raises(PolicyError, match="labels.open.max_fun: unknown threshold"):
        load_policy(bad)
    bad.write_text("labels:\n  confidential: {}\n  open: {}\n")
    with pytest.raises(PolicyError, match="open then confidential"):
        load_policy(bad)
