"""Typed evidence records.

Every fact a run establishes is one of these records. They are serialised
canonically (RFC 8785, see ``hashing.canonical_json``), addressed by their
SHA-256, and chained per run in the ledger (``store.py``). The report layer
reads nothing else, so a pack can be re-rendered from the ledger alone.

Changing a field here changes the JSON Schema in ``evidence/schema/``; a test
fails until ``assure schema`` is re-run, and any change that alters how an
existing record serialises needs a new ``schema_version`` and a migration,
never a silent edit.
"""


from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from .base import SCHEMA_VERSION, BaseRecord, Stage
from .check import Check, DecisionRule, Outcome
from .evaluation import (
    AgreementRecord,
    BatteryRecord,
    ComparisonRecord,
    JudgeValidationRecord,
    JudgeVerdictsRecord,
    MetricRecord,
    SampleRecord,
)
from .org_profile import ProfileRecord, ProfileSource
from .run import (
    ArtifactRecord,
    EnvironmentRecord,
    ManifestRecord,
    PackRecord,
    RunFailed,
    RunStarted,
    SignoffRecord,
    VerdictRecord,
)
from .supplied import SuppliedKind, SuppliedModelRecord
from .training import FinetuneRecord

Record = Annotated[
    RunStarted
    | EnvironmentRecord
    | ArtifactRecord
    | BatteryRecord
    | SampleRecord
    | MetricRecord
    | JudgeVerdictsRecord
    | AgreementRecord
    | ComparisonRecord
    | JudgeValidationRecord
    | FinetuneRecord
    | VerdictRecord
    | RunFailed
    | ManifestRecord
    | PackRecord
    | SignoffRecord
    | ProfileRecord
    | SuppliedModelRecord,
    Field(discriminator="kind"),
]
"""Any evidence record, discriminated by its ``kind``."""

RECORD_TYPES: tuple[type[BaseRecord], ...] = get_args(get_args(Record)[0])
"""Every record class, in the union's order (one list to edit, not two)."""

__all__ = [
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "AgreementRecord",
    "ArtifactRecord",
    "BaseRecord",
    "BatteryRecord",
    "Check",
    "ComparisonRecord",
    "DecisionRule",
    "EnvironmentRecord",
    "FinetuneRecord",
    "JudgeValidationRecord",
    "JudgeVerdictsRecord",
    "ManifestRecord",
    "MetricRecord",
    "Outcome",
    "PackRecord",
    "ProfileRecord",
    "ProfileSource",
    "Record",
    "RunFailed",
    "RunStarted",
    "SampleRecord",
    "SignoffRecord",
    "Stage",
    "SuppliedKind",
    "SuppliedModelRecord",
    "VerdictRecord",
]
