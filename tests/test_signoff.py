"""Signed sign-offs: the statement and its signature, the refusals, verify's checks, the roster, the
PAdES-signed pack and approval in the gate, on real SQLite ledgers and real PDF files."""

from __future__ import annotations

import json
import sqlite3

import pytest
from _ledger_writers import signoff
from _signed_run import RUN, sealed_run
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.records import SignoffRecord
from assurance.evidence.roster import RosterError, load_roster
from assurance.evidence.seal import generate_key, seal_run
from assurance.evidence.signoff import key_fingerprint, signature_status
from assurance.evidence.store import Store
from assurance.evidence.verify import verify_run
from assurance.policy import EXIT_AWAITING

runner = CliRunner()
def _key(tmp_path, name="k"):
    path = tmp_path / f"{name}.pem"
    return path, generate_key(path)


def _sign(store, key, decision="approve", *extra, name="J. Smith", role="SMF24"):
    return runner.invoke(app, ["signoff", RUN, "--db", store.url, "--name", name, "--role", role,
                               "--decision", decision, *(["--key", str(key)] if key else []), *extra],
                         terminal_width=400)


def test_signoff_signs_a_statement_naming_the_seal_and_pack_and_verify_checks_it(tmp_path):
    store = sealed_run(tmp_path)
    key, pub = _key(tmp_path)
    res = _sign(store, key, "approve", "--out", str(tmp_path / "statement.json"))
    assert res.exit_code == 0, res.output
    assert key_fingerprint(pub) in res.output
    (rec,) = store.records(RUN, kinds=["signoff"])
    assert rec.public_key == pub and signature_status(rec) == "valid"
    seal_row = [e for e in store.entries(RUN) if e.kind == "manifest"][-1]  # the packs seal
    pack = next(r for r in store.records(RUN, kinds=["pack"]))
    assert rec.manifest_digest == seal_row.digest and rec.pack_digest == pack.digest and rec.run_id == RUN
    kept = json.loads((tmp_path / "statement.json").read_text())
    assert kept["signature"] == rec.signature and kept["chain_digest"] == store.entries(RUN)[-1].digest
    report = verify_run(store, RUN)
    assert report.ok, [f.line() for f in report.findings]
    # The PAdES-signed pack: the pack decided on is its first revision, and pyHanko finds the signature intact.
    signed = tmp_path / "fca-signed-1.pdf"
    assert rec.signed_pack_path == str(signed) and signed.read_bytes().startswith((tmp_path / "fca.pdf").read_bytes())
    assert b"/ByteRange" in signed.read_bytes()
    # A byte of the signed pack changed is found.
    data = bytearray(signed.read_bytes())
    data[len(data) // 3] ^= 1
    signed.write_bytes(bytes(data))
    found = [f.message for f in verify_run(store, RUN).findings]
    assert any("digest differs from the sign-off record" in m for m in found), found


def test_without_a_key_or_conditions_or_risk_reason_nothing_is_recorded(tmp_path):
    store = sealed_run(tmp_path, status="FAIL")
    key, _ = _key(tmp_path)
    before = store.count(RUN)
    assert _sign(store, None).exit_code == 2
    assert "--key" in _sign(store, None).output
    res = _sign(store, key, "approve-with-conditions", "--accept-risk", "x")
    assert res.exit_code == 2 and "--conditions" in res.output
    res = _sign(store, key, "approve")
    assert res.exit_code == 2 and "--accept-risk" in res.output
    assert _sign(store, tmp_path / "missing.pem").exit_code == 2
    assert store.count(RUN) == before
    ok = _sign(store, key, "approve", "--accept-risk", "compensating control X")
    assert ok.exit_code == 0 and "RISK ACCEPTED (verdict FAIL)" in ok.output
    (rec,) = store.records(RUN, kinds=["signoff"])
    assert rec.accepted_risk == "compensating control X"


def _tamper(store, change) -> None:
    """Rewrite the last sign-off row's payload and recompute the chain, as someone holding the file can."""
    from assurance.evidence.hashing import canonical_json, sha256_hex
    from assurance.evidence.store import chain_digest

    db = store.url.removeprefix("sqlite:///")
    store.engine.dispose()
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
    rid, seq, kind, payload, prev, created = conn.execute(
        "SELECT id, seq, kind, payload, prev_digest, created_at FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    body = canonical_json(change(json.loads(payload))).decode()
    rd = "sha256:" + sha256_hex(body.encode())
    conn.execute("UPDATE ledger SET payload=?, record_digest=?, digest=? WHERE id=?",
                 (body, rd, chain_digest(RUN, seq, kind, rd, prev, created), rid))
    conn.commit()
    conn.close()


def test_a_flipped_decision_with_the_chain_rewritten_is_found_by_its_signature(tmp_path):
    store = sealed_run(tmp_path)
    key, _ = _key(tmp_path)
    assert _sign(store, key, "reject").exit_code == 0
    _tamper(store, lambda o: {**o, "decision": "approve"})
    report = verify_run(Store(store.url), RUN)
    assert not report.ok and any("signature does not verify" in f.message for f in report.findings)


def test_an_unsigned_forgery_beside_signed_signoffs_is_an_error_and_old_unsigned_ones_a_warning(tmp_path):
    store = sealed_run(tmp_path)
    store.append(RUN, [signoff("Old Signer", 0)])
    report = verify_run(store, RUN)
    assert report.ok and any("before sign-offs were signed" in f.message for f in report.findings)
    key, _ = _key(tmp_path)
    assert _sign(store, key).exit_code == 0
    report = verify_run(store, RUN)
    assert not report.ok and any("unsigned sign-off" in f.message for f in report.findings)


def test_a_signoff_moved_to_another_seal_is_an_error(tmp_path):
    store = sealed_run(tmp_path)
    key, _ = _key(tmp_path)
    assert _sign(store, key).exit_code == 0
    _tamper(store, lambda o: o)  # unchanged: still valid
    assert verify_run(Store(store.url), RUN).ok
    rec = Store(store.url).records(RUN, kinds=["signoff"])[0]
    # Re-appended later behind a newer seal, the same signed statement no longer names the latest seal.
    s2 = Store(store.url)
    seal_run(s2, RUN, complete=True)
    s2.append(RUN, [rec])
    found = [f.message for f in verify_run(s2, RUN, check_files=False).findings]
    assert any("not this run's latest seal" in m for m in found), found


def _roster(tmp_path, text: str):
    p = tmp_path / "signers.yaml"
    p.write_text(text)
    return p


def test_roster_loading_is_strict_and_names_file_and_entry(tmp_path):
    _, pub = _key(tmp_path)
    ok = load_roster(_roster(tmp_path, f"signers:\n  - {{name: J. Smith, role: SMF24, public_key: '{pub}'}}\n"))
    assert ok.signers[0].public_key == pub and not ok.require_signatures
    for text, want in [
        ("signers:\n  - {name: J. Smith, role: SMF24, public_key: 'abc'}\n", "signers[0].public_key (J. Smith)"),
        ("signers:\n  - {name: A, role: B}\n", "exactly one of public_key"),
        (f"signers:\n  - {{name: A, role: B, public_key: '{pub}', colour: red}}\n", "signers[0].colour"),
        ("signers: []\n", "signers"),
        ("- a\n", "mapping"),
    ]:
        with pytest.raises(RosterError) as err:
            load_roster(_roster(tmp_path, text))
        assert "signers.yaml" in str(err.value) and want in str(err.value), str(err.value)
    store = sealed_run(tmp_path)
    bad = runner.invoke(app, ["verify", RUN, "--db", store.url, "--signers", str(_roster(tmp_path, "x: 1\n"))])
    assert bad.exit_code == 2 and "signers.yaml" in bad.output


def test_verify_with_a_roster_finds_unknown_keys_and_wrong_roles(tmp_path):
    store = sealed_run(tmp_path)
    key, pub = _key(tmp_path)
    other, _ = _key(tmp_path, "attacker")
    roster = _roster(tmp_path, f"signers:\n  - {{name: J. Smith, role: SMF24, public_key: '{pub}'}}\n")
    assert _sign(store, key).exit_code == 0
    args = ["verify", RUN, "--db", store.url, "--signers", str(roster)]
    assert runner.invoke(app, args).exit_code == 0
    assert _sign(store, key, name="J. Smith", role="Chief Risk Officer").exit_code == 0
    res = runner.invoke(app, args, terminal_width=400)
    assert res.exit_code == 1 and "belongs to J. Smith (SMF24)" in res.output
    # Signed with the attacker's own key: valid signature, but no roster entry.
    assert _sign(store, other).exit_code == 0
    assert "in no entry of signers.yaml" in runner.invoke(app, args, terminal_width=400).output


def test_a_roster_that_requires_signatures_requires_them_of_the_seals_too(tmp_path):
    # The fixture's seals are unsigned: with require_signatures a stripped (or never made) seal signature is a
    # finding, as with --require-signed; the same roster without the setting accepts the run.
    store = sealed_run(tmp_path)
    key, pub = _key(tmp_path)
    assert _sign(store, key).exit_code == 0
    entry = f"signers:\n  - {{name: J. Smith, role: SMF24, public_key: '{pub}'}}\n"
    lenient, strict = _roster(tmp_path, entry), tmp_path / "strict.yaml"
    strict.write_text("require_signatures: true\n" + entry)
    args = ["verify", RUN, "--db", store.url, "--no-files", "--signers"]
    assert runner.invoke(app, [*args, str(lenient)]).exit_code == 0
    res = runner.invoke(app, [*args, str(strict)], terminal_width=400)
    assert res.exit_code == 1 and "UNSIGNED" in res.output, res.output


def _gate(store, *extra):
    res = runner.invoke(app, ["gate", RUN, "--db", store.url, "--json", *extra])
    return res.exit_code, json.loads(res.stdout)


def test_gate_awaits_the_required_roles_then_passes(tmp_path):
    store = sealed_run(tmp_path, roles=["SMF24", "Chief Risk Officer"])
    key, pub = _key(tmp_path)
    code, out = _gate(store)
    assert code == EXIT_AWAITING == 4 and out["awaiting_roles"] == ["SMF24", "Chief Risk Officer"]
    junit = tmp_path / "gate.xml"
    runner.invoke(app, ["gate", RUN, "--db", store.url, "--junit", str(junit)])
    xml = junit.read_text()
    assert 'name="SMF24"' in xml and xml.count("awaiting approval by") == 2
    assert 'name="awaiting_roles" value="SMF24, Chief Risk Officer"' in xml
    assert _sign(store, key, "approve").exit_code == 0
    code, out = _gate(store)
    assert code == 4 and out["awaiting_roles"] == ["Chief Risk Officer"]
    assert _sign(store, key, "approve-with-conditions", "--conditions", "monthly review",
                 name="R. Officer", role="chief risk officer").exit_code == 0
    assert _gate(store)[0] == 0
    # With a roster only its people count: R. Officer is not on it.
    roster = _roster(tmp_path, f"signers:\n  - {{name: J. Smith, role: SMF24, public_key: '{pub}'}}\n")
    code, out = _gate(store, "--signers", str(roster))
    assert code == 4 and out["awaiting_roles"] == ["Chief Risk Officer"]
    # A reject by a required role fails the gate.
    assert _sign(store, key, "reject", name="R. Officer", role="Chief Risk Officer").exit_code == 0
    code, out = _gate(store)
    assert code == 1 and out["status"] == "FAIL" and out["verdict"] == "PASS" and out["rejected_by"]


def test_gate_on_a_fail_verdict_stays_fail_and_shows_the_risk_acceptance(tmp_path):
    store = sealed_run(tmp_path, status="FAIL", roles=["SMF24"])
    key, _ = _key(tmp_path)
    assert _sign(store, key, "approve", "--accept-risk", "compensating control X").exit_code == 0
    code, out = _gate(store)
    assert code == 1 and out["status"] == "FAIL" and out["risk_accepted"][0]["reason"] == "compensating control X"


def test_gate_with_a_policy_requiring_roles_and_a_forged_signoff(tmp_path):
    store = sealed_run(tmp_path)  # the recorded plan requires nobody
    assert _gate(store)[0] == 0
    plan = tmp_path / "plan.yaml"
    plan.write_text("model: {path: /m}\npolicy:\n  require_signoff: [SMF24]\n")
    assert _gate(store, "--policy", str(plan))[0] == 4
    key, _ = _key(tmp_path)
    assert _sign(store, key).exit_code == 0
    _tamper(store, lambda o: {**o, "role": "SMF24", "name": "Someone Else"})
    assert _gate(Store(store.url), "--policy", str(plan))[0] == 4  # the altered statement no longer verifies


def test_old_unsigned_signoff_still_parses():
    rec = SignoffRecord.model_validate({"kind": "signoff", "name": "a", "role": "b", "decision": "approve",
                                        "note": "", "signed_at": "2026-01-01T00:00:00Z", "schema_version": 1})
    assert rec.signature is None and signature_status(rec) == "unsigned"


def test_the_pack_shows_each_signoff_with_its_signature_state(tmp_path):
    from _report_records import RUN_ID, make_records, pdf_text
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from assurance.evidence.signoff import sign
    from assurance.report import render_pack

    key = Ed25519PrivateKey.generate()
    accepted = sign(SignoffRecord(name="Pat Risk", role="SMF24", decision="approve", signed_at="2025-03-17T09:30:00Z",
                                  run_id=RUN_ID, accepted_risk="compensating control X"), key)
    forged = sign(SignoffRecord(name="Al Tered", role="CRO", decision="reject", signed_at="2025-03-17T10:00:00Z",
                                run_id=RUN_ID), key).model_copy(update={"decision": "approve"})
    out = tmp_path / "fca.pdf"
    render_pack([*make_records(), accepted, forged], "fca", out)
    text = " ".join(pdf_text(out).split())
    assert "RISK ACCEPTED (verdict FAIL)" in text and "Reason: compensating control X" in text
    assert "signature valid" in text and key_fingerprint(accepted.public_key) in text
    assert "SIGNATURE INVALID" in text
    assert "unsigned (recorded before sign-offs were signed)" in text  # the fixture's typed-name sign-off


def test_a_signed_pack_replaced_by_one_signed_with_another_key_is_found(tmp_path):
    import datetime as dt
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from assurance.evidence.pades import check_signed_pack, self_signed_certificate, sign_pack

    store = sealed_run(tmp_path)
    key, _ = _key(tmp_path)
    assert _sign(store, key).exit_code == 0
    (rec,) = store.records(RUN, kinds=["signoff"])
    assert check_signed_pack(rec) == []
    attacker = Ed25519PrivateKey.generate()
    cert = self_signed_certificate(attacker, rec.name, rec.role, dt.datetime.now(dt.UTC))
    forged = tmp_path / "forged.pdf"
    digest = sign_pack(tmp_path / "fca.pdf", forged, attacker, cert, reason="approve")
    moved = rec.model_copy(update={"signed_pack_path": str(forged), "signed_pack_digest": digest})
    assert [m for _, m in check_signed_pack(moved)] == [f"signed pack {forged}: signed by a key other than the "
                                                        "sign-off's"]
    other_pdf = tmp_path / "other.pdf"
    other_pdf.write_bytes(Path(tmp_path / "fca.pdf").read_bytes().replace(b"/MediaBox", b"/MediaBox ", 1))
    digest = sign_pack(other_pdf, tmp_path / "other-signed.pdf", attacker, cert, reason="approve")
    swapped = rec.model_copy(update={"signed_pack_path": str(tmp_path / "other-signed.pdf"),
                                     "signed_pack_digest": digest})
    assert "not the pack decided on" in check_signed_pack(swapped)[0][1]
