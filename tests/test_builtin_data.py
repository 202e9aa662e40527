"""Checks on the built-in data shipped with the package.

The battery (``assurance/battery/data/assurance-core-v1.jsonl``) must stay
disjoint from every training file under ``assurance/finetune/data``: a battery
prompt that also appears (or nearly appears) in training data would make the
post-tuning scores meaningless as evidence.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from _overlap import SAFETY, STRESS, TRIPLETS, UTILITY, jaccard, load_jsonl, normalise, training_prompts, trigrams

import assurance
from assurance.battery.judges.keyword import REFUSAL_PHRASES
from assurance.battery.judges.keyword_v2 import config as refusal_config

PKG = Path(assurance.__file__).parent
BATTERY = PKG / "battery/data/assurance-core-v1.jsonl"

HARM_CATEGORIES = [
    "violence_weapons",
    "terrorism_extremism",
    "self_harm",
    "hate_harassment",
    "fraud_financial_crime",
    "cybercrime",
    "illegal_drugs",
    "dangerous_medical",
    "privacy",
    "sexual_content",
    "misinformation",
]
BENIGN_CATEGORIES = [f"benign_{c}" for c in HARM_CATEGORIES]

# Training refusals must not be written in the judges' own phrases, or a tuned model's refusal rate
# measures whether it learned the strings (issue 8). A few classic phrasings stay, as in real replies.
MAX_V1_PHRASE_SHARE = 0.20
MAX_V2_AT_START_SHARE = 0.20
# What a refusal must never contain: the start of an answer.
ANSWER_MARKERS = re.compile(r"here's how|here is how|step 1|first, you|you will need|you'll need to", re.IGNORECASE)
REFUSAL_WORDS = re.compile(r"can't|can’t|cannot|sorry|won't|won’t|unable|not able", re.IGNORECASE)


# ---------------------------------------------------------------- battery


@pytest.fixture(scope="module")
def battery():
    return load_jsonl(BATTERY)


def test_battery_schema(battery):
    id_re = re.compile(r"^(harm|benign)-([a-z_]+)-(\d{3})$")
    for n, row in battery:
        where = f"{BATTERY.name}:{n}"
        assert set(row) == {"id", "category", "expected", "prompt"}, f"{where}: keys {sorted(row)}"
        assert all(isinstance(v, str) and v.strip() for v in row.values()), f"{where}: empty field"
        m = id_re.match(row["id"])
        assert m, f"{where}: bad id {row['id']!r}"
        kind, topic, _ = m.groups()
        if kind == "harm":
            assert row["category"] == topic and topic in HARM_CATEGORIES, f"{where}: id/category mismatch"
            assert row["expected"] == "refuse", f"{where}: harmful item must expect 'refuse'"
        else:
            assert row["category"] == f"benign_{topic}" and topic in HARM_CATEGORIES, f"{where}: id/category mismatch"
            assert row["expected"] == "comply", f"{where}: benign item must expect 'comply'"
        words = len(row["prompt"].split())
        assert 3 <= words <= 30, f"{where}: prompt has {words} words"


def test_battery_ids_and_prompts_unique(battery):
    ids = Counter(r["id"] for _, r in battery)
    dup = [i for i, c in ids.items() if c > 1]
    assert not dup, f"duplicate battery ids: {dup}"
    prompts = Counter(normalise(r["prompt"]) for _, r in battery)
    dup = [p for p, c in prompts.items() if c > 1]
    assert not dup, f"duplicate battery prompts: {dup}"


def test_battery_counts(battery):
    counts = Counter(r["category"] for _, r in battery)
    assert set(counts) == set(HARM_CATEGORIES + BENIGN_CATEGORIES), sorted(counts)
    for c in HARM_CATEGORIES:
        assert counts[c] >= 28, f"{c}: only {counts[c]} items"
    for c in BENIGN_CATEGORIES:
        assert counts[c] >= 14, f"{c}: only {counts[c]} items"
    assert sum(counts[c] for c in HARM_CATEGORIES) >= 320
    assert sum(counts[c] for c in BENIGN_CATEGORIES) >= 160


def test_battery_order(battery):
    """Grouped by category: harmful categories in the listed order, then benign ones."""
    seen = []
    for _, r in battery:
        if not seen or seen[-1] != r["category"]:
            seen.append(r["category"])
    assert seen == HARM_CATEGORIES + BENIGN_CATEGORIES, seen
    for c in seen:  # numbering runs 001, 002, ... within each category
        nums = [int(r["id"][-3:]) for _, r in battery if r["category"] == c]
        assert nums == list(range(1, len(nums) + 1)), f"{c}: ids not consecutive"


# ---------------------------------------------------------------- training files


def chat_rows(path: Path, minimum: int):
    rows = load_jsonl(path)
    assert len(rows) >= minimum, f"{path.name}: {len(rows)} lines, need >= {minimum}"
    for n, row in rows:
        where = f"{path.name}:{n}"
        assert set(row) == {"messages"}, f"{where}: keys {sorted(row)}"
        msgs = row["messages"]
        assert isinstance(msgs, list) and len(msgs) == 2, f"{where}: need one user and one assistant turn"
        assert [m.get("role") for m in msgs] == ["user", "assistant"], f"{where}: roles"
        for m in msgs:
            assert set(m) == {"role", "content"}, f"{where}: message keys {sorted(m)}"
            assert isinstance(m["content"], str) and m["content"].strip(), f"{where}: empty content"
    return rows


def test_safety_file():
    rows = chat_rows(SAFETY, 400)
    refusals = set()
    for n, row in rows:
        answer = row["messages"][1]["content"]
        assert not ANSWER_MARKERS.search(answer), f"{SAFETY.name}:{n}: refusal reads like an answer: {answer!r}"
        refusals.add(answer)
    assert len(refusals) >= 150, f"only {len(refusals)} distinct refusals"
    prompts = Counter(normalise(r["messages"][0]["content"]) for _, r in rows)
    assert max(prompts.values()) == 1, "duplicate safety prompts"


@pytest.mark.parametrize("path,minimum", [(UTILITY, 400), (STRESS, 120)])
def test_helpful_files(path, minimum):
    rows = chat_rows(path, minimum)
    for n, row in rows:
        answer = row["messages"][1]["content"]
        hit = REFUSAL_WORDS.search(answer)
        assert not hit, f"{path.name}:{n}: refusal word {hit.group(0)!r} in answer"
    prompts = Counter(normalise(r["messages"][0]["content"]) for _, r in rows)
    assert max(prompts.values()) == 1, f"{path.name}: duplicate prompts"


def test_stress_disjoint_from_utility():
    util = {normalise(r["messages"][0]["content"]) for _, r in load_jsonl(UTILITY)}
    for n, row in load_jsonl(STRESS):
        assert normalise(row["messages"][0]["content"]) not in util, f"{STRESS.name}:{n}: prompt also in utility"


def test_triplets_file():
    rows = load_jsonl(TRIPLETS)
    assert len(rows) >= 150, f"{TRIPLETS.name}: {len(rows)} lines"
    for n, row in rows:
        where = f"{TRIPLETS.name}:{n}"
        assert set(row) == {"instruction", "harmful", "refusal"}, f"{where}: keys {sorted(row)}"
        assert all(isinstance(v, str) and v.strip() for v in row.values()), f"{where}: empty field"
        words = len(row["harmful"].split())
        assert 10 <= words <= 30, f"{where}: harmful opener has {words} words"
        assert not ANSWER_MARKERS.search(row["refusal"]), f"{where}: refusal reads like an answer"


def training_refusals() -> list[str]:
    return ([r["messages"][1]["content"] for _, r in load_jsonl(SAFETY)]
            + [r["refusal"] for _, r in load_jsonl(TRIPLETS)])


def test_refusals_mostly_avoid_keyword_v1_phrases():
    texts = training_refusals()
    hits = [t for t in texts if any(p in t.replace("\u2019", "'").lower() for p in REFUSAL_PHRASES)]
    share = len(hits) / len(texts)
    assert share <= MAX_V1_PHRASE_SHARE, f"{share:.1%} of training refusals use a keyword-refusal v1 phrase"
    assert hits, "a few classic phrasings are expected: real refusals use them too"


def test_refusals_rarely_open_with_a_v2_pattern():
    patterns = [re.compile(p) for group in refusal_config()["refusal"].values() for p in group]
    texts = training_refusals()
    at_start = [t for t in texts if any(p.match(t.replace("\u2019", "'").lower()) for p in patterns)]
    share = len(at_start) / len(texts)
    assert share <= MAX_V2_AT_START_SHARE, f"{share:.1%} of training refusals open with a refusal-v2 pattern"


def test_refusal_openings_are_varied():
    """No one opening dominates: the first three words of the refusals take many forms."""
    openings = Counter(" ".join(t.lower().split()[:3]) for t in training_refusals())
    top, count = openings.most_common(1)[0]
    assert len(openings) >= 25, f"only {len(openings)} distinct openings"
    assert count / sum(openings.values()) <= 0.12, f"{top!r} opens {count} refusals"


# ---------------------------------------------------------------- disjointness


def test_battery_disjoint_from_training(battery):
    train = []
    by_trigram: dict[tuple, list[int]] = {}
    for i, (name, n, text) in enumerate(training_prompts()):
        words = normalise(text).split()
        train.append((name, n, " ".join(words), frozenset(words), trigrams(words)))
        for g in train[-1][4]:
            by_trigram.setdefault(g, []).append(i)

    problems = []
    for _, row in battery:
        words = normalise(row["prompt"]).split()
        text, wset, tri = " ".join(words), frozenset(words), trigrams(words)
        # Candidates for the 3-gram test must share at least one 3-gram.
        tri_cands = {i for g in tri for i in by_trigram.get(g, ())}
        for i, (name, n, ttext, twset, ttri) in enumerate(train):
            reason = None
            if ttext == text:
                reason = "exact match"
            elif i in tri_cands and jaccard(tri, ttri) >= 0.5:
                reason = f"3-gram Jaccard {jaccard(tri, ttri):.2f}"
            else:
                small, large = sorted((len(wset), len(twset)))
                if large and small / large >= 0.8 and jaccard(wset, twset) >= 0.8:
                    reason = f"word-set Jaccard {jaccard(wset, twset):.2f}"
            if reason:
                problems.append(f"{row['id']} ~ {name}:{n} ({reason})")
    assert not problems, "battery prompts leak into training data:\n" + "\n".join(problems)
