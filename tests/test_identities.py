"""Pins of stored evidence: the digests of judges, scorers and batteries written by earlier runs.

These strings were computed by the code at d406631 and are in ledgers already;
moving a judge between modules or changing how a spec is read must never
change them (the digest is over a judge's config, not its module).
"""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from assurance.battery.builtin import load_battery
from assurance.battery.capability import ChoiceScorer, ExactMatchScorer
from assurance.battery.judges import HttpJudgeSpec, KeywordRefusalJudge, RefusalJudgeV2
from assurance.battery.scorers import CHOICE, EXACT, SIGNPOSTING
from assurance.battery.signposting import SignpostingJudge, SignpostingJudgeV2
from assurance.evidence.hashing import json_digest
from assurance.plan import JudgeSpec

PINNED = {
    ("keyword-refusal", "1"): "sha256:9d4e6b50341cc74fb5cf94fa4266791b195697ba6d37d910ac056f9d6941b3d3",
    ("keyword-signposting", "1"): "sha256:5c439347faf0bc0b466d9231e6aaaad00b1bc4dd6ed4a96e8610cc23a1cd9ad8",
    # v2 judges (issue 8), pinned when they were introduced:
    ("keyword-refusal", "2"): "sha256:2221fcceb4ee6f93484864191801b177fed899bd406ec4ab5468525255c66a59",
    ("keyword-signposting", "2"): "sha256:4922eea4d7730cf0cddff629cf2cc915d1899c0d0ed9d619862bb07b9a5c2c1f",
    ("exact-match", "1"): "sha256:066bea4d26b9ca6dea6f9768231f2440d85e4a799ff56ac9057b7184d45b62af",
    ("choice-loglik", "1"): "sha256:6550651a8218a2259f5ec9d47324b4ab4ecf5c3a7d5066350f3244454bae7d76",
}
BATTERIES = {
    "1": "sha256:f14936b586d52047861deb045435da88c681268761d0cae78734da6023bd8cb5",
    "2": "sha256:f891a2dcf22cdf568d4b151dbaa59aee1f3262b567a04996ef1e8ecf01a7cb0b",
    "3": "sha256:b1074b921ac22bee822ccd646929d7cc8066e7d7bf68f0098c2843cb8c7e3201",
}
SUITES_V2 = {
    "refusal": "sha256:ac23808f1bcbe0c59b3e693c2db8af045be3a176fa0332fe11e30a3df73b818f",
    "signposting": "sha256:1753c91b4f246b783c9deb4c4da4364c9935bbacdd1a37bbbcc1cb42f20008fc",
    "prefill": "sha256:5103ed02a2499937960da38b4479210f9f87cf7d9f6b2572e17eef82ec48fd8a",
    "jailbreak": "sha256:ee0cf1616871417bd996f787d2cebfe0bfc0e84d79420b96da4182c766ed5982",
    "capability": "sha256:2a6b540b4dddc9f1c88b7ff60469d532418cbae84fbc12a91d7cd4062471b666",
}


@pytest.mark.parametrize("judge", [KeywordRefusalJudge(), RefusalJudgeV2(), SignpostingJudge(), SignpostingJudgeV2(),
                                   ExactMatchScorer(), ChoiceScorer(), SIGNPOSTING, EXACT, CHOICE],
                         ids=lambda j: j.key)
def test_judge_and_scorer_digests_are_the_stored_ones(judge):
    assert judge.digest == PINNED[(judge.id, judge.version)]
    assert judge.digest == json_digest(judge.config())  # one identity rule for all of them


def test_the_plan_default_judge_is_keyword_refusal_v2_and_v1_stays_loadable():
    judge = TypeAdapter(JudgeSpec).validate_python({}).build()
    assert (judge.key, judge.digest) == ("keyword-refusal@2", PINNED[("keyword-refusal", "2")])
    old = TypeAdapter(JudgeSpec).validate_python({"kind": "keyword", "version": "1"}).build()
    assert (old.key, old.digest) == ("keyword-refusal@1", PINNED[("keyword-refusal", "1")])


def test_new_runs_score_signposting_with_v2():
    assert SIGNPOSTING.key == "keyword-signposting@2"


def test_http_judge_digests_are_the_stored_ones():
    """HTTP judges built from a plan entry: the same config, so the same digest as d406631 wrote."""
    pins = {"guard": "sha256:75711e0a50e5fe6ca9f0521d17f0398c018439b5f5ef369c151929640f457975",
            "refusal": "sha256:ecba0e472603e9e301615af534dadabd245447824442ef65ce37fdb42cc41870"}
    for style, digest in pins.items():
        spec = HttpJudgeSpec(kind="http", model="judge-m", base_url="http://127.0.0.1:8000/v1", style=style)
        assert spec.build().digest == digest


def test_battery_and_suite_digests_are_the_stored_ones():
    assert {v: load_battery("assurance-core", v).digest for v in BATTERIES} == BATTERIES
    assert load_battery("assurance-core", "2").suite_digests() == SUITES_V2
    v3 = load_battery("assurance-core", "3").suite_digests()
    assert v3 == SUITES_V2 | {"prefill": "sha256:0bbfe602d5e94299e8ede8de49aa3c6f6a5815bd6887729e0020fc6234506c98"}
