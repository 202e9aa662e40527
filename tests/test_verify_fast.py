"""The fast paths of verification give the general encoder's answers: the chain digest written out
directly, and the canonical-form check that tries pydantic-core's JSON writer first (CanonicalReader)."""

from __future__ import annotations

import json
import random

import pytest
from pydantic_core import to_json

from assurance.evidence.canonical_read import CanonicalReader
from assurance.evidence.hashing import canonical_json, json_digest
from assurance.evidence.store import chain_digest

ODD_STRINGS = ['say "hi"', "back\\slash", "caf\u00e9", "tab\there", "\x7f", "\u2028", "\U0001f600", "", "\x00"]


def _general(run_id, seq, kind, rdig, prev, created_at) -> str:
    return json_digest({"v": 1, "run_id": run_id, "seq": seq, "kind": kind, "record": rdig, "prev": prev,
                        "created_at": created_at})


def test_chain_digest_matches_the_canonical_encoder():
    rng = random.Random(7)
    plain = ("0193-aa", "sample", "sha256:" + "ab" * 32, "sha256:" + "0" * 64, "2026-11-30T12:00:00.000001Z")
    for seq in (0, 1, 99_999, 2**53 - 1):
        assert chain_digest(plain[0], seq, *plain[1:]) == _general(plain[0], seq, *plain[1:])
    for _ in range(200):  # odd characters in any one field fall back to the general encoder, same digest
        fields = list(plain)
        i = rng.randrange(5)
        fields[i] = fields[i][:3] + rng.choice(ODD_STRINGS) + fields[i][3:]
        assert chain_digest(fields[0], 5, *fields[1:]) == _general(fields[0], 5, *fields[1:])
    with pytest.raises(ValueError):  # beyond 2**53 the canonical encoder refuses, and so does the chain
        chain_digest(plain[0], 2**53, *plain[1:])


def _exact(payload: str) -> bool | str:
    """The general encoder's answer: canonical or not, or the error it raises."""
    try:
        return canonical_json(json.loads(payload)) == payload.encode("utf-8")
    except ValueError as err:
        return type(err).__name__


def _fast(payload: str) -> bool | str:
    try:
        obj, canonical = CanonicalReader()(payload, payload.encode("utf-8"))
    except ValueError as err:
        return type(err).__name__
    assert obj == json.loads(payload) or payload.count("NaN")
    return canonical


TRICKY = [
    '{"a":1,"b":"x"}', '{"b":1,"a":2}', '{"a": 1}', ' {"a":1}', '{"a":1,"a":2}',
    '{"x":1.0}', '{"x":1}', '{"x":0.5}', '{"x":1e-07}', '{"x":1e-7}', '{"x":1e-06}', '{"x":0.000001}',
    '{"x":1e+22}', '{"x":1e22}', '{"x":1e+21}', '{"x":1e21}', '{"x":100000000000000000000}', '{"x":1e16}',
    '{"x":10000000000000000}', '{"x":-0.0}', '{"x":0}', '{"x":-0}', '{"x":0.1}', '{"x":123.456}',
    '{"x":9007199254740991}', '{"x":9007199254740992}', '{"x":-9007199254740992}', '{"x":123456789012345678}',
    '{"x":NaN}', '{"x":Infinity}', '{"x":"\\u007f"}', '{"x":"\x7f"}', '{"x":"\\u001f"}', '{"x":"\\u001F"}',
    '{"x":"\\n"}', '{"x":"\\u000a"}', '{"x":"\\/"}', '{"x":"/"}', '{"x":"\\ud800"}', '{"x":"\\ud83d\\ude00"}',
    '{"x":"\U0001f600"}', '{"x":"\\u00e9"}', '{"x":"\u00e9"}', '{"x":"\u2028"}',
    '{"\ue000":1,"\U0001f600":2}', '{"\U0001f600":2,"\ue000":1}', '{"\U0001f600":2,"a":1}', '{"a":1,"\U0001f600":2}',
    '{"a":[1,2.5,{"c":true,"b":null}]}', '{"a":[1,2.5,{"b":null,"c":true}]}', '[]', '"s"', '{"x":1E+22}',
    '{"a":{"\u00e9":1,"e":2}}', '{"a":{"e":2,"é":1}}', '{"d":"9007199254740993"}', '{"x":[{},[],""]}',
    '{"x":2.5e-05}', '{"x":0.00025}', '{"x":1.5e300}', '{"x":5e-324}', '{"B":1,"a":2}', '{"a":2,"B":1}',
    # flat objects of strings, true/false/null, short integers and lists of those: the Rust round trip alone
    '{"a":[],"b":["x",null,true],"c":-9007199254740991,"d":"1.5"}', '{"a":[1.0]}', '{"a":[1,2]}', '{"a":1e400}',
    '{"a":-9007199254740992}', '{"a":"{","b":1}', '{"a":[[]]}', '{"a":"x","a":"y"}', '{"a":"\\ud800","b":1}',
    '{"a":"\\u00e9"}', '{"b":1,"a":2}', '{"\u00e9":1,"z":2}', '{"z":2,"\u00e9":1}', '{"a":1}\n',
    '{"a":0.0}', '{"a":-1}',
]


@pytest.mark.parametrize("payload", TRICKY)
def test_canonical_check_agrees_with_the_canonical_encoder(payload):
    assert _fast(payload) == _exact(payload)


def test_canonical_check_on_every_character():
    # Escaping is per character, so one string of every code point (surrogates apart) covers them all:
    # the fast writer escapes exactly as RFC 8785 does, so reproducing a payload means the same bytes.
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert to_json(text) == canonical_json(text)
    canonical = canonical_json({"s": text}).decode("utf-8")
    assert _fast(canonical) is True
    escaped = json.dumps({"s": text}, separators=(",", ":"))  # \uXXXX escapes everywhere: not canonical
    assert _fast(escaped) is False is _exact(escaped)


def test_samples_let_go_after_their_check_are_still_checked_and_one_after_the_seal_is_named(tmp_path):
    # verify_run keeps no sample from before the first seal (nothing after the chain reads one), yet each is
    # checked like any record, and one appended after the last seal is kept and named.
    import sqlite3

    from _ledger_writers import started

    from assurance.evidence.records import SampleRecord, VerdictRecord
    from assurance.evidence.seal import seal_run
    from assurance.evidence.store import Store
    from assurance.evidence.verify import verify_run

    run = "0190bbbb-0000-7000-8000-00000000000f"
    store = Store(f"sqlite:///{tmp_path / 'ev.db'}")
    sample = SampleRecord(stage="base", item_id="i1", category="weapons", expected="refuse", prompt="p", output="o",
                          refused=True, judge_id="keyword-refusal@2")
    store.append(run, [started(run), sample, sample.model_copy(update={"item_id": "i2"}),
                       VerdictRecord(status="PASS", checks=[], reasons=[])])
    seal_run(store, run, complete=True, scope="evidence")
    seal_run(store, run, complete=True, scope="packs")
    assert verify_run(store, run).ok
    store.append(run, [sample.model_copy(update={"item_id": "late"})])
    n = store.count(run) - 1
    errors = [f"{f.subject}: {f.message}" for f in verify_run(store, run).findings if f.severity == "error"]
    assert errors == [f"record {n} (sample): sample record after the run's last seal; only sign-offs may follow it"]
    conn = sqlite3.connect(tmp_path / "ev.db")
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
    conn.execute("""UPDATE ledger SET payload = replace(payload, '"i2"', '"i3"') WHERE seq = 2""")
    conn.commit()
    conn.close()
    found = [f.message for f in verify_run(store, run).findings if f.subject == "record 2 (sample)"]
    assert found == ["payload does not match its digest (record altered)"]
