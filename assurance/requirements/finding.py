"""What one kind of evidence says about a run: a state, a sentence with the figure, and its records.

An evidence function (``provenance.py``, ``results.py``) reads a RunView and returns a Finding.
It selects and words what the records hold; it never re-applies a threshold: where the policy
decides, the verdict's checks say pass or fail and the finding repeats them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from assurance.battery.categories import category_name
from assurance.evidence.records import Check, MetricRecord
from assurance.report.view import RunView

State = Literal["met", "partly", "not met", "not measured"]
"""``met``: the records show it (or the verdict's checks on it passed); ``partly``: measured but
not decided by the policy, or only part of it recorded; ``not met``: a verdict check on it failed
or the records show it missing; ``not measured``: the run recorded nothing for it."""

STATES: tuple[State, ...] = ("met", "partly", "not met", "not measured")


@dataclass(frozen=True)
class Finding:
    """One evidence kind's reading of a run."""

    state: State
    """What the evidence says (see ``State``)."""
    summary: str
    """Plain English with the measured figure and its 95% interval where there is one."""
    records: list[str] = field(default_factory=list)
    """The ledger records it rests on (``verdict``, ``metric tuned/refusal_rate/overall``)."""
    kind: str = ""
    """The evidence kind's registry name (set by ``evidence.find``)."""
    label: str = ""
    """The evidence kind's heading (set by ``evidence.find``)."""


Reader = Callable[[RunView], Finding]
"""An evidence function."""


def figure(rec: MetricRecord | None) -> str:
    """A rate with its 95% interval and count, as a sentence part: ``70.0% [39.7–89.2] of 10``."""
    if rec is None:
        return "not recorded"
    return f"{rec.value * 100:.1f}% [{rec.ci_low * 100:.1f}–{rec.ci_high * 100:.1f}] of {rec.n}"


def ref(rec: MetricRecord) -> str:
    """A metric record named as the packs cite it: stage/metric/category (with its variant)."""
    variant = f"/{rec.variant}" if rec.variant else ""
    suite = "" if rec.suite == "refusal" else f"{rec.suite}:"
    return f"metric {rec.stage}/{suite}{rec.name}/{category_name(rec.category)}{variant}"


def short_digest(digest: str) -> str:
    """A digest shortened for a sentence (the full one is in the ledger record cited beside it)."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}…" if hexpart else digest[:19]


def checks_state(checks: list[Check]) -> State | None:
    """The verdict's word on a set of checks: ``not met`` if any counted as a fail, ``met`` if all
    passed, None when there are none."""
    if not checks:
        return None
    return "met" if all(c.passed for c in checks) else "not met"


def failed_text(checks: list[Check]) -> str:
    """The failed checks' reasons, or their rule and subject, joined for a sentence."""
    return "; ".join(c.reason or f"{c.name} on {c.subject}" for c in checks if not c.passed)
