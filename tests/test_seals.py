"""The two seals: the evidence seal after the verdict, the packs seal after the packs (issue 10, item 1).

What verify checks about them (what they cover, what may follow the last one, who signed them), that
``assure render`` re-seals only with the run's own key, that a run killed between the seals resumes to its
packs, and that manifests signed before the seals had a scope still verify.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from _report_records import RUN_ID, make_records
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.hashing import PREFIX, canonical_json, sha256_hex
from assurance.evidence.records import (
    ArtifactRecord,
    FinetuneRecord,
    ManifestRecord,
    MetricRecord,
    PackRecord,
    RunStarted,
    SignoffRecord,
)
from assurance.evidence.seal import (
    check_signature,
    generate_key,
    public_key_b64,
    seal_run,
    signing_payload,
)
from assurance.evidence.store import LedgerEntry, Store, chain_digest, utc_now
from assurance.evidence.verify import verify_run
from assurance.pipeline import render_packs

runner = CliRunner()


def body(tmp_path: Path) -> list:
    """A finished run's records up to its verdict, planned for the FCA pack only, its fine-tune under tmp_path."""
    out = []
    for r in make_records(verdict="PASS", manifest=False):
        if isinstance(r, SignoffRecord):
            continue
        if isinstance(r, RunStarted):
            r = r.model_copy(update={"plan": {**r.plan, "report": {**r.plan["report"], "regimes": ["fca"]}}})
        if isinstance(r, FinetuneRecord):
            r = r.model_copy(update={"output_path": str(tmp_path / "run" / "adapter")})
        out.append(r)
    return out


def evidence_sealed(tmp_path: Path, key: Path | None = None) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'ev.db'}")
    store.append(RUN_ID, body(tmp_path))
    seal_run(store, RUN_ID, complete=True, key_path=key, scope="evidence")
    return store


def fake_pack(tmp_path: Path, name: str = "fca.pdf") -> PackRecord:
    from assurance.evidence.hashing import tree_digest

    path = tmp_path / name
    path.write_bytes(b"%PDF-1.7 " + name.encode())
    return PackRecord(regime="fca", path=str(path), digest=tree_digest(path).digest, pages=1, final=True,
                      rendered_at=utc_now())


def errors(report) -> list[str]:
    return [f"{f.subject}: {f.message}" for f in report.findings if f.severity == "error"]


def append_raw(store: Store, run_id: str, payload: dict) -> None:
    """Append a payload exactly as given (an older release's shape), chained as the store chains."""
    last = store.entries(run_id)[-1]
    text = canonical_json(payload)
    rdig, now = PREFIX + sha256_hex(text), utc_now()
    row = dict(run_id=run_id, seq=last.seq + 1, kind=payload["kind"], payload=text.decode(), record_digest=rdig,
               prev_digest=last.digest, digest=chain_digest(run_id, last.seq + 1, payload["kind"], rdig, last.digest,
                                                            now), created_at=now)
    with store.engine.begin() as conn:
        conn.execute(insert(LedgerEntry), [row])


# ----------------------------------------------------------------------------- old signatures

def test_a_manifest_signed_before_seals_had_a_scope_still_verifies(tmp_path):
    """The old code signed the canonical JSON without ``scope`` and ``packs`` (they did not exist); its stored
    payload has neither key. Such a ledger, with its packs and a sign-off after the seal, still verifies."""
    key = Ed25519PrivateKey.generate()
    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    store.append(RUN_ID, body(tmp_path))
    entries = store.entries(RUN_ID)
    old = {"kind": "manifest", "schema_version": 1, "complete": True, "chain_head": entries[-1].digest,
           "n_records": len(entries), "sealed_at": "2026-06-01T00:00:00Z",
           "artifacts": {r.role: r.digest for r in store.records(RUN_ID) if isinstance(r, ArtifactRecord)}}
    pub = public_key_b64(key.public_key())
    signed = {**old, "signature": base64.b64encode(key.sign(canonical_json(old))).decode(), "public_key": pub}
    append_raw(store, RUN_ID, signed)
    manifest = store.records(RUN_ID)[-1]
    assert isinstance(manifest, ManifestRecord) and manifest.scope is None and manifest.packs == {}
    assert signing_payload(manifest) == canonical_json(old) and check_signature(manifest, pub) is None
    store.append(RUN_ID, [fake_pack(tmp_path), SignoffRecord(name="A", role="SMF24", decision="approve",
                                                             signed_at=utc_now())])
    report = verify_run(store, RUN_ID, trusted_key=pub, require_signed=True)
    assert report.ok and report.complete, report.findings
    assert (report.signed, report.signer_key, report.key_trusted) == ("signed", pub, True)

    # Only sign-offs, packs and a profile ever followed an old seal: anything else is named.
    store.append(RUN_ID, [MetricRecord(stage="tuned", name="refusal_rate", category="x", successes=1, n=2,
                                       value=0.5, ci_low=0.1, ci_high=0.9)])
    n = store.count(RUN_ID) - 1
    assert errors(verify_run(store, RUN_ID)) == [
        f"record {n} (metric): metric record after the run's last seal; only sign-offs may follow it"]


def test_the_new_fields_enter_the_signed_bytes_only_when_set(tmp_path):
    common = dict(complete=True, chain_head="sha256:" + "0" * 64, n_records=3, artifacts={}, sealed_at="t")
    assert b"scope" not in signing_payload(ManifestRecord(**common))
    sealed = signing_payload(ManifestRecord(**common, scope="packs", packs={"a.pdf": "sha256:" + "1" * 64}))
    assert b'"scope":"packs"' in sealed and b'"packs":{"a.pdf"' in sealed


# ----------------------------------------------------------------------------- what verify checks

def test_evidence_seal_alone_is_incomplete_and_names_the_resume(tmp_path):
    store = evidence_sealed(tmp_path)
    report = verify_run(store, RUN_ID, check_files=False)
    assert report.ok and not report.complete and report.signed == "unsigned" and report.key_trusted is None
    assert [f.message for f in report.findings if f.severity == "warning"] == [
        f"packs not rendered and sealed; `assure run --resume {RUN_ID}` finishes it"]
    res = runner.invoke(app, ["verify", RUN_ID, "--db", store.url, "--no-files"])
    assert res.exit_code == 0 and "run INCOMPLETE" in res.output and "UNSIGNED" in res.output
    assert not verify_run(store, RUN_ID, check_files=False, require_signed=True).ok


def test_packs_must_be_covered_by_a_packs_seal_that_lists_them(tmp_path):
    store = evidence_sealed(tmp_path)
    pack = fake_pack(tmp_path)
    store.append(RUN_ID, [pack])
    n = store.count(RUN_ID) - 1
    assert errors(verify_run(store, RUN_ID)) == [f"record {n} (pack): fca pack fca.pdf is not covered by a packs seal"]
    sealed = seal_run(store, RUN_ID, complete=True, scope="packs")
    assert sealed.packs == {"fca.pdf": pack.digest}
    report = verify_run(store, RUN_ID)
    assert report.ok and report.complete and report.files_checked == 1, report.findings

    # A packs seal that lists something else (rewritten by someone without the key to re-sign) is named.
    second = fake_pack(tmp_path, "fca-v2.pdf")
    store.append(RUN_ID, [second])
    head = store.entries(RUN_ID)[-1]
    store.append(RUN_ID, [ManifestRecord(complete=True, chain_head=head.digest, n_records=head.seq + 1,
                                         artifacts=sealed.artifacts, sealed_at=utc_now(), scope="packs",
                                         packs={"fca.pdf": pack.digest})])
    assert errors(verify_run(store, RUN_ID)) == [
        f"record {head.seq + 1} (manifest): pack digests differ from the pack records before it: fca-v2.pdf"]


def test_only_signoffs_may_follow_the_packs_seal(tmp_path):
    store = evidence_sealed(tmp_path)
    seal_run(store, RUN_ID, complete=True, scope="packs")
    store.append(RUN_ID, [SignoffRecord(name="A", role="SMF24", decision="approve", signed_at=utc_now())])
    assert verify_run(store, RUN_ID).ok
    store.append(RUN_ID, [fake_pack(tmp_path)])
    n = store.count(RUN_ID) - 1
    assert errors(verify_run(store, RUN_ID)) == [f"record {n} (pack): fca pack fca.pdf is not covered by a packs seal"]


def test_signatures_reported_stripped_and_mixed_keys_found(tmp_path):
    key, other = tmp_path / "key.pem", tmp_path / "other.pem"
    pub, other_pub = generate_key(key), generate_key(other)
    store = evidence_sealed(tmp_path, key)
    seal_run(store, RUN_ID, complete=True, key_path=key, scope="packs")
    report = verify_run(store, RUN_ID, check_files=False)
    assert report.ok and (report.signed, report.signer_key, report.key_trusted) == ("signed", pub, None)
    assert verify_run(store, RUN_ID, check_files=False, trusted_key=pub).key_trusted is True
    wrong = verify_run(store, RUN_ID, check_files=False, trusted_key=other_pub)
    assert not wrong.ok and wrong.key_trusted is False

    for args, line in (([], f"signed by key {pub} (no trusted key given)"),
                       (["--trusted-key", pub], f"signed by key {pub} (trusted)"),
                       (["--trusted-key", other_pub], f"signed by key {pub} (NOT the trusted key)")):
        res = runner.invoke(app, ["verify", RUN_ID, "--db", store.url, "--no-files", *args])
        assert line in res.output.splitlines(), res.output
    res = runner.invoke(app, ["verify", RUN_ID, "--db", store.url, "--no-files", "--json", "--trusted-key", pub])
    out = json.loads(res.stdout)
    assert (out["signed"], out["signer_key"], out["key_trusted"]) == ("signed", pub, True)

    # A seal without the signature (a re-render by hand, bypassing assure) is found without any flag,
    seal_run(store, RUN_ID, complete=True, scope="packs")
    report = verify_run(store, RUN_ID, check_files=False)
    assert report.signed == "mixed" and any("signature was stripped" in e for e in errors(report))
    # and one signed by another key too.
    seal_run(store, RUN_ID, complete=True, key_path=other, scope="packs")
    assert any("2 different keys" in e for e in errors(verify_run(store, RUN_ID, check_files=False)))


# ----------------------------------------------------------------------------- render and resume

def test_render_reseals_with_the_runs_key_only(tmp_path):
    key, other = tmp_path / "key.pem", tmp_path / "other.pem"
    pub = generate_key(key)
    generate_key(other)
    store = evidence_sealed(tmp_path, key)
    out = tmp_path / "packs"
    first = render_packs(store, RUN_ID, ["fca"], out, key_path=key)["fca"]
    kinds = [r.kind for r in store.records(RUN_ID)][-3:]
    assert kinds == ["manifest", "pack", "manifest"]
    n = store.count(RUN_ID)
    for args, said in (([], "give that key with --sign-key"), (["--sign-key", str(other)], "but the run's seals"),
                       (["--sign-key", str(tmp_path / "missing.pem")], "cannot sign with it (no such file)")):
        res = runner.invoke(app, ["render", RUN_ID, "--regime", "fca", "--db", store.url, "--out", str(out), *args])
        assert res.exit_code == 2 and said in res.output, res.output
        assert store.count(RUN_ID) == n and sorted(out.iterdir()) == [first]  # nothing written
    res = runner.invoke(app, ["render", RUN_ID, "--regime", "fca", "--db", store.url, "--out", str(out),
                              "--sign-key", str(key)])
    assert res.exit_code == 0, res.output
    second = Path(res.stdout.strip())
    seal = store.records(RUN_ID)[-1]
    assert isinstance(seal, ManifestRecord) and seal.scope == "packs" and seal.signature
    packs = [p for p in store.records(RUN_ID, kinds=["pack"]) if isinstance(p, PackRecord)]
    assert seal.packs == {first.name: packs[0].digest, second.name: packs[1].digest}
    report = verify_run(store, RUN_ID, trusted_key=pub, require_signed=True)
    assert report.ok and report.complete and report.files_checked == 2, report.findings


def test_render_of_an_unsealed_run_is_refused(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'ev.db'}")
    store.append(RUN_ID, body(tmp_path))
    res = runner.invoke(app, ["render", RUN_ID, "--regime", "fca", "--db", store.url, "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "never sealed" in res.output and "--resume" in res.output
    assert not (tmp_path / "p").exists()


def test_an_unsigned_run_is_not_half_signed_by_a_render(tmp_path):
    store = evidence_sealed(tmp_path)
    generate_key(tmp_path / "key.pem")
    n = store.count(RUN_ID)
    res = runner.invoke(app, ["render", RUN_ID, "--regime", "fca", "--db", store.url, "--out", str(tmp_path / "p"),
                              "--sign-key", str(tmp_path / "key.pem")])
    assert res.exit_code == 2 and "seals are unsigned" in res.output and store.count(RUN_ID) == n


def test_a_run_killed_between_the_seals_resumes_to_its_packs(tmp_path):
    """The kill came after the evidence seal and one pack record: the resume renders nothing twice, renders
    what the plan still lacks, seals the packs with the run's key; then the run is final."""
    key, other = tmp_path / "key.pem", tmp_path / "other.pem"
    pub = generate_key(key)
    generate_key(other)
    store = evidence_sealed(tmp_path, key)
    env = {"ASSURE_HOME": str(tmp_path / "home")}
    n = store.count(RUN_ID)
    for args in ([], ["--sign-key", str(other)]):  # a signed run's packs are sealed with its own key only
        res = runner.invoke(app, ["run", "--resume", RUN_ID, "--db", store.url, *args], env=env)
        assert res.exit_code == 2 and "--sign-key" in res.output, res.output
        assert store.count(RUN_ID) == n
    res = runner.invoke(app, ["run", "--resume", RUN_ID[:13], "--db", store.url, "--sign-key", str(key), "--json"],
                        env=env)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "PASS" and out["resumed"] and Path(out["packs"]["fca"]).is_file()
    assert Path(out["packs"]["fca"]).parent == tmp_path / "run" / "packs"  # the run's own folder
    kinds = [r.kind for r in store.records(RUN_ID)]
    assert kinds[n - 1:] == ["manifest", "pack", "manifest"]
    report = verify_run(store, RUN_ID, trusted_key=pub, require_signed=True)
    assert report.ok and report.complete, report.findings
    again = runner.invoke(app, ["run", "--resume", RUN_ID, "--db", store.url, "--sign-key", str(key)], env=env)
    assert again.exit_code == 2 and "already sealed" in again.output


def test_a_kill_after_the_last_pack_record_only_seals(tmp_path):
    store = evidence_sealed(tmp_path)
    store.append(RUN_ID, [fake_pack(tmp_path)])
    from assurance.resume import resume_pipeline

    result = resume_pipeline(RUN_ID, store_url=store.url)
    assert [r.kind for r in store.records(RUN_ID)][-3:] == ["manifest", "pack", "manifest"]
    assert result.packs == {"fca": tmp_path / "fca.pdf"} and result.exit_code == 0
    assert verify_run(store, RUN_ID).ok


def test_an_incomplete_run_gets_draft_packs_and_both_seals(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'ev.db'}")
    store.append(RUN_ID, body(tmp_path))
    seal_run(store, RUN_ID, complete=False)
    render_packs(store, RUN_ID, ["fca"], tmp_path / "packs", key_path=None)
    records = store.records(RUN_ID)
    seals = [r for r in records if isinstance(r, ManifestRecord)]
    assert [(s.scope, s.complete) for s in seals] == [("evidence", False), ("packs", False)]
    assert not next(r for r in records if isinstance(r, PackRecord)).final
    report = verify_run(store, RUN_ID)
    assert report.ok and not report.complete, report.findings

