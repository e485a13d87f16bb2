"""The audit benchmark's reproduction figure counts whole rows on the public levels."""

from __future__ import annotations

from test_encoding import toy_frame, toy_schema

from benchmarks.audit import level_reproduction
from pulsesynth.audit.targets import Targets
from pulsesynth.encoding import TableEncoder


def test_a_table_of_copied_members_reproduces_every_member_and_no_unseen_row() -> None:
    schema = toy_schema()
    members, non_members = toy_frame(40, seed=1), toy_frame(40, seed=2)
    encoder = TableEncoder(schema)
    released_levels = {tuple(r) for r in encoder.levels(members)}
    unseen = [tuple(r) not in released_levels for r in encoder.levels(non_members)]
    (row,) = level_reproduction("copy", "toy", encoder, members,
                                [Targets("random", members, non_members)])
    assert row["members"] == 1.0
    assert row["non_members"] == round(1 - sum(unseen) / len(unseen), 4)
    assert row["records"] == 40 and row["synthetic_rows"] == 40


def test_values_redrawn_inside_their_bins_still_count_as_reproduced() -> None:
    schema = toy_schema()
    members = toy_frame(30, seed=3)
    moved = members.copy()
    # Same public level, another value: the age bins are [17, 25) [25, 40) [40, 65) [65, 90].
    moved["age"] = moved["age"].map(lambda a: 17 if a < 25 else 25 if a < 40 else 40 if a < 65
                                    else 90)
    (row,) = level_reproduction("moved", "toy", TableEncoder(schema), moved,
                                [Targets("random", members, moved)])
    assert row["members"] == 1.0
