"""Records of a run's life: start, environment, artifacts, verdict, failure, seal, packs, sign-off."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from ...regimes import Regime
from .base import BaseRecord
from .check import Check, DecisionRule, LegacyCheck


class RunStarted(BaseRecord):
    """The first record of every run: what was asked for, by which tool."""

    kind: Literal["run_started"] = "run_started"
    run_id: str
    """Time-ordered run identifier (UUIDv7)."""
    plan: dict[str, Any]
    """The full validated plan, defaults filled in."""
    plan_digest: str
    """SHA-256 of the plan's canonical JSON."""
    plan_path: str | None = None
    """Where the plan was read from, if from a file."""
    tool_version: str
    """Version of the assurance package that made the run."""
    started_at: str
    """UTC time the run started, ISO 8601."""


class EnvironmentRecord(BaseRecord):
    """The software and hardware the run executed on."""

    kind: Literal["environment"] = "environment"
    python: str
    """Python version."""
    platform: str
    """Operating system and architecture."""
    packages: dict[str, str]
    """Versions of the packages that shape results (torch, transformers, peft, ...)."""
    device: str
    """Device the run used: ``cpu`` or ``cuda:N``."""
    accelerator: str
    """GPU name and CUDA version, or the CPU description."""
    dtype: str
    """Numeric type used for model weights during evaluation and training."""
    tool_version: str
    """Version of the assurance package."""
    git_commit: str | None = None
    """Commit of the assurance source tree, when it is a git checkout."""
    git_dirty: bool | None = None
    """True when the source tree had uncommitted changes."""


class ArtifactRecord(BaseRecord):
    """A file or folder the run read or wrote, with its digest."""

    kind: Literal["artifact"] = "artifact"
    role: str
    """What the artifact is to the run: ``base_model``, ``adapter``, ``tuned_model``,
    ``dataset:safety``, ``plan``, ``battery``, ``pack:fca`` and so on."""
    path: str
    """Absolute path at the time of the run; ``builtin:<name>`` for packaged data."""
    digest: str
    """``sha256:<hex>``; for a folder, the directory digest (see evidence/README.md)."""
    is_dir: bool
    """True when ``path`` is a folder."""
    size_bytes: int
    """Total size in bytes."""
    files: dict[str, str] = Field(default_factory=dict)
    """For a folder: relative path -> per-file SHA-256 hex, so a finding can name the file."""


class VerdictRecord(BaseRecord):
    """The release-gate decision and every reason for it."""

    kind: Literal["verdict"] = "verdict"
    schema_version: int = 2
    """Version of the record encoding: 2 since checks are typed; 1 (checks as plain mappings) still reads."""
    status: Literal["PASS", "FAIL", "ERROR"]
    """PASS only when every check passed on a complete run."""
    checks: list[Annotated[Check, BeforeValidator(Check.from_legacy, json_schema_input_type=Check | LegacyCheck)]]
    """Every check the policy applied, as recorded (a version-1 check is read into the same shape)."""
    reasons: list[str]
    """Human-readable reasons for every failed check (empty on PASS)."""
    decision_rule: DecisionRule | None = None
    """How inconclusive checks counted toward ``status`` (see ``DecisionRule``); None on verdicts written
    before decision rules, which compared point estimates."""


class RunFailed(BaseRecord):
    """A stage raised an error; the run is incomplete and cannot pass."""

    kind: Literal["run_failed"] = "run_failed"
    stage: str
    """The stage that failed."""
    error: str
    """The error message."""
    failed_at: str
    """UTC time of the failure."""


SealScope = Literal["evidence", "packs"]
"""What a seal closes: ``evidence`` every record up to the verdict (what the packs are rendered from),
``packs`` the packs rendered since, listed by digest."""


class ManifestRecord(BaseRecord):
    """A seal: chain head and every artifact digest. A run has an evidence seal after its verdict, then a packs
    seal after its packs (and another after each re-render); only sign-offs may follow the last seal."""

    kind: Literal["manifest"] = "manifest"
    complete: bool
    """True only when every stage finished; an incomplete run never reads as final."""
    chain_head: str
    """Chain digest of the record just before this one."""
    n_records: int
    """Records sealed (those before this one)."""
    artifacts: dict[str, str]
    """Artifact role -> digest, for every artifact of the run."""
    sealed_at: str
    """UTC time of sealing."""
    signature: str | None = None
    """Optional Ed25519 signature (base64) over the manifest's canonical JSON without this field."""
    public_key: str | None = None
    """Ed25519 public key (base64, raw 32 bytes) that made the signature."""
    scope: SealScope | None = None
    """``evidence`` or ``packs`` (see ``SealScope``); None on the single seal of runs sealed before packs were
    sealed, whose pack records follow it uncovered."""
    packs: dict[str, str] = Field(default_factory=dict)
    """Packs seal only: file name -> ``sha256:`` digest of every pack of the run rendered so far, all versions."""


class PackRecord(BaseRecord):
    """A rendered PDF pack; appended after the evidence seal, which it is made from, and covered by the packs
    seal that follows it."""

    kind: Literal["pack"] = "pack"
    regime: Regime
    """Which audience the pack is written for."""
    path: str
    """Where the PDF was written."""
    digest: str
    """``sha256:<hex>`` of the PDF file."""
    pages: int
    """Page count."""
    final: bool
    """False when the run was incomplete or failed: the pack is marked DRAFT."""
    rendered_at: str
    """UTC time of rendering."""


class SignoffRecord(BaseRecord):
    """A named person's decision on the run, appended after the seal."""

    kind: Literal["signoff"] = "signoff"
    name: str
    """Who signed."""
    role: str
    """Their role, e.g. SMF24 Chief Operations or Clinical Safety Officer."""
    decision: Literal["approve", "reject", "approve-with-conditions"]
    """The decision."""
    regime: Regime | None = None
    """The pack the decision is for, if one."""
    note: str = ""
    """Comments (before signed sign-offs, also the conditions and the accepted risk)."""
    signed_at: str
    """UTC time of the sign-off."""
    # Signed sign-offs (issue 10). Every field below defaults to None, so sign-offs recorded before
    # sign-offs were signed still parse, and their stored payloads (and digests) are as they were.
    statement_type: str | None = None
    """Version of the signed statement (``assure-signoff/v1``); None on an unsigned sign-off."""
    run_id: str | None = None
    """The run decided on, as signed."""
    manifest_digest: str | None = None
    """Chain digest of the run's latest seal (manifest row) before this sign-off, as signed."""
    pack_digest: str | None = None
    """``sha256:<hex>`` of the pack PDF decided on (its PackRecord's digest); None when the run had no pack."""
    conditions: str | None = None
    """The conditions of an ``approve-with-conditions`` decision."""
    accepted_risk: str | None = None
    """Why the signer accepts the risk of a FAIL verdict; the decision is then a risk acceptance, not an approval."""
    public_key: str | None = None
    """The signer's Ed25519 public key (base64, raw 32 bytes), as ``assure keygen`` prints it."""
    certificate_fingerprint: str | None = None
    """``sha256:<hex>`` of the signer's X.509 certificate (DER), when the signer signed with a certificate."""
    signature: str | None = None
    """Ed25519 signature (base64) over the statement's RFC 8785 canonical JSON (see evidence/signoff.py)."""
    signed_pack_path: str | None = None
    """The pack with this decision's PAdES signature added (an incremental update of the pack decided on)."""
    signed_pack_digest: str | None = None
    """``sha256:<hex>`` of the PAdES-signed pack file."""
