"""The gate: most open passing label, blocked with reasons, each threshold on both sides."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsesynth.gate import PolicyError, evaluate_gate, load_policy

POLICY = load_policy()


def stat(value: float, ci_high: float | None = None) -> dict:
    return {"value": value, "ci_low": value - 0.03,
            "ci_high": value + 0.03 if ci_high is None else ci_high}


def passing_open() -> tuple[dict, dict]:
    privacy = {"private": True, "epsilon": 1.0}
    stats = {"private": True, "statistics": {
        "max_attack_advantage": stat(0.01, 0.05) | {"attacks": ["model_mia", "synthetic_mia"]},
        "exact_match_excess": stat(0.0) | {"p_value": 0.5},
        "tstr_accuracy": stat(0.8)}}
    return privacy, stats


def test_policy_file_has_the_documented_thresholds() -> None:
    assert POLICY["open"] == {"max_epsilon": 1.0, "max_attack_advantage": 0.05,
                              "max_attack_advantage_ci_high": 0.10,
                              "max_exact_match_excess": 0.05, "exact_match_alpha": 0.01}
    assert POLICY["confidential"] == {"max_epsilon": 3.0, "max_attack_advantage": 0.10,
                                      "max_attack_advantage_ci_high": None,
                                      "max_exact_match_excess": 0.10,
                                      "exact_match_alpha": 0.01}


def test_clean_dp_candidate_is_open() -> None:
    result = evaluate_gate(POLICY, *passing_open())
    assert result.label == "open" and result.releasable
    assert all(c.passed for c in result.checks if c.label == "open")


def test_non_dp_artifact_is_always_blocked() -> None:
    privacy, stats = passing_open()
    result = evaluate_gate(POLICY, privacy | {"private": False}, stats)
    assert result.label == "blocked" and "non-private" in result.reason
    result = evaluate_gate(POLICY, privacy, stats | {"private": False})
    assert result.label == "blocked" and "non-private" in result.reason


def test_no_attack_means_blocked() -> None:
    privacy, stats = passing_open()
    del stats["statistics"]["max_attack_advantage"]
    assert evaluate_gate(POLICY, privacy, stats).label == "blocked"


def test_gate_reads_only_public_and_dp_inputs() -> None:
    """Exact audit figures next to the DP report change nothing: the gate never reads them."""
    privacy, stats = passing_open()
    leaky = stats | {"membership_attacks": {"model_mia": {"advantage": 0.9}},
                     "distances": {"dcr_share": 1.0, "exact_matches_unique": 99}}
    assert evaluate_gate(POLICY, privacy, leaky).to_dict() == \
        evaluate_gate(POLICY, privacy, stats).to_dict()


def _set(name: str):
    def setter(p: dict, s: dict, v: float) -> None:
        st = s["statistics"]
        if name == "max_epsilon":
            p["epsilon"] = v
        elif name == "max_attack_advantage":
            st["max_attack_advantage"]["value"] = v
        elif name == "max_attack_advantage_ci_high":
            st["max_attack_advantage"]["ci_high"] = v
        else:
            st["exact_match_excess"]["value"] = v
    return setter


# (threshold, value just inside open, just outside open but inside confidential,
#  outside confidential)
BOUNDARIES = [
    ("max_epsilon", 1.0, 1.01, 3.01),
    ("max_attack_advantage", 0.05, 0.051, 0.101),
    ("max_attack_advantage_ci_high", 0.10, 0.101, None),
    ("max_exact_match_excess", 0.05, 0.051, 0.101),
]


@pytest.mark.parametrize(("name", "inside", "outside_open", "outside_conf"), BOUNDARIES)
def test_each_threshold_on_each_side_of_its_boundary(name, inside, outside_open,
                                                     outside_conf) -> None:
    setter = _set(name)
    privacy, stats = passing_open()
    setter(privacy, stats, inside)
    assert evaluate_gate(POLICY, privacy, stats).label == "open"
    privacy, stats = passing_open()
    setter(privacy, stats, outside_open)
    result = evaluate_gate(POLICY, privacy, stats)
    assert result.label == "confidential"
    failed = [c for c in result.checks if not c.passed]
    assert [(c.label, c.name) for c in failed] == [("open", name)]
    if outside_conf is not None:
        privacy, stats = passing_open()
        setter(privacy, stats, outside_conf)
        result = evaluate_gate(POLICY, privacy, stats)
        assert result.label == "blocked"
        assert name in result.reason and "FAILS by" in result.reason


def test_exact_matches_do_not_gate_kinds_without_rows() -> None:
    privacy, stats = passing_open()
    stats["statistics"]["exact_match_excess"]["value"] = 0.5
    assert evaluate_gate(POLICY, privacy, stats, kind="classifier").label == "open"
    assert evaluate_gate(POLICY, privacy, stats, kind="table").label == "blocked"
    privacy, stats = passing_open()
    stats["statistics"]["exact_match_excess"]["p_value"] = 0.0
    assert evaluate_gate(POLICY, privacy, stats, kind="classifier").label == "open"
    assert evaluate_gate(POLICY, privacy, stats, kind="table").label == "blocked"


def test_exact_match_alpha_fails_below_alpha_with_plain_reasons() -> None:
    """The test's threshold is a floor: p = α passes, just below fails every label."""
    privacy, stats = passing_open()
    stats["statistics"]["exact_match_excess"]["p_value"] = 0.01
    assert evaluate_gate(POLICY, privacy, stats).label == "open"
    stats["statistics"]["exact_match_excess"]["p_value"] = 0.0099
    result = evaluate_gate(POLICY, privacy, stats)
    assert result.label == "blocked"
    failed = [c for c in result.checks if not c.passed]
    assert [(c.label, c.name) for c in failed] == [("open", "exact_match_alpha"),
                                                   ("confidential", "exact_match_alpha")]
    assert failed[0].excess == pytest.approx(0.0001)
    assert result.reason == (
        "confidential: exact_match_alpha[p-value of 'training rows are reproduced no more "
        "often than unseen rows' (DP)] = 0.0099 (must be at least 0.01) FAILS by 0.0001 — "
        "unique training rows are reproduced verbatim more often than unseen rows, beyond "
        "chance (one-sided p = 0.0099, below α = 0.01): the table copies training rows")


def test_size_guard_reason_says_how_much_in_plain_words() -> None:
    privacy, stats = passing_open()
    stats["statistics"]["exact_match_excess"].update(value=0.15, p_value=0.2)
    result = evaluate_gate(POLICY, privacy, stats)
    assert result.label == "blocked"
    assert result.reason == (
        "confidential: max_exact_match_excess[unique training rows reproduced, beyond unseen "
        "rows (DP)] = 0.15 (limit 0.1) FAILS by 0.05 — the table reproduces verbatim 15.0% "
        "more of the unique training rows than of unseen rows, above the 10.0% this label "
        "allows")


def test_a_report_without_the_p_value_fails_closed() -> None:
    privacy, stats = passing_open()
    del stats["statistics"]["exact_match_excess"]["p_value"]
    result = evaluate_gate(POLICY, privacy, stats)
    assert result.label == "blocked"
    assert result.reason == ("confidential: exact_match_alpha[p-value of 'training rows are "
                             "reproduced no more often than unseen rows' (DP)] is missing "
                             "from the DP release report FAILS")


def test_a_policy_without_exact_match_alpha_loads_and_skips_the_test(tmp_path: Path) -> None:
    """Policy files written before the test existed keep working unchanged."""
    old = tmp_path / "policy.yaml"
    old.write_text("labels:\n  open:\n    max_epsilon: 1.0\n    max_attack_advantage: 0.05\n"
                   "    max_exact_match_excess: 0.05\n")
    policy = load_policy(old)
    assert policy["open"]["exact_match_alpha"] is None
    privacy, stats = passing_open()
    stats["statistics"]["exact_match_excess"]["p_value"] = 0.0
    result = evaluate_gate(policy, privacy, stats)
    assert result.label == "open"
    assert "exact_match_alpha" not in {c.name for c in result.checks}


def test_malformed_policy_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("labels:\n  open:\n    max_epsilon: 1\n    max_fun: 3\n")
    with pytest.raises(PolicyError, match="labels.open.max_fun: unknown threshold"):
        load_policy(bad)
    bad.write_text("labels:\n  confidential: {}\n  open: {}\n")
    with pytest.raises(PolicyError, match="open then confidential"):
        load_policy(bad)
