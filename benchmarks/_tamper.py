"""The tamper campaign's parts: one real sealed run on disk, an attacker's edits, and the verdict.

A run is built once per variant (Ed25519-signed, unsigned) into ``live-<variant>/`` with a real SQLite
``Store``, real artifact files and folders, a PDF pack and sign-offs, then copied to
``pristine-<variant>/``. Every mutation starts from a fresh copy of that folder (``live-`` is
replaced by ``pristine-``, so the absolute paths the records hold stay right), edits it as someone
with file access would (the append-only triggers dropped with ``sqlite3``), and runs ``verify_run``.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfWriter

from assurance.evidence.hashing import PREFIX, canonical_json, file_digest, sha256_hex, tree_digest
from assurance.evidence.records import ArtifactRecord, ManifestRecord, PackRecord, SignoffRecord
from assurance.evidence.roster import Roster, Signer
from assurance.evidence.seal import generate_key, load_private_key, public_key_b64, seal_run, signing_payload
from assurance.evidence.signoff import sign
from assurance.evidence.store import Store, chain_digest, parse_payload, utc_now
from assurance.evidence.verify import VerifyReport, verify_run

VARIANTS = ("signed", "unsigned")


@dataclass
class Fixture:
    """One sealed run and where its pristine copy lies."""

    variant: str
    live: Path
    pristine: Path
    run_id: str
    trusted_key: str | None
    """The signer's public key (base64) when the run is signed."""
    roster: Roster
    """The signer roster that names the two people who signed off, with their keys."""

    @property
    def db(self) -> Path:
        return self.live / "evidence.db"

    def reset(self) -> None:
        """A fresh copy of the sealed run at ``live``."""
        shutil.rmtree(self.live, ignore_errors=True)
        shutil.copytree(self.pristine, self.live)

    def fingerprint(self) -> str:
        """A digest of the live copy's ledger rows and files, to prove that an edit changed something."""
        conn = sqlite3.connect(self.db)
        rows = conn.execute("SELECT run_id, seq, kind, payload, record_digest, prev_digest, digest, created_at "
                            "FROM ledger ORDER BY id").fetchall()
        conn.close()
        files = {str(p.relative_to(self.live)): file_digest(p) for p in sorted(self.live.rglob("*"))
                 if p.is_file() and p.name != "evidence.db"}
        return sha256_hex(canonical_json({"rows": [list(r) for r in rows], "files": files}))

    def verify(self, *, trusted: bool = True, roster: bool = False, require_signed: bool = False) -> VerifyReport:
        """``verify_run`` (with the trusted key unless ``trusted`` is False, ``require_signed`` as
        ``assure verify --require-signed``, and the fixture's roster when ``roster``, as ``--signers``)."""
        store = Store(f"sqlite:///{self.db}", create=False)
        try:
            return verify_run(store, self.run_id, trusted_key=self.trusted_key if trusted else None,
                              require_signed=require_signed, roster=self.roster if roster else None)
        finally:
            store.engine.dispose()


def _write_artifacts(live: Path) -> list[ArtifactRecord]:
    """Small real inputs and outputs: two folders and two files, recorded as the pipeline records them."""
    base = live / "base_model"
    base.mkdir(parents=True)
    (base / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    (base / "model.safetensors").write_bytes(bytes(range(256)) * 16)
    (base / "tokenizer.json").write_text('{"vocab": {"a": 0, "b": 1}}')
    adapter = live / "adapter"
    (adapter / "sub").mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8, "target_modules": ["q_proj", "v_proj"]}')
    (adapter / "adapter_model.safetensors").write_bytes(bytes(reversed(range(256))) * 8)
    (adapter / "sub" / "notes.txt").write_text("trained on builtin:safety")
    (live / "safety.jsonl").write_text('{"prompt": "p", "response": "r"}\n' * 20)
    (live / "plan.yaml").write_text("name: tamper-campaign\nseed: 0\n")
    out = []
    for role, path in (("base_model", base), ("adapter", adapter), ("dataset:safety", live / "safety.jsonl"),
                       ("plan", live / "plan.yaml")):
        td = tree_digest(path)
        out.append(ArtifactRecord(role=role, path=str(path), digest=td.digest, is_dir=td.is_dir,
                                  size_bytes=td.size_bytes, files=td.files))
    return out


def build_fixture(work: Path, variant: str) -> Fixture:
    """Append a report-test run (its records, with real artifacts) into a real ledger, seal its evidence (signed
    with a key made as ``assure keygen`` makes one, or not), append a pack, seal the packs, then append two
    sign-offs."""
    from _report_records import RUN_ID, make_records  # tests/ is on sys.path (see tamper_campaign.py)

    live, pristine = work / f"live-{variant}", work / f"pristine-{variant}"
    artifacts = _write_artifacts(live)
    records = [r for r in make_records(manifest=False)
               if not isinstance(r, SignoffRecord | ArtifactRecord)]
    records[2:2] = artifacts  # after run_started and environment, as a run records them
    store = Store(f"sqlite:///{live / 'evidence.db'}")
    store.append(RUN_ID, records)
    key_path = work / f"{variant}.pem" if variant == "signed" else None
    trusted = generate_key(key_path) if key_path else None
    seal_run(store, RUN_ID, complete=True, key_path=key_path, scope="evidence")
    pdf = live / "packs" / "fca.pdf"
    pdf.parent.mkdir()
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "Assurance pack"})
    with open(pdf, "wb") as f:
        writer.write(f)
    pack = PackRecord(regime="fca", path=str(pdf), digest=file_digest(pdf), pages=1, final=True,
                      rendered_at=utc_now())
    store.append(RUN_ID, [pack])
    seal_run(store, RUN_ID, complete=True, key_path=key_path, scope="packs")
    # Two signed sign-offs, each by its own key, as `assure signoff --key` writes them (the PAdES-signed
    # pack is left out: the pack files the campaign edits are the ledger's).
    signers = {"R. Officer": load_private_key(_keyfile(work, "cro")),
               "Jane Doe": load_private_key(_keyfile(work, "smf24"))}
    store.append(RUN_ID, [signoff_statement(store, RUN_ID, signers["R. Officer"], name="R. Officer",
                                            role="Chief Risk Officer", decision="reject",
                                            note="Cybercrime refusal below the minimum.")])
    store.append(RUN_ID, [signoff_statement(store, RUN_ID, signers["Jane Doe"], name="Jane Doe",
                                            role="SMF24 Chief Operations", decision="approve-with-conditions",
                                            conditions="Re-run after cybercrime data is extended.")])
    store.engine.dispose()
    shutil.copytree(live, pristine)
    roster = Roster(signers=[Signer(name="R. Officer", role="Chief Risk Officer",
                                    public_key=public_key_b64(signers["R. Officer"].public_key())),
                             Signer(name="Jane Doe", role="SMF24 Chief Operations",
                                    public_key=public_key_b64(signers["Jane Doe"].public_key()))],
                    source="signers.yaml")
    return Fixture(variant, live, pristine, RUN_ID, trusted, roster)


def _keyfile(work: Path, name: str) -> Path:
    path = work / f"{name}.pem"
    if not path.exists():
        generate_key(path)
    return path


def signoff_statement(store: Store, run_id: str, key, *, name: str, role: str, decision: str,
                      note: str = "", conditions: str | None = None) -> SignoffRecord:
    """A sign-off signed by ``key`` naming the run's latest seal and its fca pack, as ``assure signoff`` makes it."""
    entries = store.entries(run_id)
    seal = next(e for e in reversed(entries) if e.kind == "manifest")
    pack = next(parse_payload(e.payload) for e in reversed(entries) if e.kind == "pack")
    assert isinstance(pack, PackRecord)
    return sign(SignoffRecord(name=name, role=role, decision=decision, regime="fca", note=note, signed_at=utc_now(),
                              run_id=run_id, manifest_digest=seal.digest, pack_digest=pack.digest,
                              conditions=conditions), key)


# -- the attacker's tools: raw rows of the copied SQLite file --------------------------------------

class Ledger:
    """The run's rows, read and rewritten with plain sqlite3 after dropping the append-only triggers."""

    COLS = ("id", "seq", "kind", "payload", "record_digest", "prev_digest", "digest", "created_at")

    def __init__(self, fx: Fixture):
        self.fx = fx
        self.conn = sqlite3.connect(fx.db)
        self.conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
        self.conn.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
        cur = self.conn.execute(f"SELECT {', '.join(self.COLS)} FROM ledger WHERE run_id = ? ORDER BY seq",
                                (fx.run_id,))
        self.rows = [dict(zip(self.COLS, r, strict=True)) for r in cur]

    @property
    def manifest_index(self) -> int:
        """The first seal: the evidence seal."""
        return next(i for i, r in enumerate(self.rows) if r["kind"] == "manifest")

    def indices(self, kind: str) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r["kind"] == kind]

    def save(self, i: int) -> None:
        r = self.rows[i]
        self.conn.execute("UPDATE ledger SET seq=?, kind=?, payload=?, record_digest=?, prev_digest=?, digest=? "
                          "WHERE id=?", (r["seq"], r["kind"], r["payload"], r["record_digest"], r["prev_digest"],
                                         r["digest"], r["id"]))

    def delete(self, i: int) -> None:
        self.conn.execute("DELETE FROM ledger WHERE id=?", (self.rows.pop(i)["id"],))

    def set_payload(self, i: int, obj: dict) -> None:
        self.rows[i]["payload"] = canonical_json(obj).decode("utf-8")

    def edit(self, i: int, change: Callable[[dict], dict]) -> None:
        """Row ``i``'s record replaced by ``change`` of it (as JSON), in canonical form; not yet saved."""
        self.set_payload(i, change(json.loads(self.rows[i]["payload"])))

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rechain(self, start: int) -> None:
        """A clever attacker: record digests and every chain digest from ``start`` recomputed as ``store.py``
        computes them, and the manifest's ``chain_head`` moved onto the new chain (its signature, if any, is
        left as it was: the attacker holds no key)."""
        for i in range(start, len(self.rows)):
            r = self.rows[i]
            prev = self.rows[i - 1]["digest"] if i else PREFIX + "0" * 64
            if r["kind"] == "manifest" and i:
                obj = json.loads(r["payload"])
                obj["chain_head"] = prev
                self.set_payload(i, obj)
            r["record_digest"] = PREFIX + sha256_hex(r["payload"].encode("utf-8"))
            r["prev_digest"] = prev
            r["digest"] = chain_digest(self.fx.run_id, r["seq"], r["kind"], r["record_digest"], prev, r["created_at"])
            self.save(i)

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()


def numeric_paths(obj, path=()) -> list[tuple]:
    """Paths to every number (not bool) inside a JSON value."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, int | float):
        return [path]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    return [p for k, v in items for p in numeric_paths(v, (*path, k))]


def change_number(rng: random.Random, payload: str) -> dict | None:
    """The record with one number changed so that it still parses as a valid record; None if none can be."""
    obj = json.loads(payload)
    paths = numeric_paths(obj)
    for _ in range(20):
        if not paths:
            return None
        path = rng.choice(paths)
        if path == ("schema_version",):
            continue
        new = json.loads(payload)
        parent = new
        for k in path[:-1]:
            parent = parent[k]
        old = parent[path[-1]]
        parent[path[-1]] = old + rng.choice([1, 2, 3, 7]) if isinstance(old, int) else round(old * 0.9 + 0.013, 6)
        if parent[path[-1]] == old:  # a fixed point (e.g. 0.13) is no edit
            continue
        try:
            parse_payload(json.dumps(new))
        except ValueError:
            continue
        return new
    return None


def flip_file_byte(rng: random.Random, path: Path) -> None:
    data = bytearray(path.read_bytes())
    i = rng.randrange(len(data))
    data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def artifact_files(fx: Fixture) -> list[Path]:
    return sorted(p for p in fx.live.rglob("*") if p.is_file() and p.suffix not in (".db", ".pdf"))


def resign(fx: Fixture, led: Ledger, key_path: Path) -> None:
    """Every seal re-signed with the attacker's own key (after ``rechain`` moved its chain head), each in turn
    since re-signing one moves the chain head of the next."""
    key = load_private_key(key_path)
    for i in led.indices("manifest"):
        m = ManifestRecord.model_validate_json(led.rows[i]["payload"])
        sig = base64.b64encode(key.sign(signing_payload(m))).decode()
        led.edit(i, lambda o, sig=sig: {**o, "signature": sig, "public_key": public_key_b64(key.public_key())})
        led.rechain(i)


Mutation = Callable[[random.Random, Fixture, Path], bool]
"""Edits the fresh copy; returns False when it found nothing to edit (not counted)."""
