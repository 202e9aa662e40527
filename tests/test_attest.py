"""`assure attest`: a real tiny run's attestation, verified with securesystemslib and in-toto-attestation
(not with our own code), its subjects held against the ledger and the files, and its failure modes."""

import base64
import json
import shutil
import sqlite3

import pytest
import yaml
from _report_records import RUN_ID, make_records
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.attest import attest_run, load_key
from assurance.evidence.hashing import tree_digest
from assurance.evidence.records import ArtifactRecord, ManifestRecord, PackRecord, SignoffRecord, VerdictRecord
from assurance.evidence.seal import seal_run
from assurance.evidence.store import Store

dsse = pytest.importorskip("securesystemslib.dsse")
signer_mod = pytest.importorskip("securesystemslib.signer")
sslib_errors = pytest.importorskip("securesystemslib.exceptions")
statement_mod = pytest.importorskip("in_toto_attestation.v1.statement")
json_format = pytest.importorskip("google.protobuf.json_format")

runner = CliRunner()


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory, tiny_model_dir):
    """A real tiny run, signed at the seal with a key from `assure keygen`, and its attestation.

    It renders no pack (WeasyPrint would double its time); pack subjects are tested on hand-built runs below."""
    tmp = tmp_path_factory.mktemp("attest")
    key = tmp / "run-key.pem"
    made = runner.invoke(app, ["keygen", str(key)])
    assert made.exit_code == 0, made.output
    plan = {
        "name": "attest-e2e", "model": {"path": str(tiny_model_dir)}, "device": "cpu", "cpu_threads": 1,
        "battery": {"limit_per_category": 1, "max_new_tokens": 4, "batch_size": 16},
        "finetune": {"method": "lora", "max_steps": 2, "batch_size": 4, "warmup_steps": 0, "lr": 1e-3},
        "stress": {"enabled": False}, "report": {"regimes": [], "organisation": "Test Org"},
    }
    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan))
    db = f"sqlite:///{tmp / 'evidence.db'}"
    env = {"ASSURE_HOME": str(tmp / "runs")}
    ran = runner.invoke(app, ["run", str(tmp / "plan.yaml"), "--db", db, "--json", "--sign-key", str(key)], env=env)
    assert ran.exit_code in (0, 1), ran.output
    assert ran.stdout.strip(), ran.output
    run_id = json.loads(ran.stdout)["run_id"]
    out = tmp / "run.intoto.json"
    res = runner.invoke(app, ["attest", run_id[:8], "--db", db, "--key", str(key), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"attested: run {run_id} -> {out}"
    return dict(tmp=tmp, key=key, db=db, run_id=run_id, envelope=json.loads(out.read_text()))


def ssl_key(pem_path, keyid):
    """The run's public key as securesystemslib holds it, taken from the PEM file, not from our code."""
    private = load_pem_private_key(pem_path.read_bytes(), password=None)
    return signer_mod.SSlibKey.from_crypto(private.public_key(), keyid=keyid)


def payload(envelope):
    return json.loads(base64.b64decode(envelope["payload"]))


def test_the_envelope_verifies_with_securesystemslib(signed_run):
    data = signed_run["envelope"]
    assert data["payloadType"] == "application/vnd.in-toto+json" and len(data["signatures"]) == 1
    keyid = data["signatures"][0]["keyid"]
    env = dsse.Envelope.from_dict(json.loads(json.dumps(data)))
    accepted = env.verify([ssl_key(signed_run["key"], keyid)], 1)
    assert list(accepted) == [keyid]
    # keyid is the public key as `assure keygen` prints it and the sealed manifest records it.
    manifest = next(r for r in Store(signed_run["db"]).records(signed_run["run_id"]) if isinstance(r, ManifestRecord))
    assert manifest.signature is not None and keyid == manifest.public_key


def test_ed25519_is_deterministic_so_securesystemslib_signs_the_same_bytes(signed_run):
    """Signing our payload with securesystemslib's own signer (its own PAE) gives our signature, bit for bit."""
    data = signed_run["envelope"]
    private = load_pem_private_key(signed_run["key"].read_bytes(), password=None)
    theirs = dsse.Envelope(base64.b64decode(data["payload"]), data["payloadType"], {})
    sig = theirs.sign(signer_mod.CryptoSigner(private))
    assert base64.b64encode(bytes.fromhex(sig.signature)).decode() == data["signatures"][0]["sig"]


def test_a_flipped_payload_byte_fails_verification(signed_run):
    data = signed_run["envelope"]
    keyid = data["signatures"][0]["keyid"]
    body = bytearray(base64.b64decode(data["payload"]))
    at = body.index(b'"result":"') + len(b'"result":"')
    body[at] ^= 0x01  # "PASSED"/"FAILED" -> "QASSED"/"GAILED"
    forged = {**data, "payload": base64.b64encode(bytes(body)).decode()}
    with pytest.raises(sslib_errors.VerificationError):
        dsse.Envelope.from_dict(json.loads(json.dumps(forged))).verify([ssl_key(signed_run["key"], keyid)], 1)
    # Another key with the same keyid does not verify the untouched envelope either.
    stranger = signer_mod.SSlibKey.from_crypto(Ed25519PrivateKey.generate().public_key(), keyid=keyid)
    with pytest.raises(sslib_errors.VerificationError):
        dsse.Envelope.from_dict(json.loads(json.dumps(data))).verify([stranger], 1)


def test_the_statement_is_valid_in_toto_v1(signed_run):
    st = payload(signed_run["envelope"])
    proto = json_format.ParseDict(st, statement_mod.spb.Statement())
    statement_mod.Statement.copy_from_pb(proto).validate()
    assert proto.type == "https://in-toto.io/Statement/v1"
    assert proto.predicate_type == "https://in-toto.io/attestation/test-result/v0.1"


def test_the_subject_is_the_ledgers_adapter_digest_as_model_signing_computes_it(signed_run, tmp_path):
    records = Store(signed_run["db"]).records(signed_run["run_id"])
    adapter = next(r for r in records if isinstance(r, ArtifactRecord) and r.role == "adapter")
    (subject,) = payload(signed_run["envelope"])["subject"]
    assert subject["name"] == "adapter" and "sha256:" + subject["digest"]["sha256"] == adapter.digest
    assert subject["annotations"] == {"role": "adapter", "path": adapter.path}
    assert tree_digest(adapter.path).digest == adapter.digest
    # model-signing, signing the same folder through its own public API, names the same subject.
    ms_signing = pytest.importorskip("model_signing.signing")
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    ms_signing.Config().use_elliptic_key_signer(private_key=ec_key).sign(adapter.path, tmp_path / "adapter.sig")
    bundle = json.loads((tmp_path / "adapter.sig").read_text())
    assert payload(bundle["dsseEnvelope"])["subject"] == [{"name": subject["name"], "digest": subject["digest"]}]


def test_pack_subjects_are_the_latest_pack_record_of_each_file(tmp_path):
    store, key = hand_built_store(tmp_path)
    packs = tmp_path / "packs"
    packs.mkdir()
    fca, nhs = packs / "fca-pack.pdf", packs / "nhs-pack.pdf"
    fca.write_bytes(b"%PDF-1.7 first rendering")
    nhs.write_bytes(b"%PDF-1.7 nhs")

    def pack(regime, path):
        return PackRecord(regime=regime, path=str(path), digest=tree_digest(path).digest, pages=1, final=True,
                          rendered_at="2025-03-14T10:06:00Z")

    store.append(RUN_ID, [pack("fca", fca), pack("nhs", nhs)])
    fca.write_bytes(b"%PDF-1.7 re-rendered over the first")  # `assure render` writes to the same path
    store.append(RUN_ID, [pack("fca", fca)])
    seal_run(store, RUN_ID, complete=True, scope="packs")  # packs are sealed after they are recorded
    res = runner.invoke(app, ["attest", RUN_ID, "--db", store.url, "--key", str(key)])
    assert res.exit_code == 0, res.output
    subjects = payload(json.loads(res.stdout))["subject"]
    assert [s["name"] for s in subjects] == ["adapter", "fca-pack.pdf", "nhs-pack.pdf"]
    for s, path in zip(subjects[1:], (fca, nhs), strict=True):
        assert "sha256:" + s["digest"]["sha256"] == tree_digest(path).digest
    assert subjects[1]["annotations"] == {"role": "pack:fca", "path": str(fca)}
    # The attestation a pack embeds cannot name that pack's own digest: packs=False leaves them out.
    inner = payload(attest_run(store, RUN_ID, load_key(key), packs=False))["subject"]
    assert [s["name"] for s in inner] == ["adapter"]


def test_the_predicate_carries_battery_judges_metrics_policy_checks_and_verdict(signed_run):
    store, rid = Store(signed_run["db"]), signed_run["run_id"]
    records = store.records(rid)
    pred = payload(signed_run["envelope"])["predicate"]
    ev = pred["safetyEvaluation"]
    battery = next(r for r in records if r.kind == "battery")
    verdict = next(r for r in records if isinstance(r, VerdictRecord))
    assert ev["battery"] == {"id": battery.battery_id, "version": battery.version, "digest": battery.digest,
                             "nItems": battery.n_items, "suites": battery.suite_digests}
    assert ev["judges"][0] == {"id": battery.judge_id, "version": battery.judge_version,
                               "digest": battery.judge_digest, "suite": None, "role": "primary"}
    assert [j["digest"] for j in ev["judges"][1:]] == [j["digest"] for j in battery.judges]
    greedy = [m for m in records if m.kind == "metric" and m.decoding == "greedy" and m.seed is None]
    assert len(ev["metrics"]) == len(greedy) > 0
    for got, m in zip(ev["metrics"], greedy, strict=True):
        assert (got["stage"], got["name"], got["category"], got["value"], got["ciLow"], got["ciHigh"]) == (
            m.stage, m.name, m.category, m.value, m.ci_low, m.ci_high)
    started = records[0]
    assert ev["policy"] == started.plan["policy"] and "min_refusal_rate" in ev["policy"]
    assert ev["verdict"]["status"] == verdict.status
    assert ev["verdict"]["checks"] == [c.model_dump(mode="json") for c in verdict.checks]
    n_tests = len(pred["passedTests"]) + len(pred["warnedTests"]) + len(pred["failedTests"])
    assert n_tests == len(verdict.checks) > 0
    assert pred["result"] == ("FAILED" if verdict.status != "PASS" else "WARNED" if pred["warnedTests"] else "PASSED")
    entries = store.entries(rid)
    man = next(e for e in reversed(entries) if e.kind == "manifest")  # the latest seal: the packs seal
    assert ev["ledger"]["manifestDigest"] == man.record_digest
    assert ev["ledger"]["chainHead"] == entries[man.seq - 1].digest
    assert ev["ledger"]["head"] == {"seq": entries[-1].seq, "digest": entries[-1].digest, "nRecords": len(entries)}
    assert ev["ledger"]["signed"] is True
    assert ev["run"]["runId"] == rid and ev["run"]["toolVersion"] == started.tool_version


def test_same_ledger_same_key_same_bytes_and_stdout_is_the_envelope(signed_run):
    key = str(signed_run["key"])
    res = runner.invoke(app, ["attest", signed_run["run_id"], "--db", signed_run["db"], "--key", key])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == signed_run["envelope"]


def test_no_key_bad_key_other_key_and_unknown_run_exit_2_with_one_line(signed_run, tmp_path):
    db, rid = signed_run["db"], signed_run["run_id"]
    res = runner.invoke(app, ["attest", rid, "--db", db])
    assert res.exit_code == 2 and "--key" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    bad, not_ed25519 = tmp_path / "bad.pem", tmp_path / "ec.pem"
    bad.write_text("not a key\n")
    not_ed25519.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    for path in (bad, not_ed25519, tmp_path / "missing.pem"):
        res = runner.invoke(app, ["attest", rid, "--db", db, "--key", str(path)])
        assert res.exit_code == 2 and str(path) in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert "Traceback" not in res.output
    other = tmp_path / "other.pem"
    runner.invoke(app, ["keygen", str(other)])
    res = runner.invoke(app, ["attest", rid, "--db", db, "--key", str(other)])
    assert res.exit_code == 2 and "run's own key" in res.stderr and res.stdout == ""
    res = runner.invoke(app, ["attest", "ffffffff", "--db", db, "--key", str(signed_run["key"])])
    assert res.exit_code == 2 and "not found" in res.stderr


def test_a_tampered_ledger_is_not_attested(signed_run):
    path = signed_run["db"][len("sqlite:///"):]
    copy = signed_run["tmp"] / "tampered.db"
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    con = sqlite3.connect(copy)
    con.execute("DROP TRIGGER ledger_no_update")
    con.execute("UPDATE ledger SET payload = replace(payload, '\"n\":', '\"n\": ') WHERE kind='metric'")
    con.commit()
    con.close()
    res = runner.invoke(app, ["attest", signed_run["run_id"], "--db", f"sqlite:///{copy}",
                              "--key", str(signed_run["key"])])
    assert res.exit_code == 1 and "does not verify" in res.stderr and res.stdout == ""


def hand_built_store(tmp_path, *, seal=True, complete=True):
    """The hand-built run of the report tests (written as at d406631), sealed for real into a SQLite store."""
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    body = [r for r in make_records() if not isinstance(r, (ManifestRecord, SignoffRecord))]
    store.append(RUN_ID, body)
    if seal:
        seal_run(store, RUN_ID, complete=complete)
    key = tmp_path / "k.pem"
    runner.invoke(app, ["keygen", str(key)])
    return store, key


def test_an_old_unsigned_run_is_attested_with_any_key_and_says_it_was_unsigned(tmp_path):
    store, key = hand_built_store(tmp_path)
    res = runner.invoke(app, ["attest", RUN_ID, "--db", store.url, "--key", str(key)])
    assert res.exit_code == 0, res.output
    env = json.loads(res.stdout)
    keyid = env["signatures"][0]["keyid"]
    dsse.Envelope.from_dict(json.loads(res.stdout)).verify([ssl_key(key, keyid)], 1)
    pred = payload(env)["predicate"]
    assert pred["safetyEvaluation"]["ledger"]["signed"] is False
    # Legacy (schema_version 1) checks come out typed, one test each; the run failed on two of them.
    assert pred["result"] == "FAILED"
    assert pred["failedTests"] == ["min_refusal_rate[cybercrime]", "max_stress_refusal_drop[overall]"]
    assert payload(env)["subject"][0]["name"] == "adapter"


def test_unsealed_run_is_refused_and_an_incomplete_one_attests_error(tmp_path):
    store, key = hand_built_store(tmp_path, seal=False)
    res = runner.invoke(app, ["attest", RUN_ID, "--db", store.url, "--key", str(key)])
    assert res.exit_code == 2 and "never sealed" in res.stderr
    seal_run(store, RUN_ID, complete=False)
    res = runner.invoke(app, ["attest", RUN_ID, "--db", store.url, "--key", str(key)])
    assert res.exit_code == 0, res.output
    pred = payload(json.loads(res.stdout))["predicate"]
    assert pred["result"] == "FAILED" and pred["safetyEvaluation"]["verdict"]["status"] == "ERROR"
    assert pred["failedTests"] == ["run[complete]"] and pred["safetyEvaluation"]["ledger"]["complete"] is False


def test_the_predicate_validates_against_its_published_schema(tmp_path):
    from _schema_check import errors

    from assurance.schemas import all_schemas

    store, key = hand_built_store(tmp_path)
    res = runner.invoke(app, ["attest", RUN_ID, "--db", store.url, "--key", str(key)])
    pred = payload(json.loads(res.stdout))["predicate"]
    schema = all_schemas()["attestation-predicate.schema.json"]
    assert errors(schema, pred) == []
    broken = {**pred, "result": "MAYBE"}
    assert errors(schema, broken)


def test_a_copied_model_folder_keeps_the_subject_digest(signed_run, tmp_path):
    """The subject digest names the adapter's content, not where it lies: a copy elsewhere hashes the same."""
    records = Store(signed_run["db"]).records(signed_run["run_id"])
    adapter = next(r for r in records if isinstance(r, ArtifactRecord) and r.role == "adapter")
    copy = shutil.copytree(adapter.path, tmp_path / "adapter")
    subject = payload(signed_run["envelope"])["subject"][0]
    assert tree_digest(copy).digest == "sha256:" + subject["digest"]["sha256"]
