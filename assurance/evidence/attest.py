"""``assure attest``: a run's results as a signed in-toto Statement v1 in a DSSE envelope.

Subjects are what a release ships and an auditor keeps: the tuned model or adapter folder (its
model-signing-compatible directory digest, as the ledger records it) and the rendered packs. The
predicate (``attest_predicate.py``) says how they were evaluated and what was decided.

The statement is built from the ledger alone and serialised as RFC 8785 canonical JSON, and Ed25519
signatures are deterministic, so the same ledger state and key give the same envelope, byte for byte (a
pack can embed it and still re-render identically). ``assure attest`` always signs: an unsigned statement
would be an unauthenticated copy of what ``assure show --json`` prints. Only a pack of an unsigned run
embeds one unsigned (``envelope(statement, None)``), beside the chain it summarises.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .. import __version__
from ..battery.metrics import is_greedy
from ..gate import gate_verdict
from .attest_predicate import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    AttestedMetric,
    BatteryInfo,
    JudgeInfo,
    LedgerHead,
    LedgerInfo,
    ResourceDescriptor,
    RunInfo,
    SafetyEvaluation,
    TestResultPredicate,
    VerdictInfo,
)
from .hashing import PREFIX, canonical_json
from .records import (
    ArtifactRecord,
    BatteryRecord,
    Check,
    ManifestRecord,
    MetricRecord,
    PackRecord,
    RunStarted,
    VerdictRecord,
)
from .seal import load_private_key, public_key_b64
from .store import LedgerEntry, Store, parse_payload
from .verify import verify_run

MODEL_ROLES = ("adapter", "tuned_model")
"""Artifact roles of the model a run releases: a LoRA adapter, or a fully fine-tuned model folder."""

_READ_KINDS = ("run_started", "artifact", "battery", "metric", "verdict", "manifest", "pack")


class AttestError(RuntimeError):
    """The run cannot be attested as asked; ``exit_code`` is what the CLI exits with."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def load_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key (unencrypted PEM, as ``assure keygen`` writes) or one clear AttestError."""
    try:
        return load_private_key(path)
    except OSError as err:
        raise AttestError(f"--key {path}: cannot read it ({err.strerror or err})") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise AttestError(f"--key {path}: not an unencrypted Ed25519 private key in PEM (as `assure keygen` writes)"
                          ) from None


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: what is signed, so the payload type is authenticated too."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def envelope(statement: dict, key: Ed25519PrivateKey | None) -> dict:
    """The DSSE JSON envelope of ``statement``, signed with ``key``; ``keyid`` is the signer's public key in
    base64, as ``assure keygen`` prints it and the manifest records it. ``key=None`` (only for the attestation
    a pack of an unsigned run embeds) gives an envelope whose empty ``signatures`` says it authenticates
    nothing: the pack's attached chain and manifest are what can be checked."""
    body = canonical_json(statement)
    signatures = [] if key is None else [{"keyid": public_key_b64(key.public_key()),
                                          "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, body))).decode("ascii")}]
    return {"payload": base64.b64encode(body).decode("ascii"), "payloadType": PAYLOAD_TYPE, "signatures": signatures}


def attest_run(store: Store, run_id: str, key: Ed25519PrivateKey, *, packs: bool = True) -> dict:
    """The signed envelope of a sealed run whose ledger verifies; AttestError otherwise. ``packs=False``
    leaves the packs out of the subjects, for an attestation that a pack itself embeds."""
    report = verify_run(store, run_id, check_files=False)
    if not report.sealed:
        raise AttestError(f"run {run_id}: never sealed; there is no verdict to attest (resume it first)")
    if not report.ok:
        n = sum(1 for f in report.findings if f.severity == "error")
        raise AttestError(f"run {run_id}: the ledger does not verify ({n} findings; see `assure verify {run_id}`); "
                          "not attested", exit_code=1)
    statement = build_statement(store, run_id, packs=packs)
    signer = public_key_b64(key.public_key())
    sealed_by = statement["predicate"]["safetyEvaluation"]["ledger"]["publicKey"]
    if sealed_by is not None and sealed_by != signer:
        raise AttestError(f"run {run_id}: its manifest was signed by key {sealed_by}, not by this --key "
                          f"({signer}); attest with the run's own key")
    return envelope(statement, key)


def build_statement(store: Store, run_id: str, *, packs: bool = True) -> dict:
    """The in-toto Statement v1 of a sealed run, as JSON-ready data (the envelope's payload)."""
    return statement_of(run_id, store.entries(run_id), packs=packs)


def statement_of(run_id: str, entries: list[LedgerEntry], *, packs: bool = True) -> dict:
    """``build_statement`` over ledger rows already read (a pack builds its attachments from one read)."""
    manifest_row = next((e for e in reversed(entries) if e.kind == "manifest"), None)
    if manifest_row is None:
        raise AttestError(f"run {run_id}: never sealed; there is no verdict to attest (resume it first)")
    manifest = parse_payload(manifest_row.payload)
    assert isinstance(manifest, ManifestRecord), "a manifest row holds a manifest record"
    records = [parse_payload(e.payload) for e in entries if e.kind in _READ_KINDS]
    started = next(r for r in records if isinstance(r, RunStarted))
    subjects = _subjects(records, packs=packs)
    if not subjects:
        raise AttestError(f"run {run_id}: no tuned model, adapter or pack recorded; nothing to attest")
    battery = next((r for r in records if isinstance(r, BatteryRecord)), None)
    if battery is None:
        raise AttestError(f"run {run_id}: no battery record; the run never evaluated anything")
    if manifest.complete and not any(isinstance(r, VerdictRecord) for r in records):
        raise AttestError(f"run {run_id}: sealed as complete but holds no verdict record")
    verdict, _ = gate_verdict(records, require_packs=False)  # the evidence's verdict: packs follow it
    base = next((r for r in records if isinstance(r, ArtifactRecord) and r.role == "base_model"), None)
    head = entries[-1]
    evaluation = SafetyEvaluation(
        run=RunInfo(run_id=run_id, name=str(started.plan.get("name", "")), plan_digest=started.plan_digest,
                    started_at=started.started_at, tool_version=started.tool_version, attested_by=__version__),
        ledger=LedgerInfo(
            manifest_seq=manifest_row.seq, manifest_digest=manifest_row.record_digest,
            manifest_chain_digest=manifest_row.digest, chain_head=manifest.chain_head, n_sealed=manifest.n_records,
            complete=manifest.complete, signed=manifest.signature is not None, public_key=manifest.public_key,
            head=LedgerHead(seq=head.seq, digest=head.digest, n_records=len(entries))),
        base_model=_descriptor(base) if base is not None else None,
        battery=BatteryInfo(id=battery.battery_id, version=battery.version, digest=battery.digest,
                            n_items=battery.n_items, suites=dict(battery.suite_digests)),
        judges=_judges(battery),
        policy=dict(started.plan.get("policy") or {}),
        metrics=[_metric(m) for m in records if isinstance(m, MetricRecord) and is_greedy(m)],
        verdict=VerdictInfo(status=verdict.status, decision_rule=verdict.decision_rule,
                            reasons=list(verdict.reasons), checks=list(verdict.checks)),
    )
    predicate = TestResultPredicate(
        result=_result(verdict.status, verdict.checks), configuration=_configuration(started, battery),
        passed_tests=[_test_name(c) for c in verdict.checks if c.passed and c.outcome != "inconclusive"],
        warned_tests=[_test_name(c) for c in verdict.checks if c.passed and c.outcome == "inconclusive"],
        failed_tests=[_test_name(c) for c in verdict.checks if not c.passed]
        or (["run[complete]"] if verdict.status == "ERROR" else []),
        safety_evaluation=evaluation,
    )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in subjects],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate.model_dump(mode="json", by_alias=True),
    }


def write_envelope(env: dict, out: Path | None) -> str:
    """The envelope as indented JSON (to ``out`` when given); the envelope's own bytes are not signed, only
    its payload, so the layout is free."""
    text = json.dumps(env, indent=2, sort_keys=True) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return text


def _hex(digest: str) -> dict[str, str]:
    # The ledger writes ``sha256:<hex>``; in-toto digest sets are {"sha256": "<hex>"}.
    if not digest.startswith(PREFIX):
        raise AttestError(f"digest {digest!r} is not sha256:<hex>")
    return {"sha256": digest.removeprefix(PREFIX)}


def _descriptor(art: ArtifactRecord) -> ResourceDescriptor:
    # model-signing names a model's subject after its folder: do the same, so the two agree.
    name = art.path if art.path.startswith("builtin:") else Path(art.path).name
    return ResourceDescriptor(name=name, digest=_hex(art.digest), annotations={"role": art.role, "path": art.path})


def _subjects(records: list, *, packs: bool) -> list[ResourceDescriptor]:
    models = [r for r in records if isinstance(r, ArtifactRecord) and r.role in MODEL_ROLES]
    out = [_descriptor(models[-1])] if models else []
    # A re-render to the same path replaces the file, so only the latest record of a path can match it.
    latest: dict[str, PackRecord] = {}
    for r in records if packs else ():
        if isinstance(r, PackRecord):
            latest[r.path] = r
    for p in latest.values():
        out.append(ResourceDescriptor(name=Path(p.path).name, digest=_hex(p.digest),
                                      annotations={"role": f"pack:{p.regime}", "path": p.path}))
    return out


def _judges(battery: BatteryRecord) -> list[JudgeInfo]:
    out = [JudgeInfo(id=battery.judge_id, version=battery.judge_version, digest=battery.judge_digest,
                     role="primary")]
    for j in battery.judges:
        out.append(JudgeInfo(id=str(j["id"]), version=str(j["version"]), digest=str(j["digest"]),
                             suite=j.get("suite"), role=str(j.get("role") or "scorer")))
    return out


def _configuration(started: RunStarted, battery: BatteryRecord) -> list[ResourceDescriptor]:
    plan_name = Path(started.plan_path).name if started.plan_path else "plan"
    out = [ResourceDescriptor(name=plan_name, digest=_hex(started.plan_digest), annotations={"role": "plan"}),
           ResourceDescriptor(name=f"battery:{battery.battery_id}@{battery.version}", digest=_hex(battery.digest),
                              annotations={"role": "battery"})]
    out += [ResourceDescriptor(name=f"suite:{s}", digest=_hex(d), annotations={"role": "suite"})
            for s, d in battery.suite_digests.items()]
    out += [ResourceDescriptor(name=f"judge:{j.id}@{j.version}", digest=_hex(j.digest),
                               annotations={"role": f"judge:{j.role}"}) for j in _judges(battery)]
    return out


def _metric(m: MetricRecord) -> AttestedMetric:
    return AttestedMetric(stage=m.stage, suite=m.suite, name=m.name, category=m.category, variant=m.variant,
                          value=m.value, successes=m.successes, n=m.n, ci_low=m.ci_low, ci_high=m.ci_high,
                          interval_method=m.interval_method)


def _test_name(c: Check) -> str:
    return f"{c.name}[{c.subject}]"


def _result(status: str, checks: list[Check]) -> Literal["PASSED", "WARNED", "FAILED"]:
    if status != "PASS":
        return "FAILED"
    return "WARNED" if any(c.outcome == "inconclusive" for c in checks) else "PASSED"
