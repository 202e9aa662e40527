"""Packs carry their evidence (PDF/A-3b attachments) and check out on their own: `assure verify PACK.pdf`.

veraPDF is not available, so PDF/A-3b is checked by what a reader can see: the XMP identification, the
embedded files with their AFRelationship in the catalog's /AF, and the records in them re-verifying. The
run is the hand-built one of the report tests, sealed for real (signed) into a SQLite ledger; packs are
rendered eight times in all (each takes seconds).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import time

import pytest
from _pdf import assert_digests_whole, pdftotext
from _report_records import RUN_ID, TUNED_DIGEST, make_records
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, NumberObject
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.hashing import PREFIX, canonical_json, sha256_hex
from assurance.evidence.pack_evidence import (
    ATTESTATION,
    MANIFEST,
    RECORDS,
    RENDER,
    VERDICT,
    pack_attachments,
)
from assurance.evidence.pack_verify import attached_rows, chain_findings, verify_pack
from assurance.evidence.records import ManifestRecord, MetricRecord, SignoffRecord
from assurance.evidence.seal import public_key_b64, seal_run
from assurance.evidence.store import Store, chain_digest
from assurance.pipeline import render_packs
from assurance.report import render_pack

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler not installed")

runner = CliRunner()
EXPECTED = {RECORDS: "/Source", MANIFEST: "/Supplement", VERDICT: "/Data", ATTESTATION: "/Supplement",
            RENDER: "/Supplement"}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A signed hand-built run, its FCA pack rendered by render_packs with the run's key."""
    tmp = tmp_path_factory.mktemp("packed")
    key = tmp / "k.pem"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    store = Store(f"sqlite:///{tmp / 'e.db'}")
    store.append(RUN_ID, [r for r in make_records() if not isinstance(r, (ManifestRecord, SignoffRecord))])
    manifest = seal_run(store, RUN_ID, complete=True, key_path=key)
    rows_then = store.entries(RUN_ID)
    pack = render_packs(store, RUN_ID, ["fca"], tmp / "packs", key_path=key)["fca"]
    return dict(tmp=tmp, key=key, store=store, pack=pack, rows=rows_then, public_key=manifest.public_key)


def _filespecs(reader):
    names = reader.trailer["/Root"]["/Names"]["/EmbeddedFiles"]["/Names"]
    return {str(names[i]): names[i + 1].get_object() for i in range(0, len(names), 2)}


def test_the_pack_says_pdf_a_3b_and_stays_tagged(packed):
    reader = PdfReader(str(packed["pack"]))
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert re.search(r'pdfaid:part="3"', xmp) and re.search(r'pdfaid:conformance="B"', xmp), xmp
    assert reader.pdf_header == "%PDF-1.7"
    assert "/OutputIntents" in root and root["/OutputIntents"][0]["/S"] == "/GTS_PDFA1"
    assert "/StructTreeRoot" in root and bool(root["/MarkInfo"]["/Marked"]) and str(root["/Lang"]) == "en-GB"


def test_the_evidence_is_embedded_with_names_and_relationships(packed):
    reader = PdfReader(str(packed["pack"]))
    specs = _filespecs(reader)
    assert set(specs) == set(EXPECTED)
    af = {ref.get_object()["/UF"] for ref in reader.trailer["/Root"]["/AF"]}
    assert af == set(EXPECTED)  # PDF/A-3: every embedded file is an associated file of the document
    for name, spec in specs.items():
        assert spec["/AFRelationship"] == EXPECTED[name], name
        assert spec["/Desc"], name
        params = spec["/EF"]["/F"].get_object()["/Params"]
        # Dated from the ledger (the last attached row), never the clock.
        last = packed["rows"][-1].created_at
        assert params["/ModDate"] == "D:" + re.sub(r"\D", "", last)[:14] + "Z"
    assert "UNSIGNED" not in specs[ATTESTATION]["/Desc"]


def test_the_attached_records_are_the_ledger_rows_and_re_verify(packed):
    files = {n: d[0] for n, d in PdfReader(str(packed["pack"])).attachments.items()}
    rows = attached_rows(files[RECORDS])
    assert [(r.seq, r.kind, r.payload, r.record_digest, r.prev_digest, r.digest, r.created_at) for r in rows] == [
        (e.seq, e.kind, e.payload, e.record_digest, e.prev_digest, e.digest, e.created_at) for e in packed["rows"]]
    findings, parsed = chain_findings(rows)
    assert findings == [] and len(parsed) == len(rows)
    seal = packed["rows"][-1]
    assert seal.kind == "manifest" and files[MANIFEST] == seal.payload.encode()
    verdict = next(e for e in reversed(packed["rows"]) if e.kind == "verdict")
    assert files[VERDICT] == verdict.payload.encode()
    # The attestation is signed with the run's key and names the attached head (checked with cryptography).
    env = json.loads(files[ATTESTATION])
    (sig,) = env["signatures"]
    assert sig["keyid"] == packed["public_key"]
    body = base64.b64decode(env["payload"])
    pub = load_pem_private_key(packed["key"].read_bytes(), password=None).public_key()
    kind = env["payloadType"].encode()
    pub.verify(base64.b64decode(sig["sig"]), b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body))
    head = json.loads(body)["predicate"]["safetyEvaluation"]["ledger"]["head"]
    assert head == {"seq": seal.seq, "digest": seal.digest, "nRecords": len(rows)}


def test_tuned_model_and_manifest_digests_are_whole_on_one_line(packed):
    seal = packed["rows"][-1]
    text = pdftotext(packed["pack"])
    assert_digests_whole(text, {TUNED_DIGEST, seal.digest})
    assert "assure verify" in text and "records.jsonl" in text


def test_same_ledger_state_same_bytes_with_attachments(packed, tmp_path):
    """The pack's own records and attachments, rendered again a second or more later: the same bytes."""
    store, key = packed["store"], packed["key"]
    records = store.records(RUN_ID)[: len(packed["rows"])]
    attached = _attachments_at_render(packed)
    time.sleep(1.1)  # a clock date anywhere (attachments, XMP, ids) would now differ
    again = tmp_path / packed["pack"].name
    render_pack(records, "fca", again, redact_outputs=True, report=records[0].plan["report"], attachments=attached)
    assert again.read_bytes() == packed["pack"].read_bytes()
    assert key.exists()


def _attachments_at_render(packed):
    """pack_attachments as render_packs built them: on a copy of the ledger cut back to the rows of that time."""
    copy = packed["tmp"] / "at-render.db"
    _copy_db(packed["tmp"] / "e.db", copy)
    _delete_after(copy, packed["rows"][-1].seq)
    report = dict(make_records()[0].plan["report"])
    return pack_attachments(Store(f"sqlite:///{copy}"), RUN_ID, "fca", redact_outputs=True, report=report,
                            key_path=packed["key"])


def _copy_db(src, dst):
    """A consistent copy of a live SQLite ledger (its WAL included), as a backup tool would take it."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def _delete_after(db, seq):
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    con.execute("DELETE FROM ledger WHERE run_id = ? AND seq > ?", (RUN_ID, seq))
    con.commit()
    con.close()


def test_assure_verify_pack_pdf_intact_signed_and_trusted_key(packed):
    res = runner.invoke(app, ["verify", str(packed["pack"]), "--trusted-key", packed["public_key"], "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] and out["signed"] and out["public_key"] == packed["public_key"]
    assert out["pages_compared"] == len(PdfReader(str(packed["pack"])).pages) and out["findings"] == []
    assert out["records"] == len(packed["rows"]) and out["head"] == packed["rows"][-1].digest
    # Another trusted key: the same pack is a finding, without re-rendering to say so.
    other = public_key_b64(Ed25519PrivateKey.generate().public_key())
    report = verify_pack(packed["pack"], trusted_key=other, rerender=False)
    assert not report.ok and any("other than the trusted one" in f.message for f in report.findings)


def _swap_attachment(src, dst, name, data):
    """A copy of the pack with one embedded file's bytes replaced (what a forger with pypdf would do)."""
    writer = PdfWriter(clone_from=str(src))
    names = writer.root_object["/Names"]["/EmbeddedFiles"]["/Names"]
    spec = next(names[i + 1].get_object() for i in range(0, len(names), 2) if names[i] == name)
    stream = spec["/EF"]["/F"].get_object()
    stream.set_data(data)
    stream[NameObject("/Params")][NameObject("/Size")] = NumberObject(len(data))
    with open(dst, "wb") as fh:
        writer.write(fh)
    return dst


def _edit_metric(rows_bytes, *, rechain):
    """records.jsonl with the first metric's successes changed; ``rechain`` recomputes every digest after it
    (a forger without the key), which the seal's chain head and signature then give away."""
    rows = [json.loads(line) for line in rows_bytes.splitlines()]
    i = next(i for i, r in enumerate(rows) if r["kind"] == "metric")
    payload = json.loads(rows[i]["payload"])
    payload["successes"] += 1
    rows[i]["payload"] = canonical_json(payload).decode()
    if rechain:
        prev = rows[i]["prev_digest"]
        for r in rows[i:]:
            r["record_digest"] = PREFIX + sha256_hex(r["payload"].encode())
            r["prev_digest"] = prev
            r["digest"] = prev = chain_digest(r["run_id"], r["seq"], r["kind"], r["record_digest"], prev,
                                              r["created_at"])
    return b"".join(canonical_json(r) + b"\n" for r in rows)


def test_a_tampered_attachment_is_caught(packed, tmp_path):
    files = {n: d[0] for n, d in PdfReader(str(packed["pack"])).attachments.items()}
    naive = _swap_attachment(packed["pack"], tmp_path / "naive.pdf", RECORDS, _edit_metric(files[RECORDS],
                                                                                           rechain=False))
    res = runner.invoke(app, ["verify", str(naive)])
    assert res.exit_code == 1, res.output
    assert "record altered" in res.stdout and res.stdout.strip().splitlines()[-1].startswith("FAILED")
    clever = _swap_attachment(packed["pack"], tmp_path / "clever.pdf", RECORDS, _edit_metric(files[RECORDS],
                                                                                            rechain=True))
    report = verify_pack(clever, rerender=False)
    assert not report.ok
    assert any("chain head in the manifest" in f.message for f in report.findings)
    assert any(f.subject == ATTESTATION for f in report.findings)  # it names the genuine head
    forged_manifest = _swap_attachment(packed["pack"], tmp_path / "m.pdf", MANIFEST, b'{"kind":"manifest"}')
    assert any(f.subject == MANIFEST for f in verify_pack(forged_manifest, rerender=False).findings)


def test_a_pack_whose_figures_are_not_its_records_is_caught(packed, tmp_path):
    """Rendered from an altered ledger (one metric changed in memory) but carrying the genuine evidence:
    the re-rendering from the attachments names the first differing page and line."""
    records = packed["store"].records(RUN_ID)[: len(packed["rows"])]
    i = next(i for i, r in enumerate(records) if isinstance(r, MetricRecord) and r.stage == "tuned"
             and r.name == "refusal_rate" and r.category == "overall")
    m = records[i]
    records[i] = m.model_copy(update={"successes": m.n, "value": 1.0, "ci_low": 0.9, "ci_high": 1.0})
    forged = tmp_path / packed["pack"].name
    render_pack(records, "fca", forged, report=records[0].plan["report"], attachments=_attachments_at_render(packed))
    res = runner.invoke(app, ["verify", str(forged)])
    assert res.exit_code == 1, res.output
    assert re.search(r"page \d+: line \d+ prints .*; the attached records give", res.stdout), res.stdout


def test_a_pack_rendered_from_a_ledger_edited_in_place_is_caught(packed, tmp_path):
    db = tmp_path / "edited.db"
    _copy_db(packed["tmp"] / "e.db", db)
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER IF EXISTS ledger_no_update")
    seq, payload = con.execute("SELECT seq, payload FROM ledger WHERE kind = 'metric' ORDER BY seq LIMIT 1").fetchone()
    con.execute("UPDATE ledger SET payload = ? WHERE seq = ?", (payload.replace('"successes":', '"successes":1', 1),
                                                                 seq))
    con.commit()
    con.close()
    store = Store(f"sqlite:///{db}")
    pack = render_packs(store, RUN_ID, ["fca"], tmp_path / "packs", key_path=packed["key"])["fca"]
    report = verify_pack(pack)
    assert not report.ok and report.pages_compared == 0
    assert any(f.subject == f"attached record {seq} (metric)" and "record altered" in f.message
               for f in report.findings)


def test_not_a_pack_exits_2(packed, tmp_path):
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(b"%PDF-1.7\nnot really\n")
    res = runner.invoke(app, ["verify", str(plain)])
    assert res.exit_code == 2 and "not a readable PDF" in res.output


def test_against_finds_a_truncated_ledger(packed, tmp_path):
    """A copy of the ledger with its last rows deleted: the pack, the attestation it embeds and a minimal head
    statement each hold a later head; the untouched ledger passes against all three."""
    files = {n: d[0] for n, d in PdfReader(str(packed["pack"])).attachments.items()}
    attestation = tmp_path / "run.intoto.json"
    attestation.write_bytes(files[ATTESTATION])
    head = packed["rows"][-1]
    statement = tmp_path / "head.json"
    statement.write_text(json.dumps({"run_id": RUN_ID, "head": {"seq": head.seq, "digest": head.digest}}))
    signoff = tmp_path / "signoff.json"
    signoff.write_text(json.dumps({"statement": {"run_id": RUN_ID, "manifest_digest": head.digest}}))
    genuine = f"sqlite:///{packed['tmp'] / 'e.db'}"
    for held in (packed["pack"], attestation, statement, signoff):
        res = runner.invoke(app, ["verify", RUN_ID, "--db", genuine, "--no-files", "--against", str(held)])
        assert res.exit_code == 0, (held, res.output)
    cut = tmp_path / "cut.db"
    _copy_db(packed["tmp"] / "e.db", cut)
    _delete_after(cut, head.seq - 3)  # the seal and the two rows before it are gone
    for held in (packed["pack"], attestation, statement, signoff):
        res = runner.invoke(app, ["verify", RUN_ID, "--db", f"sqlite:///{cut}", "--no-files", "--against", str(held)])
        assert res.exit_code == 1, (held, res.output)
        assert f"--against {held.name}" in res.stdout
    res = runner.invoke(app, ["verify", RUN_ID, "--db", f"sqlite:///{cut}", "--no-files", "--against",
                              str(packed["pack"])])
    assert f"holds rows {head.seq - 2}..{head.seq} that the ledger lacks" in res.stdout


def test_against_a_file_with_no_head_exits_2(packed, tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    genuine = f"sqlite:///{packed['tmp'] / 'e.db'}"
    res = runner.invoke(app, ["verify", RUN_ID, "--db", genuine, "--no-files", "--against", str(junk)])
    assert res.exit_code == 2 and "holds no run id with a ledger head" in res.output


def test_a_later_pack_carries_the_rows_after_the_seal_and_still_re_renders(packed, tmp_path):
    """The second pack of a run is rendered from a ledger that holds the first pack's record after the seal
    (and prints it): it attaches that row too, so its pages still match a rendering from its attachments."""
    db = _copy_db(packed["tmp"] / "e.db", tmp_path / "later.db")
    store = Store(f"sqlite:///{db}")
    before = store.entries(RUN_ID)
    pack = render_packs(store, RUN_ID, ["nhs"], tmp_path / "packs", key_path=packed["key"])["nhs"]
    report = verify_pack(pack)
    assert report.ok, [f.line() for f in report.findings]
    assert report.n_records == len(before) and report.signed and report.pages_compared > 0
    rows = attached_rows(PdfReader(str(pack)).attachments[RECORDS][0])
    assert [r.digest for r in rows] == [e.digest for e in before]
    assert "pack" in [r.kind for r in rows[packed["rows"][-1].seq + 1:]]  # the fca pack's row, after the seal
    # Built without the run's key, the attestation is an envelope with no signatures, and says so.
    unsigned = {a.name: a for a in pack_attachments(store, RUN_ID, "nhs", redact_outputs=True, report={})}
    assert json.loads(unsigned[ATTESTATION].data)["signatures"] == []
    assert "UNSIGNED" in unsigned[ATTESTATION].description
