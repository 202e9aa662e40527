"""What a check found: one problem (error) or caveat (warning), naming its record or file.

Apart from verify.py so that the checks verify.py calls (sign-offs, packs) can return findings
without importing verify.py back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class Finding:
    """One problem (error) or caveat (warning) found while verifying."""

    severity: Literal["error", "warning"]
    subject: str
    """The record (``record 12 (metric)``) or file the finding is about."""
    message: str

    def line(self) -> str:
        return f"{self.severity.upper()}: {self.subject}: {self.message}"
