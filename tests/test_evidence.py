"""The evidence layer: digests, the ledger, the seal and the auditor's checks."""

import hashlib
import sqlite3

import pytest

from assurance.evidence.hashing import canonical_json, file_digest, json_digest, tree_digest
from assurance.evidence.records import ArtifactRecord, MetricRecord, RunStarted, VerdictRecord
from assurance.evidence.seal import check_signature, generate_key, seal_run
from assurance.evidence.store import Store, StoreError, new_run_id
from assurance.evidence.verify import verify_run


def make_tree(root):
    (root / "a" / "b").mkdir(parents=True)
    (root / "a-b").mkdir()
    (root / ".git").mkdir()
    (root / "a" / "b" / "x.safetensors").write_bytes(b"weights" * 1000)
    (root / "a-b" / "y.json").write_text("{}")
    (root / "a.txt").write_text("z")
    (root / ".git" / "HEAD").write_text("ref")
    (root / ".gitignore").write_text("*.pyc")
    return root


def test_canonical_json_is_rfc8785():
    assert canonical_json({"b": 1, "a": [1.0, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert json_digest({"a": 1}) == "sha256:" + hashlib.sha256(b'{"a":1}').hexdigest()


def test_directory_digest_matches_openssf_model_signing(tmp_path):
    ms = pytest.importorskip("model_signing.hashing")
    root = make_tree(tmp_path / "model")
    manifest = ms.Config().hash(root)
    outer = hashlib.sha256()
    for desc in manifest.resource_descriptors():
        outer.update(desc.digest.digest_value)
    ours = tree_digest(root)
    assert ours.digest == "sha256:" + outer.hexdigest()
    assert ".git/HEAD" not in ours.files and ".gitignore" not in ours.files
    # Component-wise order: "a/b/x" sorts before "a-b/y" although '-' < '/'.
    assert list(ours.files) == ["a/b/x.safetensors", "a-b/y.json", "a.txt"]


def test_file_digest_is_plain_sha256(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"\x00" * 10_000_000)
    assert file_digest(p) == "sha256:" + hashlib.sha256(b"\x00" * 10_000_000).hexdigest()


def _started(run_id):
    return RunStarted(run_id=run_id, plan={"name": "t"}, plan_digest=json_digest({"name": "t"}),
                      tool_version="0", started_at="2026-01-01T00:00:00Z")


def _metric(value=0.5):
    return MetricRecord(stage="tuned", name="refusal_rate", category="fraud", successes=int(value * 10), n=10,
                        value=value, ci_low=0.2, ci_high=0.8)


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'ledger.db'}")


def sealed_run(store, tmp_path, key=None):
    run_id = new_run_id()
    model = make_tree(tmp_path / f"model-{run_id[:8]}")
    d = tree_digest(model)
    store.append(run_id, [_started(run_id)])
    store.append(run_id, [
        ArtifactRecord(role="base_model", path=str(model), digest=d.digest, is_dir=True, size_bytes=d.size_bytes, files=d.files),
        _metric(),
        VerdictRecord(status="PASS", checks=[], reasons=[]),
    ])
    seal_run(store, run_id, complete=True, key_path=key)  # the evidence seal; no packs, so the packs seal follows
    seal_run(store, run_id, complete=True, key_path=key, scope="packs")
    return run_id, model


def test_chain_round_trip_and_listing(store, tmp_path):
    run_id, _ = sealed_run(store, tmp_path)
    records = store.records(run_id)
    assert [r.kind for r in records] == ["run_started", "artifact", "metric", "verdict", "manifest", "manifest"]
    assert store.resolve(None) == run_id and store.resolve(run_id[:13]) == run_id
    report = verify_run(store, run_id)
    assert report.ok and report.complete and report.files_checked == 1, report.findings


def test_run_ids_sort_by_time():
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50 and all(i[14] == "7" for i in ids)


def test_ledger_refuses_update_and_delete(store, tmp_path):
    run_id, _ = sealed_run(store, tmp_path)
    con = sqlite3.connect(store.url[len("sqlite:///"):])
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE ledger SET payload = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM ledger")


def tamper(store, sql, *args):
    """An attacker with write access drops the guard and edits a row."""
    con = sqlite3.connect(store.url[len("sqlite:///"):])
    con.execute("DROP TRIGGER ledger_no_update")
    con.execute(sql, args)
    con.commit()
    con.close()


def test_changed_score_is_named(store, tmp_path):
    run_id, _ = sealed_run(store, tmp_path)
    entry = next(e for e in store.entries(run_id) if e.kind == "metric")
    tamper(store, "UPDATE ledger SET payload = ? WHERE id = ?", entry.payload.replace('"value":0.5', '"value":0.9'), entry.id)
    report = verify_run(store, run_id)
    assert not report.ok
    assert any(f.subject == f"record {entry.seq} (metric)" and "altered" in f.message for f in report.findings)


def test_rehashed_record_still_breaks_the_chain(store, tmp_path):
    run_id, _ = sealed_run(store, tmp_path)
    e = next(e for e in store.entries(run_id) if e.kind == "metric")
    payload = canonical_json(_metric(0.9).model_dump(mode="json")).decode()
    tamper(store, "UPDATE ledger SET payload = ?, record_digest = ? WHERE id = ?", payload,
           "sha256:" + hashlib.sha256(payload.encode()).hexdigest(), e.id)
    findings = verify_run(store, run_id).findings
    assert any(f.subject == f"record {e.seq} (metric)" and "chain digest" in f.message for f in findings)


def test_changed_model_byte_is_named(store, tmp_path):
    run_id, model = sealed_run(store, tmp_path)
    f = model / "a" / "b" / "x.safetensors"
    data = bytearray(f.read_bytes())
    data[100] ^= 1
    f.write_bytes(bytes(data))
    report = verify_run(store, run_id)
    assert not report.ok
    assert [x.subject for x in report.findings if x.severity == "error"] == [str(f)]


def test_missing_artifact_is_a_warning_not_a_failure(store, tmp_path):
    import shutil

    run_id, model = sealed_run(store, tmp_path)
    shutil.rmtree(model)
    report = verify_run(store, run_id)
    assert report.ok and any(x.severity == "warning" and str(model) in x.subject for x in report.findings)


def test_unsealed_run_is_a_finding(store):
    run_id = new_run_id()
    store.append(run_id, [_started(run_id)])
    report = verify_run(store, run_id)
    assert not report.ok and "never sealed" in report.findings[0].message


def test_signed_manifest_verifies_and_detects_forgery(store, tmp_path):
    key = tmp_path / "key.pem"
    pub = generate_key(key)
    run_id, _ = sealed_run(store, tmp_path, key=key)
    manifest = store.records(run_id)[-1]
    assert manifest.public_key == pub and check_signature(manifest, pub) is None
    forged = manifest.model_copy(update={"complete": False})
    assert check_signature(forged) == "manifest signature does not verify"
    assert not verify_run(store, run_id, trusted_key="AAAA" + pub[4:]).ok


def test_unknown_run_is_a_clear_error(store, tmp_path):
    sealed_run(store, tmp_path)
    with pytest.raises(StoreError, match="not found"):
        store.resolve("ffffffff")


def test_plain_path_means_a_sqlite_file(tmp_path):
    s = Store(str(tmp_path / "sub" / "ledger.db"))
    assert s.url == f"sqlite:///{tmp_path / 'sub' / 'ledger.db'}" and (tmp_path / "sub" / "ledger.db").exists()


def test_read_only_commands_do_not_create_a_store(tmp_path):
    with pytest.raises(StoreError, match="no evidence store"):
        Store(str(tmp_path / "none.db"), create=False)
    assert not (tmp_path / "none.db").exists()


def test_keygen_command_writes_a_key_and_refuses_to_overwrite(tmp_path):
    from typer.testing import CliRunner

    from assurance.cli import app
    from assurance.evidence.seal import load_private_key

    key = tmp_path / "k.pem"
    res = CliRunner().invoke(app, ["keygen", str(key)])
    assert res.exit_code == 0 and len(res.stdout.strip()) == 44  # base64 of 32 bytes
    load_private_key(key)
    assert CliRunner().invoke(app, ["keygen", str(key)]).exit_code == 2


def test_records_can_be_read_by_kind(store, tmp_path):
    run_id, _ = sealed_run(store, tmp_path)
    assert [r.kind for r in store.records(run_id, kinds=("verdict", "run_started"))] == ["run_started", "verdict"]
