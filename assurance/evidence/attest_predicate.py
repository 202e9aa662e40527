"""The predicate of ``assure attest``: the in-toto test-result predicate, extended with the evaluation.

The predicate type is in-toto's ``https://in-toto.io/attestation/test-result/v0.1`` so that supply-chain
policy engines that know it (``result`` is ``PASSED``, ``failedTests`` is empty) read our verdict with no
plug-in. That predicate has no place for measured values, intervals, thresholds or the battery's identity,
so those travel in one extension field, ``safetyEvaluation``, as the in-toto parsing rules allow
(consumers ignore fields they do not know; ignoring it never turns a deny into an allow). Its JSON Schema is
published in ``evidence/schema/attestation-predicate.schema.json`` (``assure schema``).

Field names are lowerCamelCase, the in-toto convention; the verdict's checks are embedded exactly as the
ledger records them (snake_case, ``verdict.schema.json``), so they compare field by field with the ledger.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .records import Check, DecisionRule, Stage

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
EXTENSION_TYPE = "https://assurance.dev/attestation/safety-evaluation/v1"
"""Names the shape of the ``safetyEvaluation`` extension; bumped with any change that is not additive."""


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              alias_generator=to_camel, populate_by_name=True)


class ResourceDescriptor(_Camel):
    """An in-toto ResourceDescriptor (v1): something named and addressed by digest."""

    name: str
    """What the resource is (a file or folder name, or ``battery:<id>@<version>`` style identities)."""
    digest: dict[str, str]
    """Algorithm -> lowercase hex, e.g. ``{"sha256": "..."}``."""
    annotations: dict[str, str] | None = None
    """What the resource is to the run (``role``) and, for files, where it was (``path``)."""


class RunInfo(_Camel):
    """Which run was evaluated, and by which tool."""

    run_id: str
    """The run's id (UUIDv7)."""
    name: str
    """The plan's human name for the run."""
    plan_digest: str
    """``sha256:`` of the plan's canonical JSON, as the run_started record holds it."""
    started_at: str
    """UTC time the run started, ISO 8601."""
    tool_version: str
    """Version of assurance that made the run."""
    attested_by: str
    """Version of assurance that wrote this attestation."""


class LedgerHead(_Camel):
    """The run's last ledger row when the attestation was made: a later head held outside the database."""

    seq: int
    """Sequence number of the last row."""
    digest: str
    """Chain digest of that row."""
    n_records: int
    """Rows in the run's chain."""


class LedgerInfo(_Camel):
    """The run's seal: which manifest closed the evaluated records, and whether it was signed."""

    manifest_seq: int
    """Sequence number of the manifest record."""
    manifest_digest: str
    """``sha256:`` of the manifest record's canonical JSON (its address in the ledger)."""
    manifest_chain_digest: str
    """Chain digest of the manifest's ledger row."""
    chain_head: str
    """Chain digest of the last record the manifest seals."""
    n_sealed: int
    """Records the manifest seals."""
    complete: bool
    """True when the run was sealed as complete."""
    signed: bool
    """True when the manifest carries an Ed25519 signature."""
    public_key: str | None
    """The manifest's signing key (base64 raw Ed25519), when signed."""
    head: LedgerHead
    """The run's chain as the attestation saw it (packs and sign-offs may follow the manifest)."""


class BatteryInfo(_Camel):
    """The evaluation battery, by identity and digest."""

    id: str
    """The battery's id (``assurance-core``)."""
    version: str
    """The battery's version."""
    digest: str
    """``sha256:`` over all its items, in order."""
    n_items: int
    """Items evaluated."""
    suites: dict[str, str]
    """Suite name -> suite digest (name, version, scorer, solver settings and items)."""


class JudgeInfo(_Camel):
    """A judge or scorer that turned outputs into the figures, by identity and digest."""

    id: str
    """The judge's id."""
    version: str
    """The judge's version."""
    digest: str
    """``sha256:`` of the judge's configuration (no secrets)."""
    suite: str | None = None
    """The suite it scored; None for the primary refusal judge, which scores every refusal verdict."""
    role: str
    """``primary`` (its verdicts give the gated scores), ``secondary``, ``over-refusal`` or ``scorer``."""


class AttestedMetric(_Camel):
    """One greedy-pass rate with its 95% interval, as the metric record holds it."""

    stage: Stage
    """Which model: ``base``, ``tuned`` or ``stress``."""
    suite: str
    """The battery suite."""
    name: str
    """The rate (``refusal_rate``, ``over_refusal_rate``, ``attack_success_rate``...)."""
    category: str
    """Item category, or ``overall``."""
    variant: str | None = None
    """Attack variant (``prefill-k10``, ``jailbreak:roleplay``); None for plain items or all variants."""
    value: float
    """successes / n."""
    successes: int
    """Items that met the metric's event."""
    n: int
    """Items counted."""
    ci_low: float
    """Lower end of the 95% interval."""
    ci_high: float
    """Upper end of the 95% interval."""
    interval_method: str
    """``wilson`` or ``cluster-wilson`` (see metric.schema.json)."""


class VerdictInfo(_Camel):
    """The release-gate decision, as ``assure gate`` reads it from the ledger."""

    status: Literal["PASS", "FAIL", "ERROR"]
    """PASS only when every check passed on a run sealed as complete; ERROR for an incomplete run."""
    decision_rule: DecisionRule | None
    """How inconclusive checks counted; None on verdicts written before decision rules."""
    reasons: list[str]
    """Why the run did not pass (empty on PASS)."""
    checks: list[Check]
    """Every policy check exactly as the verdict record holds it (snake_case fields, see verdict.schema.json)."""


class SafetyEvaluation(_Camel):
    """The extension: what was measured, how, against which thresholds, with which outcome."""

    type: str = EXTENSION_TYPE
    """The extension's schema, ``https://assurance.dev/attestation/safety-evaluation/v1``."""
    run: RunInfo
    """The evaluated run."""
    ledger: LedgerInfo
    """Where the evidence is: the sealing manifest and the chain head."""
    base_model: ResourceDescriptor | None
    """The model the run started from (an input, so not a subject); None when not recorded."""
    battery: BatteryInfo
    """The evaluation battery."""
    judges: list[JudgeInfo]
    """The primary refusal judge first, then every other judge and scorer."""
    policy: dict[str, Any]
    """The thresholds: the plan's ``policy`` section as the run recorded it."""
    metrics: list[AttestedMetric]
    """Every greedy-pass metric of every stage, suite, category and variant, in ledger order (sampled
    passes and across-seed summaries stay in the ledger)."""
    verdict: VerdictInfo
    """The decision and its checks."""


class TestResultPredicate(_Camel):
    """in-toto test-result v0.1, one test per policy check, extended with ``safetyEvaluation``."""

    __test__ = False  # pytest: not a test class, whatever its name

    result: Literal["PASSED", "WARNED", "FAILED"]
    """``PASSED``: verdict PASS with every check passed outright; ``WARNED``: verdict PASS with an inconclusive
    check counted as a pass; ``FAILED``: verdict FAIL or ERROR."""
    configuration: list[ResourceDescriptor]
    """What the evaluation was configured by: the plan, the battery, its suites and the judges."""
    passed_tests: list[str] = Field(default_factory=list)
    """Checks that passed outright, named ``<rule>[<subject>]``."""
    warned_tests: list[str] = Field(default_factory=list)
    """Inconclusive checks the decision rule counted as a pass."""
    failed_tests: list[str] = Field(default_factory=list)
    """Checks that counted as a fail (with an ERROR verdict and no checks: ``run[complete]``)."""
    safety_evaluation: SafetyEvaluation
    """The extension with the figures (schema ``EXTENSION_TYPE``)."""
