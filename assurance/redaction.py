"""How a model output is masked wherever it leaves the ledger (packs, exports): its first characters,
then a note saying how much was hidden and which record holds the full text.

Kept apart from the pack renderer so that ``assure export`` applies the very same rule without
importing WeasyPrint."""

from __future__ import annotations

REDACT_KEEP = 24
"""Characters of a model output shown before the redaction note."""


def redact(text: str, ref: str, *, enabled: bool) -> str:
    """Mask a model output: its first characters, then a note pointing to the ledger record."""
    if not enabled or len(text) <= REDACT_KEEP:
        return text
    hidden = len(text) - REDACT_KEEP
    return f"{text[:REDACT_KEEP]}… [redacted: {hidden} chars; full text in the evidence ledger, record {ref}]"
