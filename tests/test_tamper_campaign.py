"""A small tamper campaign (benchmarks/tamper_campaign.py): every mutation the threat model calls
detectable is found by verify, and untouched copies verify clean."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tamper_campaign as tc  # noqa: E402


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return tc.run_campaign(tmp_path_factory.mktemp("tamper"), mutations=60, clean=5, seed=1)


def test_every_detectable_mutation_is_detected(result):
    by = {c.name: c for c in tc.CLASSES}
    missed = {n: t.missed for n, t in result.tallies.items() if by[n].expect == tc.DETECTABLE and t.missed}
    assert not missed, f"verify missed detectable mutations (class: seeds to --replay): {missed}"
    detected, total = result.detectable()
    assert detected == total >= 30


def test_every_class_made_real_edits(result):
    # Each class ran at least once, and an edit that changed nothing is never counted.
    assert all(t.total >= 1 for t in result.tallies.values()), result.tallies
    assert result.noops == 0


def test_untouched_copies_give_no_false_alarm(result):
    assert result.clean == 5
    assert result.false_alarms == 0


def test_summary_lines_come_last(result):
    lines = result.lines()
    assert lines[-2] == f"detected={result.detectable()[0]}/{result.detectable()[1]}"
    assert lines[-1] == "false_alarms=0"
    assert any(line.startswith("rows_deleted_after_seal ") and "(undetectable-by-design)" in line for line in lines)


def test_forged_and_flipped_signoffs_are_found_by_their_signatures(result):
    # Without a key: an unsigned forgery beside signed sign-offs, and a flipped decision; with the roster:
    # the same made with the attacker's own key.
    for name in ("signoff_forged_unsigned", "signoff_flipped_rechained", "signoff_forged_attacker_key_roster",
                 "signoff_flipped_resigned_roster"):
        t = result.tallies[name]
        assert t.total >= 1 and t.detected == t.total, (name, t)
    assert {c.name: c.expect for c in tc.CLASSES}["signoff_forged_attacker_key"] == tc.UNDETECTABLE
