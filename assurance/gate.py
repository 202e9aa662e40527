"""The release gate for pipelines: a verdict read back from the ledger, as an
exit code, JSON or JUnit XML (which most CI systems display natively).

The gate never trusts a run that was not sealed as complete: such a run is an
error, whatever its metrics say.

Approval (``policy.require_signoff``): a PASS verdict passes the gate only once every required role has
a valid signed approval (``approvals``); until then the gate exits 4, awaiting approval. A reject by a
required role fails the gate. An approval given over a FAIL verdict accepts the risk: the gate still
fails (the verdict stands) and shows the acceptance, because a gate that a signature could turn to PASS
would make the thresholds advisory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from .evidence.records import Check, MetricRecord, Record, RunStarted, SignoffRecord, VerdictRecord
from .evidence.roster import Roster
from .evidence.signoff import Row, is_risk_acceptance, key_fingerprint, role_matches, valid_signoffs
from .evidence.verify import PACKS_PENDING, incomplete_reason
from .plan import PolicySpec
from .policy import EXIT_AWAITING, EXIT_ERROR, EXIT_FAIL, EXIT_PASS, decide


def gate_verdict(records: list[Record], policy: PolicySpec | None = None, *,
                 require_packs: bool = True) -> tuple[VerdictRecord, int]:
    """The run's verdict, or the verdict of ``policy`` re-applied to its metrics, with its exit code.

    A run that is not complete by verify's rule (``incomplete_reason``) is an ERROR. ``require_packs=False``
    judges the evidence alone, for an attestation built between the two seals (the one a pack embeds:
    the pack it is in comes after it)."""
    why = incomplete_reason(records)
    if why == PACKS_PENDING and not require_packs:
        why = None
    if why is not None:
        return VerdictRecord(status="ERROR", checks=[], reasons=[why]), EXIT_ERROR
    if policy is None:
        verdict = next(r for r in reversed(records) if isinstance(r, VerdictRecord))
    else:
        verdict = decide(policy, [r for r in records if isinstance(r, MetricRecord)],
                         comparisons=records)
    code = {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL}.get(verdict.status, EXIT_ERROR)
    return verdict, code


@dataclass
class Approvals:
    """Where the run stands with the roles the policy requires to approve it."""

    required: list[str]
    """The policy's ``require_signoff`` roles."""
    approved: dict[str, list[SignoffRecord]] = field(default_factory=dict)
    """Required role -> its valid approvals (each signer's latest decision)."""
    rejected: list[SignoffRecord] = field(default_factory=list)
    """Valid rejects by a required role (each signer's latest decision)."""
    risk_accepted: list[SignoffRecord] = field(default_factory=list)
    """Valid approvals of a FAIL verdict, which accept its risk (never counted as approvals)."""

    @property
    def awaiting(self) -> list[str]:
        return [r for r in self.required if not self.approved.get(r)]


def required_roles(records: Sequence[Record], policy: PolicySpec | None) -> list[str]:
    """The roles that must approve: the re-applied policy's, else the run's recorded plan's (none on old plans)."""
    if policy is not None:
        return list(policy.require_signoff)
    start = next((r for r in records if isinstance(r, RunStarted)), None)
    roles = ((start.plan.get("policy") or {}).get("require_signoff") or []) if start else []
    return [str(r) for r in roles]


def approvals(rows: Sequence[tuple[Row, Record]], roles: list[str], roster: Roster | None = None) -> Approvals:
    """Each signer's latest valid sign-off (with ``roster``, only the roster's people in their roles)."""
    latest: dict[tuple[str | None, str], SignoffRecord] = {}
    for rec in valid_signoffs(rows, roster):
        latest[(rec.public_key, rec.role.casefold())] = rec
    out = Approvals(required=roles)
    for rec in latest.values():
        if is_risk_acceptance(rec):
            out.risk_accepted.append(rec)
        for role in (r for r in roles if role_matches(r, rec)):
            if rec.decision == "reject":
                out.rejected.append(rec)
            elif not is_risk_acceptance(rec):
                out.approved.setdefault(role, []).append(rec)
    return out


def gate_outcome(verdict: VerdictRecord, code: int, approval: Approvals) -> tuple[str, int, list[str]]:
    """The gate's word, exit code and reasons once approval is taken into account."""
    reasons = list(verdict.reasons)
    taken = [f"risk accepted by {s.name} ({s.role}, key {key_fingerprint(s.public_key)}): {s.accepted_risk}"
             for s in approval.risk_accepted]
    if code == EXIT_ERROR:
        return "ERROR", code, reasons
    if approval.rejected:
        return "FAIL", EXIT_FAIL, reasons + [f"rejected by {s.name} ({s.role})" + (f": {s.note}" if s.note else "")
                                             for s in approval.rejected] + taken
    if code == EXIT_FAIL:
        return "FAIL", code, reasons + [f"{t} (the FAIL verdict stands)" for t in taken]
    if approval.awaiting:
        return "AWAITING APPROVAL", EXIT_AWAITING, reasons + [f"awaiting approval by: {', '.join(approval.awaiting)}"]
    return verdict.status, code, reasons


def junit_xml(records: list[Record], verdict: VerdictRecord, approval: Approvals | None = None) -> str:
    """One JUnit test case per policy check.

    A check that counted as a fail is a failure with its reason; an inconclusive check that the decision
    rule counted as a pass is skipped, with a message saying so, so that CI shows it without failing."""
    start = next(r for r in records if isinstance(r, RunStarted))
    checks = verdict.checks or [Check(name="run", metric=None, subject="complete", observed=None, threshold=None,
                                      comparison=None, outcome="fail", reason="; ".join(verdict.reasons))]
    failures = sum(1 for c in checks if not c.passed)
    roles = approval.required if approval else []
    failures += sum(1 for r in roles if r in (approval.awaiting if approval else []) or _rejects(approval, r))
    skipped = sum(1 for c in checks if c.passed and c.outcome == "inconclusive")
    suite = ET.Element("testsuite", name=f"assurance gate {start.run_id}", tests=str(len(checks) + len(roles)),
                       failures=str(failures), errors="0", skipped=str(skipped))
    props = ET.SubElement(suite, "properties")
    rule = verdict.decision_rule or "point-estimate (recorded before decision rules)"
    for name, value in (("run_id", start.run_id), ("plan_digest", start.plan_digest), ("status", verdict.status),
                        ("decision_rule", rule)):
        ET.SubElement(props, "property", name=name, value=value)
    if approval is not None:
        ET.SubElement(props, "property", name="awaiting_roles", value=", ".join(approval.awaiting))
        for s in approval.risk_accepted:
            ET.SubElement(props, "property", name="risk_accepted",
                          value=f"{s.name} ({s.role}): {s.accepted_risk}")
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"assurance.{c.name}", name=c.subject)
        if not c.passed:
            ET.SubElement(case, "failure", message=_message(c, rule)).text = (
                f"observed={c.observed} {c.comparison or '?'} threshold={c.threshold}"
                + (f" interval=[{c.ci_low}, {c.ci_high}] ({c.interval_method})" if c.ci_low is not None else ""))
        elif c.outcome == "inconclusive":
            ET.SubElement(case, "skipped", message=_message(c, rule))
    for role in roles:
        assert approval is not None
        case = ET.SubElement(suite, "testcase", classname="assurance.signoff", name=role)
        rejects = _rejects(approval, role)
        if rejects:
            ET.SubElement(case, "failure", message=f"rejected by {rejects[0].name} ({rejects[0].role})")
        elif role in approval.awaiting:
            ET.SubElement(case, "failure", message=f"awaiting approval by {role}").text = (
                "no valid signed approval by this role yet (assure signoff --role ...)")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _message(c: Check, rule: str) -> str:
    """The JUnit message: the reason, or for an inconclusive check the interval, threshold and rule."""
    if c.outcome != "inconclusive" or c.ci_low is None or c.ci_high is None or c.threshold is None:
        return c.reason
    return (f"inconclusive: interval [{c.ci_low:.1%}, {c.ci_high:.1%}] straddles threshold {c.threshold:.1%}, "
            f"counted as {'pass' if c.passed else 'fail'} by rule {rule}")


def _rejects(approval: Approvals | None, role: str) -> list[SignoffRecord]:
    return [s for s in approval.rejected if role_matches(role, s)] if approval else []
