"""The release gate for pipelines: a verdict read back from the ledger, as an
exit code, JSON or JUnit XML (which most CI systems display natively).

The gate never trusts a run that was not sealed as complete: such a run is an
error, whatever its metrics say.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from .evidence.records import Check, ManifestRecord, MetricRecord, Record, RunStarted, VerdictRecord
from .plan import PolicySpec
from .policy import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, decide


def gate_verdict(records: list[Record], policy: PolicySpec | None = None) -> tuple[VerdictRecord, int]:
    """The run's verdict, or the verdict of ``policy`` re-applied to its metrics, with its exit code."""
    manifests = [r for r in records if isinstance(r, ManifestRecord)]
    if not manifests or not manifests[-1].complete:
        why = "the run was never sealed" if not manifests else "the run was sealed as incomplete"
        return VerdictRecord(status="ERROR", checks=[], reasons=[why]), EXIT_ERROR
    if policy is None:
        verdict = next(r for r in reversed(records) if isinstance(r, VerdictRecord))
    else:
        verdict = decide(policy, [r for r in records if isinstance(r, MetricRecord)],
                         comparisons=records)
    code = {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL}.get(verdict.status, EXIT_ERROR)
    return verdict, code


def junit_xml(records: list[Record], verdict: VerdictRecord) -> str:
    """One JUnit test case per policy check.

    A check that counted as a fail is a failure with its reason; an inconclusive check that the decision
    rule counted as a pass is skipped, with a message saying so, so that CI shows it without failing."""
    start = next(r for r in records if isinstance(r, RunStarted))
    checks = verdict.checks or [Check(name="run", metric=None, subject="complete", observed=None, threshold=None,
                                      comparison=None, outcome="fail", reason="; ".join(verdict.reasons))]
    failures = sum(1 for c in checks if not c.passed)
    skipped = sum(1 for c in checks if c.passed and c.outcome == "inconclusive")
    suite = ET.Element("testsuite", name=f"assurance gate {start.run_id}", tests=str(len(checks)),
                       failures=str(failures), errors="0", skipped=str(skipped))
    props = ET.SubElement(suite, "properties")
    rule = verdict.decision_rule or "point-estimate (recorded before decision rules)"
    for name, value in (("run_id", start.run_id), ("plan_digest", start.plan_digest), ("status", verdict.status),
                        ("decision_rule", rule)):
        ET.SubElement(props, "property", name=name, value=value)
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"assurance.{c.name}", name=c.subject)
        if not c.passed:
            ET.SubElement(case, "failure", message=_message(c, rule)).text = (
                f"observed={c.observed} {c.comparison or '?'} threshold={c.threshold}"
                + (f" interval=[{c.ci_low}, {c.ci_high}] ({c.interval_method})" if c.ci_low is not None else ""))
        elif c.outcome == "inconclusive":
            ET.SubElement(case, "skipped", message=_message(c, rule))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _message(c: Check, rule: str) -> str:
    """The JUnit message: the reason, or for an inconclusive check the interval, threshold and rule."""
    if c.outcome != "inconclusive" or c.ci_low is None or c.ci_high is None or c.threshold is None:
        return c.reason
    return (f"inconclusive: interval [{c.ci_low:.1%}, {c.ci_high:.1%}] straddles threshold {c.threshold:.1%}, "
            f"counted as {'pass' if c.passed else 'fail'} by rule {rule}")
