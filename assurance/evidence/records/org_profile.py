"""The organisation's profile as the run recorded it (``report.profile``, or ``assure render --profile``)."""

from __future__ import annotations

from typing import Any, Literal

from .base import BaseRecord

ProfileSource = Literal["run", "render"]
"""Who recorded a profile: the run at its start (the plan's ``report.profile``), or ``assure render --profile``
after the run (an organisation completing its part without re-running)."""


class ProfileRecord(BaseRecord):
    """What only the organisation can supply (intended use, named roles, impact assessments), as validated.

    The content is kept whole so a pack re-renders from the ledger alone; the file's full path is in the
    ``artifact`` record with role ``profile`` recorded beside it. The latest profile record of a run is the
    one its packs use."""

    kind: Literal["org_profile"] = "org_profile"
    source: str
    """The profile file's name, without its folder (packs print it; the artifact record keeps the full path)."""
    digest: str
    """``sha256:<hex>`` of the file's bytes (the file digest of every input, see evidence/README.md)."""
    content: dict[str, Any]
    """The validated profile as JSON data (``evidence/schema/profile.schema.json``); fields the file left out
    are absent, and packs print the ones a regime needs as NOT PROVIDED."""
    recorded_by: ProfileSource
    """``run`` when recorded at the run's start, ``render`` when added later by ``assure render --profile``."""
    recorded_at: str
    """UTC time it was recorded, ISO 8601."""
